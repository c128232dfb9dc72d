//! Request input into values, with every refusal in the app's own format:
//! a 422 that names the field. One rule for query strings and forms,
//! pages and API alike. Text must be UTF-8 once percent-decoded: bytes
//! that are not are refused, never silently turned into U+FFFD.

use crate::error::AppError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use std::borrow::Cow;

/// A query string. An absent one is an empty one.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        urlencoded(query.as_bytes(), "query").map(Self)
    }
}

/// An `application/x-www-form-urlencoded` body.
#[derive(Debug)]
pub struct Form<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Form<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(AppError::invalid(
                "form",
                "send the form as the page does (application/x-www-form-urlencoded)",
            ));
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(e.status(), e.body_text(), "form"))?;
        urlencoded(&body, "form").map(Self)
    }
}

/// A body the size limit or the connection cut short.
pub(crate) fn body_error(status: StatusCode, text: String, field: &'static str) -> AppError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge(format!("The {field} is over the size limit."))
    } else {
        AppError::invalid(field, text)
    }
}

/// Decodes urlencoded `bytes` into `T`. A value that does not fit is
/// refused naming its field; `whole` names the input when no single field
/// is to blame.
pub(crate) fn urlencoded<T: DeserializeOwned>(
    bytes: &[u8],
    whole: &'static str,
) -> Result<T, AppError> {
    for pair in bytes.split(|b| *b == b'&').filter(|p| !p.is_empty()) {
        let (key, value) = match pair.iter().position(|b| *b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &[][..]),
        };
        let key = decode(key);
        let Ok(name) = std::str::from_utf8(&key) else {
            return Err(AppError::invalid(
                String::from_utf8_lossy(&key).into_owned(),
                "is a parameter name that is not valid UTF-8",
            ));
        };
        if std::str::from_utf8(&decode(value)).is_err() {
            return Err(AppError::invalid(
                name.to_owned(),
                "is not valid UTF-8 text",
            ));
        }
    }
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(bytes));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = field_of(e.path(), whole);
        AppError::invalid(field, e.into_inner().to_string())
    })
}

/// The field a deserialisation error is in, or `whole` if it stopped
/// before any field could be named (e.g. a syntax error between fields).
pub(crate) fn field_of(path: &serde_path_to_error::Path, whole: &'static str) -> Cow<'static, str> {
    let named = path
        .iter()
        .any(|s| !matches!(s, serde_path_to_error::Segment::Unknown));
    if named {
        Cow::Owned(path.to_string())
    } else {
        Cow::Borrowed(whole)
    }
}

/// One urlencoded key or value as bytes: `+` is a space, `%XX` a byte.
fn decode(raw: &[u8]) -> Vec<u8> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    percent_encoding::percent_decode(&spaced).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Q {
        limit: Option<i64>,
        name: Option<String>,
    }

    fn fields(e: AppError) -> Vec<String> {
        match e {
            AppError::Invalid(f) => f.into_iter().map(|f| f.field.into_owned()).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_value_of_the_wrong_type_names_its_field() {
        let e = urlencoded::<Q>(b"limit=abc", "query").unwrap_err();
        assert_eq!(fields(e), ["limit"]);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused_naming_the_field() {
        let e = urlencoded::<Q>(b"name=%FF", "query").unwrap_err();
        assert_eq!(fields(e), ["name"]);
        let e = urlencoded::<Q>(b"name=\xff", "form").unwrap_err();
        assert_eq!(fields(e), ["name"]);
        let e = urlencoded::<Q>(b"n%FFme=x", "form").unwrap_err();
        assert_eq!(fields(e), ["n\u{FFFD}me"]);
    }

    #[test]
    fn plus_signs_and_escapes_decode_as_usual() {
        let q: Q = urlencoded(b"name=caf%C3%A9+au+lait&limit=3", "query").unwrap();
        assert_eq!(q.name.as_deref(), Some("café au lait"));
        assert_eq!(q.limit, Some(3));
    }
}
