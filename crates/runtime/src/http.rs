//! The one HTTP client every runtime module uses: whole-request and connect
//! timeouts, **no redirects** (a redirect could carry credentials to
//! another origin), and requests only to paths under the connection's base
//! URL, so credentials are only ever sent to the origin they belong to.

use crate::{ClientOptions, Connection, RuntimeError, RuntimeResult};
use reqwest::{Method, RequestBuilder, StatusCode};
use url::Url;

#[derive(Debug, Clone)]
pub struct RuntimeHttp {
    client: reqwest::Client,
    base: Url,
}

/// Checks a runtime URL: `http` or `https`, a host, no user info, no query
/// or fragment. Returns it with a trailing `/` so paths join under it.
pub fn check_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must start with http:// or https://".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials: give them as the connection's auth".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or a fragment".into());
    }
    let mut url = url;
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

impl RuntimeHttp {
    pub fn new(connection: &Connection, options: &ClientOptions) -> RuntimeResult<Self> {
        let base = check_url(connection.url.as_str()).map_err(RuntimeError::Invalid)?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(options.timeout)
            .connect_timeout(options.connect_timeout)
            .user_agent(concat!("stagehand/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RuntimeError::Invalid(format!("cannot build an HTTP client: {e}")))?;
        Ok(Self { client, base })
    }

    pub fn base(&self) -> &Url {
        &self.base
    }

    /// A request to `path` (relative, no leading `/`) under the base URL.
    /// A path that would leave the base's origin is refused.
    pub fn request(&self, method: Method, path: &str) -> RuntimeResult<RequestBuilder> {
        let url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| RuntimeError::Invalid(format!("bad runtime path {path:?}: {e}")))?;
        if url.origin() != self.base.origin() {
            return Err(RuntimeError::Invalid(format!(
                "refusing to send a request outside {}",
                self.base.origin().ascii_serialization()
            )));
        }
        Ok(self.client.request(method, url))
    }

    /// Sends a request; transport failures become `Unreachable`, 401 and
    /// 403 `AuthFailed`, a redirect `Rejected` (never followed).
    pub async fn send(&self, request: RequestBuilder) -> RuntimeResult<reqwest::Response> {
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RuntimeError::AuthFailed(format!(
                "HTTP {}",
                status.as_u16()
            )));
        }
        if status.is_redirection() {
            return Err(RuntimeError::Rejected {
                status: status.as_u16(),
                message: "answered with a redirect, which Stagehand does not follow: check the URL"
                    .into(),
            });
        }
        Ok(response)
    }
}

/// A transport error, described without the URL's query (never holds a
/// secret here anyway) and without the request.
pub fn transport_error(e: reqwest::Error) -> RuntimeError {
    let what = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        let mut s = e.without_url().to_string();
        s.truncate(200);
        s
    };
    RuntimeError::Unreachable(what)
}

/// The largest answer read from a runtime: a large Node-RED instance
/// (2,000 flows) is ~20 MB; anything far past that is refused rather than
/// held in memory.
pub const MAX_ANSWER_BYTES: usize = 128 * 1024 * 1024;

/// The largest error answer read (only its message fields are kept).
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// Reads an answer's body, refusing one over `max` bytes as it streams in
/// (a runtime cannot make Stagehand hold an unbounded body).
pub async fn read_limited(mut response: reqwest::Response, max: usize) -> RuntimeResult<Vec<u8>> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(RuntimeError::Invalid(format!(
            "the runtime's answer is over {} MB",
            max / (1024 * 1024)
        )));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > max {
            return Err(RuntimeError::Invalid(format!(
                "the runtime's answer is over {} MB",
                max.max(1024 * 1024) / (1024 * 1024)
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads an error answer as a short message: only the runtime's own
/// message fields of a JSON body (`message`, `detail`, `error`, `code`),
/// never the raw body, which a proxy or a misconfigured URL could fill
/// with an echo of the request (credentials, env values). The caller
/// still scrubs what it sent from it.
pub async fn error_message(response: reqwest::Response) -> String {
    let status = response.status();
    let body = read_limited(response, MAX_ERROR_BYTES)
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            ["message", "error_description", "detail", "error", "code"]
                .iter()
                .find_map(|k| {
                    v.get(*k).and_then(|m| match m {
                        serde_json::Value::String(s) => Some(s.clone()),
                        serde_json::Value::Object(o) => o
                            .get("message")
                            .and_then(serde_json::Value::as_str)
                            .map(str::to_owned),
                        _ => None,
                    })
                })
        })
        .unwrap_or_default();
    // Neither filtered nor shortened here: the caller first cuts out what
    // it sent (an echoed value may hold a newline, and shortening could cut
    // one in half, past recognition), then makes it short and printable.
    let mut message = message.trim().to_owned();
    if message.is_empty() {
        message = status.canonical_reason().unwrap_or("error").to_owned();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert_eq!(
            check_url("http://127.0.0.1:1880").unwrap().as_str(),
            "http://127.0.0.1:1880/"
        );
        assert_eq!(
            check_url("https://nr.example/admin").unwrap().as_str(),
            "https://nr.example/admin/"
        );
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("http://u:p@x").is_err());
        assert!(check_url("http://x/?a=1").is_err());
        assert!(check_url("not a url").is_err());
    }
}
