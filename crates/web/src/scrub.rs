//! What must never be shown of a runtime's answers: its credentials, the
//! session it was issued, and the values a call sent. A runtime (or a
//! proxy, or a wrong URL) may echo a request back in an error, spelt any
//! way it likes; [`Secrets::scrub`] cuts them out of every message before
//! it is stored, shown or audited.

use base64::Engine as _;
use stagehand_runtime::{Runtime, RuntimeAuth};
use std::collections::HashSet;
use std::sync::Arc;

/// The longest runtime message shown, in characters (after scrubbing).
const MAX_MESSAGE_CHARS: usize = 300;

/// The shortest secret cut out wherever it stands. Shorter values ("1",
/// "yes") cannot be told from the words around them.
const MIN_SECRET_CHARS: usize = 4;

/// Any run of this many characters of a secret (in any of its spellings)
/// is cut out, wherever it stands: a runtime may echo a secret cut at
/// either end, or inside a longer encoded text (base64 of a whole body).
const WINDOW_CHARS: usize = 8;

/// Of a secret longer than twice this, only the runs of its first and
/// last this many characters are cut wherever they stand (the whole of it
/// still is, in every spelling).
const WINDOW_ENDS_CHARS: usize = 1024;

/// The secrets of one runtime client, and the values one call sent.
#[derive(Debug, Clone, Default)]
pub(crate) struct Secrets {
    /// Every secret in every spelling an echo may use.
    spellings: Vec<String>,
    /// The client: what it was issued along the way (Node-RED's session
    /// token) is read when a message is scrubbed.
    runtime: Option<Arc<dyn Runtime>>,
}

impl Secrets {
    /// The credentials of a connection, for its client.
    pub(crate) fn of(auth: &RuntimeAuth, runtime: Arc<dyn Runtime>) -> Self {
        let mut s = Self {
            spellings: Vec::new(),
            runtime: Some(runtime),
        };
        match auth {
            RuntimeAuth::None => {}
            RuntimeAuth::Bearer { token } => s.add(token),
            RuntimeAuth::Basic { username, password } => {
                s.add(password);
                // As an echoed `Authorization: Basic …` header carries it.
                s.add(&format!("{username}:{password}"));
            }
            RuntimeAuth::ApiKey { key } => s.add(key),
        }
        s
    }

    /// Adds a secret in every spelling an echo may use.
    pub(crate) fn add(&mut self, secret: &str) {
        if secret.chars().count() < MIN_SECRET_CHARS {
            return;
        }
        for spelling in spellings(secret) {
            if spelling.chars().count() >= MIN_SECRET_CHARS && !self.spellings.contains(&spelling) {
                self.spellings.push(spelling);
            }
        }
    }

    /// The message without any secret in it, without control characters,
    /// and short. Secrets are cut out before anything else touches the
    /// text, so neither removing characters nor shortening can turn one
    /// into something that no longer matches.
    pub(crate) fn scrub(&self, message: &str) -> String {
        let mut all = self.clone();
        if let Some(runtime) = &self.runtime {
            for issued in runtime.session_secrets() {
                all.add(issued.expose());
            }
        }
        let windows = all.windows();
        let out = all.cut(message, &windows);
        let out: String = out.chars().filter(|c| !c.is_control()).collect();
        let mut out = all.cut(&out, &windows);
        if out.chars().count() > MAX_MESSAGE_CHARS {
            out = out.chars().take(MAX_MESSAGE_CHARS).collect::<String>() + "…";
        }
        out
    }

    /// Every run of [`WINDOW_CHARS`] characters of every spelling; of a
    /// long secret (a certificate), those of its first and last
    /// [`WINDOW_ENDS_CHARS`] characters, where an echo cut short keeps it.
    fn windows(&self) -> HashSet<[char; WINDOW_CHARS]> {
        let mut set = HashSet::new();
        for s in &self.spellings {
            let chars: Vec<char> = s.chars().collect();
            let ends: Vec<&[char]> = if chars.len() > 2 * WINDOW_ENDS_CHARS {
                vec![
                    &chars[..WINDOW_ENDS_CHARS],
                    &chars[chars.len() - WINDOW_ENDS_CHARS..],
                ]
            } else {
                vec![&chars[..]]
            };
            for part in ends {
                for w in part.windows(WINDOW_CHARS) {
                    if let Ok(w) = <[char; WINDOW_CHARS]>::try_from(w) {
                        set.insert(w);
                    }
                }
            }
        }
        set
    }

    /// Cuts every spelling, then every run of [`WINDOW_CHARS`] characters
    /// found in `windows`, each stretch of them becoming one `[redacted]`.
    fn cut(&self, text: &str, windows: &HashSet<[char; WINDOW_CHARS]>) -> String {
        let mut longest_first: Vec<&String> = self.spellings.iter().collect();
        longest_first.sort_by_key(|s| std::cmp::Reverse(s.len()));
        let mut out = text.to_owned();
        for secret in longest_first {
            out = out.replace(secret.as_str(), "[redacted]");
        }
        let chars: Vec<char> = out.chars().collect();
        let mut secret = vec![false; chars.len()];
        for (i, w) in chars.windows(WINDOW_CHARS).enumerate() {
            if <[char; WINDOW_CHARS]>::try_from(w).is_ok_and(|w| windows.contains(&w)) {
                secret[i..i + WINDOW_CHARS]
                    .iter_mut()
                    .for_each(|s| *s = true);
            }
        }
        let mut cut = String::with_capacity(out.len());
        for (i, c) in chars.iter().enumerate() {
            if !secret[i] {
                cut.push(*c);
            } else if i == 0 || !secret[i - 1] {
                cut.push_str("[redacted]");
            }
        }
        cut
    }
}

/// A secret as sent and as an echo may spell it: without its control
/// characters, JSON-escaped (as serde writes it, with every non-ASCII
/// character as `\u`, and escaped twice), HTML-escaped, percent-encoded
/// (as a form, as a path, every byte but letters and digits), and in
/// base64 at each of the three alignments it can take inside a longer
/// encoded text.
fn spellings(secret: &str) -> Vec<String> {
    let json = |s: &str| {
        let quoted = serde_json::to_string(s).unwrap_or_default();
        quoted[1..quoted.len().saturating_sub(1).max(1)].to_owned()
    };
    let ascii_json: String = json(secret)
        .chars()
        .flat_map(|c| {
            if c.is_ascii() {
                vec![c]
            } else {
                let mut units = [0u16; 2];
                c.encode_utf16(&mut units)
                    .iter()
                    .flat_map(|u| format!("\\u{u:04x}").chars().collect::<Vec<_>>())
                    .collect()
            }
        })
        .collect();
    let html = secret
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");
    let form = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>();
    let every = percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    const PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b'/');
    let path = percent_encoding::utf8_percent_encode(secret, PATH).to_string();
    let mut out = vec![
        secret.to_owned(),
        secret.chars().filter(|c| !c.is_control()).collect(),
        json(secret),
        ascii_json.clone(),
        json(&json(secret)),
        html,
        form,
        every.clone(),
        every.to_lowercase(),
        path,
    ];
    out.extend(base64_alignments(secret.as_bytes()));
    out
}

/// The part of `bytes`' base64 that is the same wherever they stand in a
/// longer text, at each of the three alignments (standard and URL-safe
/// alphabets).
fn base64_alignments(bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    for lead in 0..3usize {
        let mut padded = vec![0u8; lead];
        padded.extend_from_slice(bytes);
        // Only whole groups of three bytes, and none holding a lead byte.
        let whole = padded.len() / 3 * 3;
        let first_group = lead.div_ceil(3) * 3;
        if whole <= first_group {
            continue;
        }
        for engine in [
            &base64::engine::general_purpose::STANDARD_NO_PAD,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ] {
            out.push(engine.encode(&padded[first_group..whole]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::Secrets;
    use base64::Engine as _;

    fn secrets(values: &[&str]) -> Secrets {
        let mut s = Secrets::default();
        for v in values {
            s.add(v);
        }
        s
    }

    #[test]
    fn an_echoed_secret_is_cut_out_however_it_is_spelt() {
        let value = "Sécret\"Válue/sp ace+plus<&>";
        let s = secrets(&[
            value,
            "SECRETVAL-line1\nSECRETVAL-line2",
            "admin:pa ss/word",
        ]);
        let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
        for echo in [
            value.to_owned(),
            serde_json::to_string(value).unwrap(),
            r#"S\u00e9cret\"V\u00e1lue/sp ace+plus<&>"#.to_owned(),
            "Sécret&quot;Válue/sp ace+plus&lt;&amp;&gt;".to_owned(),
            "%22S%C3%A9cret%5C%22V%C3%A1lue/sp%20ace%2Bplus".to_owned(),
            url::form_urlencoded::byte_serialize(value.as_bytes()).collect(),
            serde_json::to_string(&serde_json::to_string(value).unwrap()).unwrap(),
            format!("body={}", b64(&format!("{{\"v\":\"{value}\"}}"))),
            format!("x{}", b64(&format!("ab{value}"))),
            "SECRETVAL-line1SECRETVAL-line2".to_owned(),
            format!("auth=Basic {}", b64("admin:pa ss/word")),
            // Cut by the runtime at either end.
            "…ret\"Válue/sp ace".to_owned(),
            "SECRETVAL-li".to_owned(),
        ] {
            let shown = s.scrub(&format!("refused: {echo} (end)"));
            assert!(shown.contains("[redacted]"), "{echo} → {shown}");
            for piece in ["Válue", "V\\u00e1lue", "SECRETVAL", "YWRtaW46"] {
                assert!(!shown.contains(piece), "{echo} → {shown}");
            }
            assert!(
                shown.starts_with("refused: ") && shown.ends_with(" (end)"),
                "{shown}"
            );
        }
        assert_eq!(s.scrub("nothing secret here"), "nothing secret here");
    }

    #[test]
    fn a_long_secret_echoed_cut_short_is_cut_out() {
        // Not periodic: each run of it stands in one place only.
        let mut x: u32 = 2_463_534_242;
        let cert: String = (0..5000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect();
        let s = secrets(&[&cert]);
        let start = &cert[..300];
        let end = &cert[cert.len() - 300..];
        for echo in [start, end, &cert] {
            let shown = s.scrub(&format!("bad: {echo}"));
            assert_eq!(
                shown,
                "bad: [redacted]",
                "{}",
                &shown[..60.min(shown.len())]
            );
        }
    }

    #[test]
    fn shortening_comes_after_the_cut() {
        let s = secrets(&["short-but-long-enough-value"]);
        let long = format!("{} v=short-but-long-enough-value", "x".repeat(290));
        let shown = s.scrub(&long);
        assert!(!shown.contains("short-but"), "{shown}");
        assert!(shown.chars().count() <= 301);
        assert!(!s.scrub("a\nb\tc").contains(['\n', '\t']));
    }
}
