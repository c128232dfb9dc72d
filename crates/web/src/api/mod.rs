//! The JSON API under `/api/v1`, for CI/CD: the same store calls as the
//! pages, authorised by API tokens ([`crate::authz::Access::Api`]), with
//! errors as `{"error": {"code", "message", "fields"}}`.

pub mod instances;
pub mod openapi;
pub mod pipelines;
pub mod promotions;

use crate::error::AppError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

/// A JSON body; a malformed one is a 400/422 in the API's error format.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(AppError::invalid(
                "body",
                "send JSON with Content-Type: application/json",
            )),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(
                AppError::PayloadTooLarge("The body is over the size limit.".into()),
            ),
            Err(e) => Err(AppError::invalid("body", e.body_text())),
        }
    }
}
