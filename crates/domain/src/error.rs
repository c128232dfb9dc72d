//! Validation errors: which field is wrong and what to do about it.

use serde::Serialize;

/// One field that failed validation, with a message a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// A value that could not be parsed into a domain type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}", .0.field, .0.message)]
pub struct ValidationError(pub FieldError);

impl ValidationError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self(FieldError {
            field,
            message: message.into(),
        })
    }

    pub fn field(&self) -> &'static str {
        self.0.field
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }
}
