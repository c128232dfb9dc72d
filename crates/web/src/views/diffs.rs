//! Flow diffs as pages show them: a line diff of two flows' pretty-printed
//! JSON, cut to a readable length.

use stagehand_domain::{FlowContent, FlowName};

/// One added or changed flow, as a line diff of its pretty-printed JSON.
pub(crate) struct FlowDiff {
    /// "Changed", "Added", "Only in A"…
    pub kind: &'static str,
    pub name: String,
    pub lines: Vec<(char, String)>,
}

/// Most diff lines shown per flow.
const MAX_DIFF_LINES: usize = 400;

pub(crate) fn pretty(content: &FlowContent) -> String {
    serde_json::to_string_pretty(&content.to_value()).unwrap_or_default()
}

pub(crate) fn diff(kind: &'static str, name: &FlowName, from: &str, to: &str) -> FlowDiff {
    let mut lines = Vec::new();
    let d = similar::TextDiff::from_lines(from, to);
    for group in d.grouped_ops(2) {
        if !lines.is_empty() {
            lines.push((' ', "…".to_owned()));
        }
        for op in group {
            for change in d.iter_changes(&op) {
                let tag = match change.tag() {
                    similar::ChangeTag::Delete => '-',
                    similar::ChangeTag::Insert => '+',
                    similar::ChangeTag::Equal => ' ',
                };
                lines.push((tag, change.value().trim_end_matches('\n').to_owned()));
            }
        }
    }
    if lines.len() > MAX_DIFF_LINES {
        lines.truncate(MAX_DIFF_LINES);
        lines.push((' ', "… (diff cut short)".to_owned()));
    }
    FlowDiff {
        kind,
        name: name.to_string(),
        lines,
    }
}
