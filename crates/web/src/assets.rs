//! Static files, compiled into the binary so it runs from any directory.
//! Names carry a version, so they may be cached for a long time.

use axum::extract::Path;
use axum::http::header;
use axum::response::IntoResponse;

use crate::error::AppError;

/// The htmx release vendored in `static/`.
pub const HTMX: &str = "htmx-2.0.11.min.js";

const FILES: &[(&str, &str, &[u8])] = &[
    (
        HTMX,
        "text/javascript",
        include_bytes!("../../../static/htmx-2.0.11.min.js"),
    ),
    (
        "stagehand-6.css",
        "text/css",
        include_bytes!("../../../static/stagehand-6.css"),
    ),
];

pub(crate) async fn get_static(Path(file): Path<String>) -> Result<impl IntoResponse, AppError> {
    let (_, mime, body) = FILES
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or(AppError::NotFound("file"))?;
    Ok((
        [
            (header::CONTENT_TYPE, *mime),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        *body,
    ))
}
