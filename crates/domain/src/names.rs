//! Validated names. A value of these types is known to be valid: parsing
//! happens once, at the edge.

use crate::error::ValidationError;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// A display name for a team, instance, pipeline or role: 1 to 100
/// characters, no control characters, no leading or trailing spaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        let count = raw.chars().count();
        if raw.trim().is_empty() {
            return Err(ValidationError::new(field, "must not be empty"));
        }
        if count > MAX_NAME_CHARS {
            return Err(ValidationError::new(
                field,
                format!("must be at most {MAX_NAME_CHARS} characters (got {count})"),
            ));
        }
        if raw.trim() != raw {
            return Err(ValidationError::new(
                field,
                "must not start or end with spaces",
            ));
        }
        if raw.chars().any(char::is_control) {
            return Err(ValidationError::new(
                field,
                "must not contain control characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse("name", &s)
    }
}

impl From<Name> for String {
    fn from(n: Name) -> Self {
        n.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A login name: 1 to 64 of `a-z 0-9 . _ -`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let ok_first = raw
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let ok_rest = raw
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
        if !ok_first || !ok_rest || raw.len() > 64 {
            return Err(ValidationError::new(
                "username",
                "use 1 to 64 lowercase letters, digits, '.', '_' or '-', starting with a letter or digit",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Username {
    type Error = ValidationError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Username> for String {
    fn from(n: Username) -> Self {
        n.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_keeps_inner_spaces_and_unicode() {
        assert_eq!(
            Name::parse("name", "Dév team 1").map(|n| n.0),
            Ok("Dév team 1".into())
        );
    }

    #[test]
    fn an_empty_or_blank_name_is_refused() {
        assert!(Name::parse("name", "").is_err());
        assert!(Name::parse("name", "   ").is_err());
    }

    #[test]
    fn a_name_with_surrounding_spaces_or_control_characters_is_refused() {
        assert!(Name::parse("name", " dev").is_err());
        assert!(Name::parse("name", "de\nv").is_err());
    }

    #[test]
    fn a_name_over_one_hundred_characters_is_refused_with_the_count() {
        let err = Name::parse("name", &"x".repeat(101)).unwrap_err();
        assert!(err.message().contains("101"), "{err}");
    }

    #[test]
    fn usernames_are_lowercase_slugs() {
        assert!(Username::parse("alice.smith-2").is_ok());
        assert!(Username::parse("Alice").is_err());
        assert!(Username::parse("-alice").is_err());
        assert!(Username::parse("").is_err());
        assert!(Username::parse(&"a".repeat(65)).is_err());
    }
}
