//! Validated names. A value of these types is known to be valid: parsing
//! happens once, at the edge.

use crate::error::ValidationError;
use serde::{Deserialize, Serialize};
use std::fmt;
use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// A display name for a team, instance, pipeline, role or token: 1 to 100
/// characters in NFC, none of them invisible (see [`is_invisible`]), no
/// leading or trailing spaces. Two names that look the same are the same
/// name: a composed and a decomposed "é" are one, and a name cannot hide
/// a zero-width or bidi-override character.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

/// Characters no name may hold, because they show as nothing or change how
/// the text around them shows: controls (Cc), format characters (Cf: zero-
/// width spaces and joiners, bidi overrides and isolates, the soft hyphen,
/// the BOM, tags), line and paragraph separators, private-use and
/// unassigned code points (noncharacters among them), and the letters
/// Unicode draws blank (the Hangul fillers, the combining grapheme joiner,
/// the Khmer inherent vowels).
pub fn is_invisible(c: char) -> bool {
    matches!(
        c.general_category(),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::PrivateUse
            | GeneralCategory::Surrogate
            | GeneralCategory::Unassigned
    ) || matches!(
        c,
        '\u{034F}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}' | '\u{3164}' | '\u{FFA0}'
    )
}

impl Name {
    /// Parses a name a user typed, normalised to NFC.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
        let nfc: String = raw.nfc().collect();
        let name = Self::check(field, &nfc)?;
        if let Some(c) = nfc.chars().find(|c| is_invisible(*c)) {
            return Err(ValidationError::new(
                field,
                format!(
                    "must not contain invisible or control characters (found U+{:04X})",
                    u32::from(c)
                ),
            ));
        }
        Ok(name)
    }

    /// A name as the store kept it, under the rules of the day it was
    /// written: names stored before invisible characters were refused are
    /// read back as they are (and can be renamed), not as corrupt data.
    pub fn from_stored(raw: &str) -> Result<Self, ValidationError> {
        Self::check("name", raw)
    }

    /// The rules every name has always followed.
    fn check(field: &'static str, raw: &str) -> Result<Self, ValidationError> {
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
    fn a_name_with_a_zero_width_bidi_or_other_format_character_is_refused() {
        for raw in [
            "\u{200B}",              // zero-width space, alone
            "dev\u{200B}",           // … hidden at the end
            "de\u{200D}v",           // zero-width joiner
            "\u{202E}veD",           // right-to-left override
            "prod\u{2066}x\u{2069}", // isolates
            "\u{FEFF}dev",           // BOM
            "de\u{00AD}v",           // soft hyphen
            "dev\u{E0041}",          // tag
            "a\u{2028}b",            // line separator
            "\u{E000}",              // private use
            "\u{3164}",              // Hangul filler
            "dev\u{FFFF}",           // noncharacter
        ] {
            let err = Name::parse("name", raw).unwrap_err();
            assert_eq!(err.field(), "name", "{raw:?}");
            assert!(err.message().contains("invisible"), "{raw:?}: {err}");
        }
    }

    #[test]
    fn names_are_kept_in_nfc_so_lookalikes_are_one_name() {
        let decomposed = Name::parse("name", "Cafe\u{0301}").unwrap();
        let composed = Name::parse("name", "Caf\u{00E9}").unwrap();
        assert_eq!(decomposed, composed);
        assert_eq!(decomposed.as_str(), "Caf\u{00E9}");
        // Emoji with variation selectors and scripts with combining marks
        // are visible and stay allowed.
        assert!(Name::parse("name", "prod \u{2764}\u{FE0F}").is_ok());
        assert!(Name::parse("name", "\u{0928}\u{093F}\u{0930}\u{094D}").is_ok());
    }

    #[test]
    fn a_stored_name_from_before_the_rule_is_read_back_as_it_is() {
        let old = Name::from_stored("dev\u{200B}").unwrap();
        assert_eq!(old.as_str(), "dev\u{200B}");
        assert!(Name::from_stored("").is_err());
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
