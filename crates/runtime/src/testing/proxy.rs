//! A loopback HTTP/1.1 reverse proxy that records every request passing
//! through it: put it in front of a runtime and a test can read back every
//! method, path, header and body Stagehand sent there. It can also hold
//! one request before forwarding it ([`RecordingProxy::hold_next`]), so a
//! test can change the runtime at an exact point of a call in flight.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// One request as the proxy received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// The path and query.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RecordedRequest {
    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The proxy; stops when dropped.
#[derive(Debug)]
pub struct RecordingProxy {
    url: String,
    records: Arc<Mutex<Vec<RecordedRequest>>>,
    holds: Arc<Mutex<Vec<Hold>>>,
    task: JoinHandle<()>,
}

#[derive(Debug, Clone)]
struct State {
    target: String,
    client: reqwest::Client,
    records: Arc<Mutex<Vec<RecordedRequest>>>,
    holds: Arc<Mutex<Vec<Hold>>>,
}

/// A request to hold, armed by [`RecordingProxy::hold_next`].
#[derive(Debug)]
struct Hold {
    method: String,
    path_prefix: String,
    reached: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

/// The test's side of a held request: wait until it arrives, do what must
/// happen before the runtime sees it, then release it (dropping the handle
/// releases it too).
#[derive(Debug)]
pub struct HeldRequest {
    reached: oneshot::Receiver<()>,
    release: Option<oneshot::Sender<()>>,
}

impl HeldRequest {
    /// Waits until the request arrives at the proxy (and is held there).
    /// Panics if the proxy stopped first.
    pub async fn reached(&mut self) {
        if (&mut self.reached).await.is_err() {
            panic!("the proxy stopped before the held request arrived");
        }
    }

    /// Lets the held request go on to the runtime.
    pub fn release(mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
    }
}

impl RecordingProxy {
    /// Listens on 127.0.0.1 and a free port and forwards every request to
    /// `target` (a base URL such as `http://127.0.0.1:1880/`).
    pub async fn start(target: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("the proxy cannot listen: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("the proxy has no address: {e}"))
            .port();
        let records = Arc::new(Mutex::new(Vec::new()));
        let holds = Arc::new(Mutex::new(Vec::new()));
        let state = State {
            target: target.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_else(|e| panic!("cannot build an HTTP client: {e}")),
            records: Arc::clone(&records),
            holds: Arc::clone(&holds),
        };
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req| forward(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url: format!("http://127.0.0.1:{port}/"),
            records,
            holds,
            task,
        }
    }

    /// The proxy's base URL, with a trailing `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Holds the next request whose method is `method` and whose path
    /// starts with `path_prefix` (it is recorded, then waits) until the
    /// returned handle releases it.
    pub fn hold_next(&self, method: &str, path_prefix: &str) -> HeldRequest {
        let (reached_tx, reached_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        if let Ok(mut holds) = self.holds.lock() {
            holds.push(Hold {
                method: method.to_owned(),
                path_prefix: path_prefix.to_owned(),
                reached: reached_tx,
                release: release_rx,
            });
        }
        HeldRequest {
            reached: reached_rx,
            release: Some(release_tx),
        }
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Headers that belong to one hop, not to the request.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "host"
            | "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "content-length"
            | "upgrade"
            | "te"
            | "trailer"
    )
}

async fn forward(state: State, req: Request<Incoming>) -> Result<Response<OneChunk>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match collect(body).await {
        Ok(body) => body,
        Err(e) => {
            return Ok(answer(
                StatusCode::BAD_REQUEST,
                format!("proxy: bad body: {e}"),
            ));
        }
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    if let Ok(mut records) = state.records.lock() {
        records.push(RecordedRequest {
            method: parts.method.as_str().to_owned(),
            path: path.clone(),
            headers: headers.clone(),
            body: body.clone(),
        });
    }
    let hold = state.holds.lock().ok().and_then(|mut holds| {
        let at = holds
            .iter()
            .position(|h| h.method == parts.method.as_str() && path.starts_with(&h.path_prefix))?;
        Some(holds.remove(at))
    });
    if let Some(hold) = hold {
        let _ = hold.reached.send(());
        // Released, or the handle dropped: either way, go on.
        let _ = hold.release.await;
    }

    let Ok(method) = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()) else {
        return Ok(answer(StatusCode::BAD_REQUEST, "proxy: bad method".into()));
    };
    let mut outgoing = state
        .client
        .request(method, format!("{}{path}", state.target))
        .body(body);
    for (name, value) in headers.iter().filter(|(n, _)| !hop_by_hop(n)) {
        outgoing = outgoing.header(name, value);
    }
    let upstream = match outgoing.send().await {
        Ok(upstream) => upstream,
        Err(e) => {
            return Ok(answer(
                StatusCode::BAD_GATEWAY,
                format!("proxy: {}", e.without_url()),
            ));
        }
    };
    let status = upstream.status().as_u16();
    let upstream_headers: Vec<(String, Vec<u8>)> = upstream
        .headers()
        .iter()
        .filter(|(n, _)| !hop_by_hop(n.as_str()))
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    let bytes = match upstream.bytes().await {
        Ok(bytes) => bytes,
        Err(e) => {
            return Ok(answer(
                StatusCode::BAD_GATEWAY,
                format!("proxy: {}", e.without_url()),
            ));
        }
    };
    let mut response = Response::new(OneChunk(Some(bytes)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in upstream_headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_bytes(&value),
        ) {
            response.headers_mut().append(name, value);
        }
    }
    Ok(response)
}

fn answer(status: StatusCode, text: String) -> Response<OneChunk> {
    let mut response = Response::new(OneChunk(Some(Bytes::from(text))));
    *response.status_mut() = status;
    response
}

async fn collect(mut body: Incoming) -> Result<Vec<u8>, hyper::Error> {
    let mut out = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame?.into_data() {
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// A body of one chunk, known in length.
#[derive(Debug)]
struct OneChunk(Option<Bytes>);

impl Body for OneChunk {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.0.as_ref().map_or(0, |b| b.len() as u64))
    }
}
