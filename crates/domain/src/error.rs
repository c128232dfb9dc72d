//! Validation errors: which field is wrong and what to do about it.

use serde::Serialize;
use std::borrow::Cow;

/// One field that failed validation, with a message a user can act on.
/// The field is usually a name in the code; a parameter the request named
/// itself (an unknown one, or one in a malformed query) is owned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: Cow<'static, str>,
    pub message: String,
}

/// A value that could not be parsed into a domain type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", .0.field, .0.message)]
pub struct ValidationError(pub FieldError);

impl ValidationError {
    pub fn new(field: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self(FieldError {
            field: field.into(),
            message: message.into(),
        })
    }

    pub fn field(&self) -> &str {
        &self.0.field
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }
}
