//! Server-rendered pages: one askama struct per page and per partial, one
//! module per area. Handlers are thin: take [`Ctx`], call the store, render.

pub mod admin;
pub mod audit;
mod audit_words;
pub mod dashboard;
pub mod delivery;
mod diffs;
pub mod flash;
pub mod history;
pub mod instances;
pub mod listing;
pub mod paths;
pub mod pipelines;
pub mod promotions;
pub mod restore;
pub(crate) mod runtimes;
pub mod snapshots;
pub mod tokens;
pub mod undo;

use crate::assets::HTMX;
use crate::authz::Ctx;
use crate::error::{AppError, ErrorInfo};
use askama::Template;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, Utc};
use stagehand_domain::{Permission, PermissionSet};

/// What the layout needs on every page: who is logged in, their CSRF token
/// (for forms and the htmx header) and the current team.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub username: String,
    pub csrf: String,
    pub is_platform_admin: bool,
    pub team: Option<TeamNav>,
    pub htmx: &'static str,
    /// What the change before this page did, shown once.
    pub flash: Option<String>,
}

#[derive(Debug, Clone)]
pub struct TeamNav {
    pub id: String,
    pub name: String,
    permissions: PermissionSet,
}

impl Chrome {
    pub fn new(ctx: &Ctx) -> Self {
        Self {
            username: ctx.session.user.username.to_string(),
            csrf: ctx.session.csrf_token.clone(),
            is_platform_admin: ctx.session.user.is_platform_admin,
            team: ctx.team.as_ref().map(|t| TeamNav {
                id: t.team.id.to_string(),
                name: t.team.name.to_string(),
                permissions: t.permissions.clone(),
            }),
            htmx: HTMX,
            flash: ctx.flash.clone(),
        }
    }

    /// Whether the user holds `permission` (its string name) in the team.
    /// Only decides what to show: every route checks again on the server.
    pub fn can(&self, permission: &str) -> bool {
        let Ok(p) = permission.parse::<Permission>() else {
            return false;
        };
        self.team
            .as_ref()
            .is_some_and(|t| t.permissions.contains(p))
    }

    /// The htmx header that carries the CSRF token, as JSON for
    /// `hx-headers`.
    pub fn hx_headers(&self) -> String {
        serde_json::json!({ crate::auth::csrf::HEADER: self.csrf }).to_string()
    }
}

/// A form body; a malformed one is answered like any invalid input.
pub use crate::extract::Form;

/// After a successful POST: back to a page (303, so a reload does not
/// resubmit).
pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// Percent-encodes one URL component.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Times as users read them: UTC, to the second.
pub fn when(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// An optional form field: blank means absent.
pub fn non_blank(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    info: ErrorInfo,
    request_id: String,
    retry: Option<String>,
    /// The refused form, to send again (a page without JavaScript).
    resend: Option<Resend>,
    /// The page the refused form belongs to.
    back: Option<String>,
}

#[derive(Template)]
#[template(path = "partials/error.html")]
struct ErrorPartial {
    info: ErrorInfo,
    request_id: String,
    retry: Option<String>,
    resend: Option<Resend>,
}

impl ErrorPage {
    fn label(&self, field: &str) -> String {
        field_label(field)
    }
}

impl ErrorPartial {
    fn label(&self, field: &str) -> String {
        field_label(field)
    }
}

/// The fields of a form as it was sent (URL-encoded), kept with its
/// refusal: without JavaScript, the error page offers the form again,
/// filled in, instead of losing what was typed.
#[derive(Debug, Clone)]
pub struct SentForm(pub Vec<(String, String)>);

/// Fields never sent back to the browser: their values are secrets.
const SECRET_FIELDS: &[&str] = &["password", "value", "secret"];

/// A refused form, offered again.
#[derive(Debug, Clone)]
struct Resend {
    action: String,
    fields: Vec<ResendField>,
}

#[derive(Debug, Clone)]
struct ResendField {
    name: String,
    value: String,
    /// `hidden`, `text`, `textarea` or `secret` (a password input, empty).
    kind: &'static str,
    /// What is wrong with it, if anything.
    problem: Option<String>,
}

impl Resend {
    /// Whether a secret field must be typed again.
    fn has_secret(&self) -> bool {
        self.fields.iter().any(|f| f.kind == "secret")
    }

    /// The form sent to `action`, its fields with a problem shown (filled
    /// in, marked), secrets shown empty, everything else kept hidden.
    fn new(action: &str, sent: &SentForm, problems: &[stagehand_domain::FieldError]) -> Self {
        let fields = sent
            .0
            .iter()
            .map(|(name, value)| {
                let problem = problems
                    .iter()
                    .find(|f| f.field == name.as_str())
                    .map(|f| f.message.clone());
                let secret = SECRET_FIELDS.contains(&name.as_str());
                let kind = if secret {
                    "secret"
                } else if name == "csrf_token" || problem.is_none() {
                    "hidden"
                } else if value.contains('\n') || value.chars().count() > 120 {
                    "textarea"
                } else {
                    "text"
                };
                ResendField {
                    name: name.clone(),
                    value: if secret { String::new() } else { value.clone() },
                    kind,
                    problem,
                }
            })
            .collect();
        Self {
            action: action.to_owned(),
            fields,
        }
    }
}

/// An error answer to a form, for the form's own error slot.
#[derive(Template)]
#[template(path = "partials/form_error.html")]
struct FormError {
    info: ErrorInfo,
    request_id: String,
    retry: Option<String>,
}

impl FormError {
    fn label(&self, field: &str) -> String {
        field_label(field)
    }
}

/// A field as its form labels it: `flow_name` is "Flow name".
fn field_label(field: &str) -> String {
    let words = field.replace('_', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => words,
    }
}

/// What an error answer is: a page, a fragment for an htmx target, or
/// (to a form htmx boosted) the fragment for the form's error slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorShape {
    Page,
    Partial,
    Form,
}

/// Where to see again, as it is now, what a refused change was based on:
/// a play refused as stale goes back to its preview (of the snapshot it
/// chose, which the play form's action carries as `?snapshot=`); a
/// decision or a rollback on a promotion that moved on goes back to the
/// promotion.
pub fn retry_link(
    status: axum::http::StatusCode,
    method: &str,
    path: &str,
    query: Option<&str>,
) -> Option<String> {
    if status != axum::http::StatusCode::CONFLICT
        || method != "POST"
        || !path.starts_with("/teams/")
    {
        return None;
    }
    if let Some(stage) = path.strip_suffix("/promote") {
        let snapshot = query
            .and_then(|q| q.strip_prefix("snapshot="))
            .and_then(|id| id.parse::<uuid::Uuid>().ok());
        return Some(match snapshot {
            Some(id) => format!("{stage}/preview?snapshot={id}"),
            None => format!("{stage}/preview"),
        });
    }
    // A refused restore: its preview, which is the same path.
    if path.ends_with("/restore") {
        return query
            .and_then(|q| q.strip_prefix("snapshot="))
            .and_then(|id| id.parse::<uuid::Uuid>().ok())
            .map(|id| format!("{path}?snapshot={id}"));
    }
    // A refused undo: its preview, at the same path (which sends to the
    // promotion when there is nothing left to undo).
    if path.ends_with("/rollback") && path.contains("/promotions/") {
        return Some(path.to_owned());
    }
    path.strip_suffix("/decision")
        .filter(|p| p.contains("/promotions/"))
        .map(str::to_owned)
}

/// The page (or, for htmx, the fragment) that tells the user what went
/// wrong and what to do. To a form htmx sent, the fragment lands in the
/// form's error slot (`partials/form_top.html`): the form and what was
/// typed in it stay, and the fields named are marked.
pub fn error_page(
    info: ErrorInfo,
    request_id: String,
    retry: Option<String>,
    shape: ErrorShape,
    wants_html: bool,
    refused_form: Option<(&str, &SentForm)>,
) -> Response {
    let status = info.status;
    if !wants_html {
        let body =
            serde_json::json!({ "error": { "message": info.message, "request_id": request_id } });
        return (status, axum::Json(body)).into_response();
    }
    let rendered = match shape {
        ErrorShape::Partial => ErrorPartial {
            info,
            request_id,
            retry,
            resend: None,
        }
        .render(),
        ErrorShape::Page => {
            // A form refused for its fields comes back filled in.
            let resend = refused_form
                .filter(|_| !info.fields.is_empty())
                .map(|(action, sent)| Resend::new(action, sent, &info.fields));
            let back = refused_form.and_then(|(action, _)| {
                crate::routes::page_above(action.split('?').next().unwrap_or(action))
            });
            ErrorPage {
                info,
                request_id,
                retry,
                resend,
                back,
            }
            .render()
        }
        ErrorShape::Form => FormError {
            info,
            request_id,
            retry,
        }
        .render(),
    };
    match rendered {
        Ok(html) => {
            let mut res = (status, Html(html)).into_response();
            // It may hold what was typed: never kept in the history cache.
            if refused_form.is_some() {
                res.headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            }
            if shape == ErrorShape::Form {
                let h = res.headers_mut();
                h.insert("hx-retarget", HeaderValue::from_static("find .form-error"));
                h.insert("hx-reswap", HeaderValue::from_static("innerHTML show:top"));
                // The address stays the form's page, not the POST's.
                h.insert("hx-push-url", HeaderValue::from_static("false"));
            }
            res
        }
        Err(e) => {
            tracing::error!(error = %e, "error page failed to render");
            (status, "Something went wrong.").into_response()
        }
    }
}

/// Renders a page; a template error is an internal error.
pub fn render<T: Template>(page: T) -> Result<Response, AppError> {
    page.render()
        .map(|html| Html(html).into_response())
        .map_err(|e| AppError::Internal(format!("template: {e}")))
}

#[cfg(test)]
mod retry_tests {
    use super::retry_link;
    use axum::http::StatusCode;

    #[test]
    fn a_refused_play_links_back_to_its_preview_with_the_snapshot_it_chose() {
        let play = "/teams/t/pipelines/p/stages/s/promote";
        let id = "2b1e5f0e-6c1f-4c53-9d7a-1d2f0a4b9c11";
        assert_eq!(
            retry_link(StatusCode::CONFLICT, "POST", play, None).as_deref(),
            Some("/teams/t/pipelines/p/stages/s/preview")
        );
        assert_eq!(
            retry_link(
                StatusCode::CONFLICT,
                "POST",
                play,
                Some(&format!("snapshot={id}"))
            ),
            Some(format!(
                "/teams/t/pipelines/p/stages/s/preview?snapshot={id}"
            ))
        );
        // Anything else in the query is not carried.
        assert_eq!(
            retry_link(
                StatusCode::CONFLICT,
                "POST",
                play,
                Some("snapshot=//evil.example")
            )
            .as_deref(),
            Some("/teams/t/pipelines/p/stages/s/preview")
        );
        assert_eq!(
            retry_link(
                StatusCode::CONFLICT,
                "POST",
                "/teams/t/promotions/x/decision",
                None
            )
            .as_deref(),
            Some("/teams/t/promotions/x")
        );
        assert_eq!(
            retry_link(StatusCode::UNPROCESSABLE_ENTITY, "POST", play, None),
            None
        );
        assert_eq!(
            retry_link(
                StatusCode::CONFLICT,
                "POST",
                "/teams/t/pipelines/p/stages/s/restore",
                Some(&format!("snapshot={id}"))
            ),
            Some(format!(
                "/teams/t/pipelines/p/stages/s/restore?snapshot={id}"
            ))
        );
        assert_eq!(retry_link(StatusCode::CONFLICT, "GET", play, None), None);
        assert_eq!(
            retry_link(StatusCode::CONFLICT, "POST", "/api/v1/x/promote", None),
            None
        );
    }
}

#[cfg(test)]
mod form_tests {
    /// Every form that posts has the slot an error answer lands in: htmx
    /// retargets it, and finding none would show nothing at all.
    #[test]
    fn every_posting_form_has_an_error_slot() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates");
        let mut forms = 0;
        for entry in walk(&dir) {
            let text = std::fs::read_to_string(&entry).unwrap();
            let mut rest = text.as_str();
            while let Some(at) = rest.find("<form") {
                let form = &rest[at..];
                let end = form.find("</form>").unwrap_or(form.len());
                let (open, body) = (&form[..form.find('>').unwrap()], &form[..end]);
                if open.contains("method=\"post\"") {
                    forms += 1;
                    assert!(
                        body.contains("partials/form_top.html")
                            || body.contains("class=\"form-error\""),
                        "{}: a form without an error slot: {open}>",
                        entry.display()
                    );
                }
                rest = &form[end.max(1)..];
            }
        }
        assert!(forms > 40, "only {forms} forms found");
    }

    /// A link to a file (a download or an export) is followed by the
    /// browser itself: boosted, htmx would swap the file into the page.
    #[test]
    fn every_file_link_is_left_to_the_browser() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates");
        let mut links = 0;
        for entry in walk(&dir) {
            let text = std::fs::read_to_string(&entry).unwrap();
            for (at, _) in text.match_indices("<a ") {
                let open = &text[at..at + text[at..].find('>').unwrap()];
                let Some(href) = open.split("href=\"").nth(1) else {
                    continue;
                };
                let href = &href[..href.find('"').unwrap_or(href.len())];
                let path = href.split('?').next().unwrap_or(href);
                if path.ends_with("/download") || path.ends_with("/export") {
                    links += 1;
                    assert!(
                        open.contains("hx-boost=\"false\""),
                        "{}: a file link htmx would boost: {open}>",
                        entry.display()
                    );
                }
            }
        }
        assert!(links >= 3, "only {links} file links found");
    }

    fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else if p.extension().is_some_and(|x| x == "html") {
                out.push(p);
            }
        }
        out
    }
}
