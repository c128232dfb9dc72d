//! Environment variables: validated keys and secret values.

use crate::error::ValidationError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An env var key: `^[A-Za-z_][A-Za-z0-9_]{0,127}$`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EnvKey(String);

impl EnvKey {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let mut chars = raw.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !first_ok || !rest_ok || raw.len() > 128 {
            return Err(ValidationError::new(
                "key",
                "must match ^[A-Za-z_][A-Za-z0-9_]{0,127}$ (letters, digits and '_', not starting with a digit, at most 128 characters)",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EnvKey {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<EnvKey> for String {
    fn from(k: EnvKey) -> Self {
        k.0
    }
}

impl fmt::Display for EnvKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest env value accepted, in bytes.
pub const MAX_ENV_VALUE_BYTES: usize = 64 * 1024;

/// A secret: an env value, a password, a token. `Debug` and `Display`
/// print `[redacted]`, and it is deliberately not `Serialize`, so it cannot
/// reach a log line, an error or a response by accident. The only way out is
/// [`SecretValue::expose`], which reads as what it is at the call site.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// Parses an env value: at most [`MAX_ENV_VALUE_BYTES`].
    pub fn parse_env_value(value: String) -> Result<Self, ValidationError> {
        if value.len() > MAX_ENV_VALUE_BYTES {
            return Err(ValidationError::new(
                "value",
                format!("must be at most {MAX_ENV_VALUE_BYTES} bytes"),
            ));
        }
        Ok(Self(value))
    }

    /// The secret itself. Call only where the value must leave the process
    /// boundary on purpose (encryption, an authorised reveal).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// What the planner may know of a key: whether it has a value, never the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnvKeyState {
    HasValue,
    AwaitingValue,
}

impl EnvKeyState {
    pub fn of<V>(value: &Option<V>) -> Self {
        if value.is_some() {
            Self::HasValue
        } else {
            Self::AwaitingValue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_pattern() {
        for ok in ["A", "_", "DB_URL", "a1", &"K".repeat(128)] {
            assert!(EnvKey::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A B", "É", &"K".repeat(129)] {
            let err = EnvKey::parse(bad).unwrap_err();
            assert_eq!(err.field(), "key");
        }
    }

    #[test]
    fn a_secret_never_prints_itself() {
        let s = SecretValue::new("hunter2".into());
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{:?}", Some(s)), "Some([redacted])");
    }

    #[test]
    fn an_oversized_env_value_is_refused() {
        assert!(SecretValue::parse_env_value("x".repeat(MAX_ENV_VALUE_BYTES + 1)).is_err());
        assert!(SecretValue::parse_env_value("x".repeat(MAX_ENV_VALUE_BYTES)).is_ok());
    }
}
