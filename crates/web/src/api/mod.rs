//! The JSON API under `/api/v1`, for CI/CD: the same store calls as the
//! pages, authorised by API tokens ([`crate::authz::Access::Api`]), with
//! errors as `{"error": {"code", "message", "fields"}}`.

pub mod delivery;
pub mod instances;
pub mod openapi;
pub mod pipelines;
pub mod promotions;
pub mod runtimes;
pub mod snapshots;

use crate::error::AppError;
use crate::extract::{body_error, field_of};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

/// A JSON body; a malformed one is a 422 in the API's error format that
/// names the field where reading stopped (text that is not UTF-8
/// included), or `body` when it stopped outside any field.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|v| v.trim().to_ascii_lowercase())
            .is_some_and(|v| v == "application/json" || v.ends_with("+json"));
        if !is_json {
            return Err(AppError::invalid(
                "body",
                "send JSON with Content-Type: application/json",
            ));
        }
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| body_error(e.status(), e.body_text(), "body"))?;
        let mut de = serde_json::Deserializer::from_slice(&body);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let field = field_of(e.path(), "body");
            AppError::invalid(field, e.into_inner().to_string())
        })?;
        de.end()
            .map_err(|e| AppError::invalid("body", e.to_string()))?;
        Ok(Self(value))
    }
}

/// A JSON body that may be left out: no body at all is `T::default()`; a
/// body must be JSON, as for [`Json`].
#[derive(Debug)]
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(|e| body_error(e.status(), e.body_text(), "body"))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| Self(v))
    }
}
