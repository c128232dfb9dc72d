//! One error type for every handler, mapped once to HTTP. A handler's
//! `AppError` becomes a bare response carrying an [`ErrorInfo`]; the
//! [`render_errors`] middleware, which can see the request (htmx or not, its
//! id), turns that into the page or partial the user sees. Internal causes
//! are logged there, with the request id, and never shown.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use stagehand_domain::{FieldError, ValidationError};
use stagehand_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No session: the user must log in.
    #[error("not logged in")]
    Unauthenticated,
    /// Logged in, but the role lacks the permission.
    #[error("forbidden")]
    Forbidden,
    /// Does not exist, or belongs to a team the user cannot see.
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    Conflict(String),
    /// A name (or pairing) already taken: a conflict about one field.
    #[error("{}", .0.message)]
    Taken(FieldError),
    /// A connected runtime stopped the request: drifted (409), or it
    /// could not be reached or refused Stagehand's credentials (502). The
    /// code says which; the message never holds a credential.
    #[error("{message}")]
    Runtime {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// A direct change of a protected instance, refused.
    #[error("{0}")]
    Protected(String),
    /// Not allowed, for a reason the user can act on.
    #[error("{0}")]
    Refused(String),
    /// A form or request without a valid CSRF token or from another origin.
    #[error("{0}")]
    Csrf(&'static str),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The database cannot serve right now (unreachable, out of disk):
    /// worth retrying, and nothing the user can fix.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("internal: {0}")]
    Internal(String),
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// One field that needs another value, and why.
    pub fn invalid(
        field: impl Into<std::borrow::Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self::Invalid(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }
}

impl From<ValidationError> for AppError {
    fn from(e: ValidationError) -> Self {
        Self::Invalid(vec![e.0])
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => Self::NotFound(what),
            StoreError::Invalid(v) => v.into(),
            StoreError::Conflict(stagehand_store::Conflict::Taken { field, message }) => {
                Self::Taken(FieldError {
                    field: field.into(),
                    message: message.into(),
                })
            }
            StoreError::Conflict(c) => Self::Conflict(c.to_string()),
            StoreError::Protected { instance } => Self::Protected(format!(
                "{instance} is protected: its flows, keys, values and settings change only \
                 through a promotion or rollback that collected its approvals, or at the hands \
                 of someone who manages protection. Press play on the stage before it to \
                 request a promotion."
            )),
            e @ (StoreError::Forbidden(_) | StoreError::BeyondGrantor(_)) => {
                Self::Refused(e.to_string())
            }
            StoreError::Unavailable(cause) => Self::Unavailable(cause.to_string()),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// What the error renderer needs, attached to the bare response.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    pub status: StatusCode,
    /// A stable, machine-readable code for the JSON API.
    pub code: &'static str,
    pub title: &'static str,
    /// Safe to show: never an internal cause.
    pub message: String,
    pub fields: Vec<FieldError>,
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::Csrf(_) | Self::Protected(_) | Self::Refused(_) => {
                StatusCode::FORBIDDEN
            }
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict(_) | Self::Taken(_) => StatusCode::CONFLICT,
            Self::Runtime { status, .. } => *status,
            Self::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// A stable, machine-readable code for the JSON API (and metrics).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Invalid(_) => "invalid",
            Self::Conflict(_) | Self::Taken(_) => "conflict",
            Self::Runtime { code, .. } => code,
            Self::Protected(_) => "protected",
            Self::Refused(_) => "forbidden",
            Self::Csrf(_) => "csrf",
            Self::TooManyRequests(_) => "too_many_requests",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }

    fn info(&self) -> ErrorInfo {
        let (title, message) = match self {
            Self::Unauthenticated => (
                "Log in first",
                "Log in first, or send a valid API token as `Authorization: Bearer …`.".into(),
            ),
            Self::Forbidden => (
                "Not allowed",
                "Your role in this team does not allow this. Ask a team admin if you need it.".into(),
            ),
            Self::NotFound(what) => ("Not found", format!("This {what} does not exist, or you cannot see it.")),
            Self::Invalid(_) => ("Please fix the form", "Some fields need another value:".into()),
            Self::Conflict(m) => ("Could not do that", m.clone()),
            Self::Taken(f) => ("Already taken", f.message.clone()),
            Self::Runtime { message, .. } => ("The runtime stopped this", message.clone()),
            Self::Protected(m) => ("Protected instance", m.clone()),
            Self::Refused(m) => ("Not allowed", m.clone()),
            Self::Csrf(m) => ("Request refused", (*m).into()),
            Self::TooManyRequests(m) => ("Slow down", m.clone()),
            Self::PayloadTooLarge(m) => ("Too large", m.clone()),
            Self::Unavailable(_) => ("Try again in a moment", "Stagehand cannot use its database right now, so this was not done. Try again in a moment; if it keeps happening, give your administrator the request id below.".into()),
            Self::Internal(_) => ("Something went wrong", "Something went wrong on our side. If it keeps happening, give your administrator the request id below.".into()),
        };
        let code = self.code();
        ErrorInfo {
            status: self.status(),
            code,
            title,
            message,
            fields: match self {
                Self::Invalid(f) => f.clone(),
                Self::Taken(f) => vec![f.clone()],
                _ => Vec::new(),
            },
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        // The cause goes to the log only; `render_errors` adds the request
        // id to the line it writes.
        match &self {
            Self::Internal(cause) => tracing::error!(%cause, "request failed"),
            Self::Unavailable(cause) => tracing::warn!(%cause, "database unavailable"),
            _ => {}
        }
        let info = self.info();
        let mut res = info.status.into_response();
        res.extensions_mut().insert(info);
        res
    }
}

/// Renders every [`ErrorInfo`] response (and any bare 404/405/413 from
/// axum itself) as a page in the site's layout, or as a partial for htmx.
pub async fn render_errors(req: Request, next: Next) -> Response {
    // A boosted link swaps the whole body: it gets the whole page; so
    // does htmx asking for a page again on Back (a history restore).
    let h = req.headers();
    let htmx = h.contains_key("hx-request")
        && !h.contains_key("hx-boosted")
        && !h.contains_key("hx-history-restore-request");
    // A form htmx boosted: the answer lands in the form's error slot.
    let boosted_form = h.contains_key("hx-request")
        && h.contains_key("hx-boosted")
        && req.method() == axum::http::Method::POST;
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|a| a.contains("text/html") || a.contains("*/*"));
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let method = req.method().as_str().to_owned();
    let res = next.run(req).await;

    let info = match res.extensions().get::<ErrorInfo>() {
        Some(info) => info.clone(),
        // A rejection from axum itself (a path, query or body it could not
        // read): a page too, unless the handler already rendered one (a
        // page, or JSON such as `/readyz`).
        None if res.status().is_client_error() || res.status().is_server_error() => {
            let rendered = res
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/html") || v.starts_with("application/json"));
            if rendered {
                return res;
            }
            fallback_info(res.status())
        }
        None => return res,
    };
    if path.starts_with("/api/") {
        return api_error(info, &request_id);
    }
    // A form's address opened as a page (typed in, or reloaded after the
    // form came back with an error): the page the form belongs to.
    if info.status == StatusCode::METHOD_NOT_ALLOWED
        && method == "GET"
        && wants_html
        && !htmx
        && let Some(page) = crate::routes::page_above(&path)
    {
        return Redirect::to(&page).into_response();
    }
    if info.status == StatusCode::UNAUTHORIZED {
        let next = match query {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let to = format!("/login?next={}", crate::views::url_encode(&next));
        if htmx {
            let mut r = StatusCode::UNAUTHORIZED.into_response();
            if let Ok(v) = HeaderValue::from_str(&to) {
                r.headers_mut().insert("hx-redirect", v);
            }
            return r;
        }
        return Redirect::to(&to).into_response();
    }
    let retry = crate::views::retry_link(info.status, &method, &path, query.as_deref());
    let shape = if boosted_form {
        crate::views::ErrorShape::Form
    } else if htmx {
        crate::views::ErrorShape::Partial
    } else {
        crate::views::ErrorShape::Page
    };
    let sent = res.extensions().get::<crate::views::SentForm>().cloned();
    let action = match &query {
        Some(q) => format!("{path}?{q}"),
        None => path.clone(),
    };
    let refused_form = sent
        .as_ref()
        .filter(|_| method == "POST")
        .map(|s| (action.as_str(), s));
    crate::views::error_page(info, request_id, retry, shape, wants_html, refused_form)
}

fn fallback_info(status: StatusCode) -> ErrorInfo {
    let (title, message) = match status {
        StatusCode::NOT_FOUND => ("Not found", "There is nothing at this address."),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("Not allowed", "This address does not take that method.")
        }
        StatusCode::PAYLOAD_TOO_LARGE => ("Too large", "The request body is over the size limit."),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("Unsupported", "Send the form as the page does."),
        s if s.is_server_error() => ("Something went wrong", "Something went wrong on our side."),
        _ => ("Bad request", "The request could not be understood."),
    };
    let code = match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    };
    ErrorInfo {
        status,
        code,
        title,
        message: message.into(),
        fields: Vec::new(),
    }
}

/// The JSON API's error body: `{"error": {"code", "message", "fields",
/// "request_id"}}`, with `WWW-Authenticate` on a 401.
fn api_error(info: ErrorInfo, request_id: &str) -> Response {
    let fields: serde_json::Map<String, serde_json::Value> = info
        .fields
        .iter()
        .map(|f| {
            (
                f.field.to_string(),
                serde_json::Value::String(f.message.clone()),
            )
        })
        .collect();
    // A form's refusal sums up its fields; a conflict about one field (a
    // name taken) keeps its own message.
    let message = if info.fields.is_empty() || info.status != StatusCode::UNPROCESSABLE_ENTITY {
        info.message
    } else {
        "Some fields need another value.".to_owned()
    };
    let body = serde_json::json!({
        "error": {
            "code": info.code,
            "message": message,
            "fields": fields,
            "request_id": request_id,
        }
    });
    let mut res = (info.status, axum::Json(body)).into_response();
    if info.status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"stagehand\""),
        );
    }
    res
}
