//! Flash messages: one sentence after a change ("Saved flow orders."),
//! carried from the redirect to the page it leads to by a short-lived
//! cookie, shown once, then cleared. Never a value: the sentences name
//! things, and are HTML-escaped like any text.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

pub(crate) const COOKIE: &str = "stagehand_flash";
/// Longest message kept (in characters).
const MAX_CHARS: usize = 300;

/// A redirect to `to` that says `message` on the page it leads to.
pub fn done(to: &str, message: &str) -> Response {
    let mut res = super::see_other(to);
    let short: String = message.chars().take(MAX_CHARS).collect();
    let encoded: String = form_urlencoded::byte_serialize(short.as_bytes()).collect();
    if let Ok(v) = HeaderValue::from_str(&format!(
        "{COOKIE}={encoded}; Path=/; Max-Age=60; HttpOnly; SameSite=Strict"
    )) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// The message a request carries, if any.
pub(crate) fn read(headers: &HeaderMap) -> Option<String> {
    let raw = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))?;
    let pair = format!("m={raw}");
    let (_, message) = form_urlencoded::parse(pair.as_bytes()).next()?;
    let message: String = message.chars().take(MAX_CHARS).collect();
    (!message.trim().is_empty()).then_some(message)
}

/// Clears the message once a page that is not a redirect was answered to
/// a request that carried it: it is shown once.
pub async fn clear(req: Request, next: Next) -> Response {
    let carried = read(req.headers()).is_some();
    let mut res = next.run(req).await;
    if carried
        && !res.status().is_redirection()
        && !res
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|v| v.as_bytes().starts_with(COOKIE.as_bytes()))
    {
        res.headers_mut().append(
            header::SET_COOKIE,
            HeaderValue::from_static(
                "stagehand_flash=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict",
            ),
        );
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_survives_the_cookie_round_trip_and_is_bounded() {
        for message in [
            "Saved flow orders.",
            "Promoted dev → qa; 2 keys await a value",
            "a;b=c, \"d\"",
        ] {
            let res = done("/x", message);
            let set = res.headers()[header::SET_COOKIE]
                .to_str()
                .unwrap()
                .to_owned();
            let value = set.split(';').next().unwrap().to_owned();
            let mut headers = HeaderMap::new();
            headers.insert(
                header::COOKIE,
                HeaderValue::from_str(&format!("other=1; {value}")).unwrap(),
            );
            assert_eq!(read(&headers).as_deref(), Some(message));
        }
        let long = "x".repeat(1000);
        let res = done("/x", &long);
        let set = res.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_owned();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(set.split(';').next().unwrap()).unwrap(),
        );
        assert_eq!(read(&headers).unwrap().len(), MAX_CHARS);
    }
}
