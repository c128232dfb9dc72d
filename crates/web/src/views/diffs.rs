//! Flow diffs as pages show them: a line diff of two flows' pretty-printed
//! JSON, cut to a readable length.

use stagehand_domain::{FlowContent, FlowName};
use std::time::{Duration, Instant};

/// One added or changed flow, as a line diff of its pretty-printed JSON.
pub(crate) struct FlowDiff {
    /// "Changed", "Added", "Only in A"…
    pub kind: &'static str,
    pub name: String,
    pub lines: Vec<(char, String)>,
}

/// Most diff lines shown per flow.
const MAX_DIFF_LINES: usize = 400;

/// Largest flow (compact JSON bytes) diffed on a page; a bigger one is
/// named, with where to compare it instead.
const MAX_DIFF_INPUT: usize = 256 * 1024;
/// Time one page spends diffing, in all: past it, the diff algorithm
/// settles for a coarser diff, so no request can hold a worker for long
/// however large or different the flows (any viewer can ask for a diff).
const PAGE_DIFF_BUDGET: Duration = Duration::from_millis(300);

fn pretty(content: &FlowContent) -> String {
    serde_json::to_string_pretty(&content.to_value()).unwrap_or_default()
}

/// The diffs of one page, sharing its time budget.
pub(crate) struct Differ {
    deadline: Instant,
}

impl Differ {
    pub(crate) fn new() -> Self {
        Self {
            deadline: Instant::now() + PAGE_DIFF_BUDGET,
        }
    }

    /// The diff of a flow from `from` to `to` (absent: empty).
    pub(crate) fn diff(
        &self,
        kind: &'static str,
        name: &FlowName,
        from: Option<&FlowContent>,
        to: Option<&FlowContent>,
    ) -> FlowDiff {
        let largest = from
            .map_or(0, FlowContent::len)
            .max(to.map_or(0, FlowContent::len));
        if largest > MAX_DIFF_INPUT {
            return FlowDiff {
                kind,
                name: name.to_string(),
                lines: vec![(
                    ' ',
                    format!(
                        "… too large to show here ({} KiB): download the snapshots to compare it",
                        largest / 1024
                    ),
                )],
            };
        }
        let (from, to) = (
            from.map(pretty).unwrap_or_default(),
            to.map(pretty).unwrap_or_default(),
        );
        let mut lines = Vec::new();
        let d = similar::TextDiff::configure()
            .deadline(self.deadline)
            .diff_lines(&from, &to);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(json: &str) -> FlowContent {
        FlowContent::parse_json(json).unwrap()
    }

    #[test]
    fn a_diff_marks_what_goes_and_what_comes() {
        let name = FlowName::parse("orders").unwrap();
        let d = Differ::new().diff(
            "Changed",
            &name,
            Some(&flow(r#"{"v": 1, "a": true}"#)),
            Some(&flow(r#"{"v": 2, "a": true}"#)),
        );
        assert!(
            d.lines.contains(&('-', "  \"v\": 1".to_owned())),
            "{:?}",
            d.lines
        );
        assert!(
            d.lines.contains(&('+', "  \"v\": 2".to_owned())),
            "{:?}",
            d.lines
        );
    }

    #[test]
    fn a_flow_too_large_to_diff_is_named_not_diffed_and_a_page_stays_fast() {
        let name = FlowName::parse("big").unwrap();
        let big: Vec<u32> = (0..100_000).collect();
        let big = flow(&serde_json::to_string(&big).unwrap());
        assert!(big.len() > MAX_DIFF_INPUT);
        let d = Differ::new().diff("Added", &name, None, Some(&big));
        assert_eq!(d.lines.len(), 1);
        assert!(
            d.lines[0].1.contains("too large to show here"),
            "{:?}",
            d.lines
        );
        // Twenty of the largest diffable flows, all different, on one page:
        // the budget bounds it.
        let a: Vec<u32> = (0..20_000).collect();
        let b: Vec<u32> = (0..20_000).map(|x| x * 7 + 3).collect();
        let (a, b) = (
            flow(&serde_json::to_string(&a).unwrap()),
            flow(&serde_json::to_string(&b).unwrap()),
        );
        assert!(a.len() < MAX_DIFF_INPUT && b.len() < MAX_DIFF_INPUT);
        let started = Instant::now();
        let differ = Differ::new();
        for _ in 0..20 {
            differ.diff("Changed", &name, Some(&a), Some(&b));
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
}
