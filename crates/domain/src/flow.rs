//! Flows: named JSON documents, and the content hash that identifies them.

use crate::error::ValidationError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// Largest flow accepted, in bytes of its JSON text (8 MiB).
pub const MAX_FLOW_BYTES: usize = 8 * 1024 * 1024;

/// A flow's name, its identity inside an instance: 1 to 200 characters, no
/// control characters, no `/` or `\` (flows are pulled into files named
/// after them), no leading or trailing spaces, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FlowName(String);

impl FlowName {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let bad = |m: &str| Err(ValidationError::new("flow_name", m));
        if raw.is_empty() {
            return bad("must not be empty");
        }
        if raw.chars().count() > 200 {
            return bad("must be at most 200 characters");
        }
        if raw.trim() != raw {
            return bad("must not start or end with spaces");
        }
        if raw == "." || raw == ".." {
            return bad("must not be '.' or '..'");
        }
        if raw.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
            return bad("must not contain '/', '\\' or control characters");
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for FlowName {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<FlowName> for String {
    fn from(n: FlowName) -> Self {
        n.0
    }
}

impl fmt::Display for FlowName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// SHA-256 of a flow's canonical JSON encoding, as lowercase hex. Two flows
/// with the same hash have the same content.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentHash(String);

impl ContentHash {
    /// The hash of some bytes.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(bytes)))
    }

    /// Wraps a finished SHA-256 digest.
    pub fn from_digest(digest: &[u8]) -> Self {
        Self(hex::encode(digest))
    }

    /// Wraps a hash read back from storage. Storage only ever holds hashes
    /// this crate computed, so no check beyond the shape is needed.
    pub fn from_stored(hex: String) -> Result<Self, ValidationError> {
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(hex))
        } else {
            Err(ValidationError::new(
                "content_hash",
                "is not a SHA-256 hex digest",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex digits, enough to tell versions apart on screen.
    pub fn short(&self) -> &str {
        &self.0[..12]
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A flow's content: a JSON document no larger than [`MAX_FLOW_BYTES`],
/// kept with its canonical encoding and hash.
///
/// The canonical encoding is compact JSON with object keys sorted, so the
/// same document always hashes the same however it was formatted on input.
#[derive(Clone, PartialEq, Eq)]
pub struct FlowContent {
    canonical: String,
    hash: ContentHash,
}

impl FlowContent {
    /// Parses JSON text supplied by a user.
    pub fn parse_json(text: &str) -> Result<Self, ValidationError> {
        if text.len() > MAX_FLOW_BYTES {
            return Err(too_large(text.len()));
        }
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            // serde ends its message with the position, given here first.
            let why = e.to_string();
            let why = why
                .rsplit_once(" at line ")
                .map_or(why.as_str(), |(w, _)| w);
            ValidationError::new(
                "content",
                format!(
                    "is not valid JSON (line {}, column {}): {why}",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        Self::from_value(&value)
    }

    /// Parses YAML text supplied by a user (accepted on import, stored as
    /// JSON). YAML that has no JSON equivalent (non-string keys, tags) is
    /// refused rather than silently changed.
    pub fn parse_yaml(text: &str) -> Result<Self, ValidationError> {
        if text.len() > MAX_FLOW_BYTES {
            return Err(too_large(text.len()));
        }
        let value: serde_json::Value = serde_yaml_ng::from_str(text).map_err(|e| {
            let place = e
                .location()
                .map(|l| format!(" (line {}, column {})", l.line(), l.column()))
                .unwrap_or_default();
            ValidationError::new("content", format!("is not valid YAML{place}: {e}"))
        })?;
        Self::from_value(&value)
    }

    /// Builds content from an already-parsed JSON value.
    pub fn from_value(value: &serde_json::Value) -> Result<Self, ValidationError> {
        check_no_nul("content", value)?;
        // serde_json's map is ordered by key (no `preserve_order`), so this
        // encoding is canonical.
        let canonical = value.to_string();
        if canonical.len() > MAX_FLOW_BYTES {
            return Err(too_large(canonical.len()));
        }
        let hash = ContentHash::of_bytes(canonical.as_bytes());
        Ok(Self { canonical, hash })
    }

    pub fn hash(&self) -> &ContentHash {
        &self.hash
    }

    /// The canonical JSON text.
    pub fn as_json(&self) -> &str {
        &self.canonical
    }

    pub fn len(&self) -> usize {
        self.canonical.len()
    }

    pub fn is_empty(&self) -> bool {
        self.canonical.is_empty()
    }

    pub fn to_value(&self) -> serde_json::Value {
        // The canonical text was produced by serde_json from a Value.
        serde_json::from_str(&self.canonical).unwrap_or(serde_json::Value::Null)
    }
}

impl fmt::Debug for FlowContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowContent")
            .field("hash", &self.hash)
            .field("len", &self.canonical.len())
            .finish()
    }
}

fn too_large(len: usize) -> ValidationError {
    ValidationError::new(
        "content",
        format!("is {len} bytes; a flow may be at most {MAX_FLOW_BYTES} bytes (8 MiB)"),
    )
}

/// Refuses JSON holding the NUL character (`\u0000`) in a string or a key:
/// PostgreSQL's `jsonb` cannot store it, and no workflow needs it.
pub fn check_no_nul(field: &'static str, value: &serde_json::Value) -> Result<(), ValidationError> {
    let bad = || {
        Err(ValidationError::new(
            field,
            "must not contain the NUL character (\\u0000)",
        ))
    };
    match value {
        serde_json::Value::String(s) if s.contains('\0') => bad(),
        serde_json::Value::Array(items) => items.iter().try_for_each(|v| check_no_nul(field, v)),
        serde_json::Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            if k.contains('\0') {
                bad()
            } else {
                check_no_nul(field, v)
            }
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_character_anywhere_is_refused() {
        for doc in [
            r#"{"a": "x\u0000y"}"#,
            r#"{"k\u0000": 1}"#,
            r#"[[{"a": ["\u0000"]}]]"#,
        ] {
            let err = FlowContent::parse_json(doc).unwrap_err();
            assert_eq!(err.field(), "content");
            assert!(err.message().contains("NUL"), "{err}");
        }
        assert!(FlowContent::parse_json(r#"{"a": "fine\n"}"#).is_ok());
    }

    #[test]
    fn yaml_and_json_of_the_same_document_hash_the_same() {
        let json =
            FlowContent::parse_json(r#"{"id": "t1", "nodes": [{"type": "inject", "x": 1}]}"#)
                .unwrap();
        let yaml = FlowContent::parse_yaml("id: t1\nnodes:\n  - type: inject\n    x: 1\n").unwrap();
        assert_eq!(json.hash(), yaml.hash());
    }

    #[test]
    fn bad_yaml_names_the_line() {
        let err = FlowContent::parse_yaml("a: [1, 2\nb: 3\n").unwrap_err();
        assert_eq!(err.field(), "content");
        assert!(err.message().contains("line"), "{err}");
    }

    #[test]
    fn the_same_document_hashes_the_same_whatever_its_formatting() {
        let a = FlowContent::parse_json(r#"{"b": 1, "a": [1, 2]}"#).unwrap();
        let b = FlowContent::parse_json("{\n  \"a\":[1,2],\n  \"b\":1\n}").unwrap();
        assert_eq!(a.hash(), b.hash());
        assert_eq!(a.as_json(), r#"{"a":[1,2],"b":1}"#);
    }

    #[test]
    fn different_documents_hash_differently() {
        let a = FlowContent::parse_json("[1]").unwrap();
        let b = FlowContent::parse_json("[2]").unwrap();
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn content_that_is_not_json_is_refused_with_its_position() {
        let err = FlowContent::parse_json("{\"a\": }").unwrap_err();
        assert_eq!(err.field(), "content");
        assert!(err.message().contains("line 1"), "{err}");
        // Once: not again at the end of serde's own words.
        assert_eq!(err.message().matches("line 1").count(), 1, "{err}");
        assert_eq!(
            err.message(),
            "is not valid JSON (line 1, column 7): expected value"
        );
    }

    #[test]
    fn a_flow_over_eight_mib_is_refused() {
        let big = format!("\"{}\"", "x".repeat(MAX_FLOW_BYTES));
        let err = FlowContent::parse_json(&big).unwrap_err();
        assert!(err.message().contains("8 MiB"), "{err}");
    }

    #[test]
    fn flow_names_cannot_escape_a_directory() {
        assert!(FlowName::parse("main flow").is_ok());
        for bad in ["", "a/b", "a\\b", "..", ".", " x", "x\n"] {
            assert!(FlowName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
