//! CSRF protection for every state-changing request: the request must come
//! from our own origin (`Origin`, else `Referer`, when the browser sends
//! one) and carry the session's synchronizer token, either in the
//! `csrf_token` form field or, for htmx, in the `X-CSRF-Token` header
//! (set once on `<body hx-headers>`).

use crate::AppState;
use crate::config::MAX_BODY_BYTES;
use crate::error::{AppError, AppResult};
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, header};

pub const HEADER: &str = "x-csrf-token";
pub const FIELD: &str = "csrf_token";

/// Methods that never change state and so need no token.
pub fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Compares in time independent of where the strings differ.
pub fn tokens_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The origin requests must come from: the configured public URL, or the
/// scheme-less `Host` the request was sent to.
fn origin_matches(state: &AppState, headers: &HeaderMap, origin: &str) -> bool {
    let origin = origin.trim_end_matches('/');
    if let Some(public) = &state.config.public_url {
        return origin == public;
    }
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && rest == host)
}

/// Refuses a request from another origin. A request with neither header
/// (not a browser) still needs the token.
pub fn check_origin(state: &AppState, headers: &HeaderMap) -> AppResult<()> {
    let header_value = |h| {
        headers
            .get(h)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
    };
    let claimed = match (header_value(header::ORIGIN), header_value(header::REFERER)) {
        (Some(origin), _) => Some(origin.to_owned()),
        (None, Some(referer)) => Some(referer_origin(referer)),
        (None, None) => None,
    };
    match claimed {
        Some(o) if !origin_matches(state, headers, &o) => Err(AppError::Csrf(
            "This request came from another site, so it was refused. Use Stagehand's own pages.",
        )),
        _ => Ok(()),
    }
}

/// `https://host:port/path?q` → `https://host:port`.
fn referer_origin(referer: &str) -> String {
    match referer.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            format!("{scheme}://{host}")
        }
        None => String::new(),
    }
}

/// Checks origin and token of a state-changing request; hands back the
/// request with its body intact for the handler.
pub async fn check(state: &AppState, expected: &str, req: Request) -> AppResult<Request> {
    check_origin(state, req.headers())?;
    if let Some(token) = req.headers().get(HEADER).and_then(|v| v.to_str().ok()) {
        return if tokens_equal(token, expected) {
            Ok(req)
        } else {
            Err(missing())
        };
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let boundary = multer::parse_boundary(&content_type).ok();
    if !content_type.starts_with("application/x-www-form-urlencoded") && boundary.is_none() {
        return Err(missing());
    }
    let urlencoded = boundary.is_none();
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| AppError::PayloadTooLarge("The form is over the size limit.".into()))?;
    let token = match boundary {
        None => form_field(&bytes, FIELD),
        Some(boundary) => multipart_field(bytes.clone(), boundary, FIELD).await,
    };
    match token {
        Some(t) if tokens_equal(&t, expected) => {
            // Kept with a refusal, to offer the form again (a form sent
            // without JavaScript; see `views::SentForm`).
            let sent = urlencoded
                .then(|| serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes).ok())
                .flatten();
            let mut req = Request::from_parts(parts, Body::from(bytes));
            if let Some(fields) = sent {
                req.extensions_mut().insert(crate::views::SentForm(fields));
            }
            Ok(req)
        }
        _ => Err(missing()),
    }
}

fn form_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// A text field of a `multipart/form-data` body (file uploads).
async fn multipart_field(body: axum::body::Bytes, boundary: String, name: &str) -> Option<String> {
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut form = multer::Multipart::new(stream, boundary);
    while let Ok(Some(field)) = form.next_field().await {
        if field.name() == Some(name) {
            return field.text().await.ok();
        }
    }
    None
}

fn missing() -> AppError {
    AppError::Csrf(
        "This form has expired or did not come from Stagehand. Reload the page and try again.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_equal_only_when_identical() {
        assert!(tokens_equal("abc", "abc"));
        assert!(!tokens_equal("abc", "abd"));
        assert!(!tokens_equal("abc", "abcd"));
        assert!(!tokens_equal("", "a"));
    }

    #[test]
    fn a_referer_is_cut_to_its_origin() {
        assert_eq!(
            referer_origin("https://h.example:8443/a/b?c=d"),
            "https://h.example:8443"
        );
        assert_eq!(referer_origin("http://h"), "http://h");
    }

    #[tokio::test]
    async fn the_token_is_found_in_a_multipart_upload() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.json\"\r\n\r\n{}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\nt0k3n\r\n--XyZ--\r\n";
        let found = multipart_field(body.into(), "XyZ".into(), FIELD).await;
        assert_eq!(found.as_deref(), Some("t0k3n"));
    }

    #[test]
    fn the_token_is_found_among_form_fields() {
        assert_eq!(
            form_field(b"a=1&csrf_token=x%2By&b=2", FIELD).as_deref(),
            Some("x+y")
        );
        assert_eq!(form_field(b"a=1", FIELD), None);
    }
}
