//! The real server on a free loopback port over a throwaway database, and
//! a cookie-keeping client that behaves like a browser (no redirects
//! followed, so tests can see them).

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use stagehand_domain::{
    BuiltinRole, FlowContent, FlowName, InstanceId, Name, Permission, PipelineId, SecretValue,
    StageId, TeamId, UserId, Username,
};
use stagehand_store::testing::TestDatabase;
use stagehand_store::{Actor, NewUser, Store};
use stagehand_web::{AppState, WebConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::oneshot;

pub const PASSWORD: &str = "correct horse battery staple";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub store: Arc<dyn Store>,
    db: Option<TestDatabase>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// PostgreSQL when the test command provides one, else SQLite.
pub fn default_backend() -> Backend {
    if std::env::var("DATABASE_URL").is_ok() {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(default_backend(), WebConfig::default()).await
}

pub async fn spawn_app_with(backend: Backend, config: WebConfig) -> TestApp {
    let db = match backend {
        Backend::Sqlite => TestDatabase::sqlite().await.expect("sqlite"),
        Backend::Postgres => TestDatabase::postgres()
            .await
            .expect("postgres")
            .expect("DATABASE_URL: run scripts/test.sh"),
    };
    spawn_app_over(db, config).await
}

/// The server over a database the test prepared (a disk it can fill, a
/// PostgreSQL it can take away).
pub async fn spawn_app_over(db: TestDatabase, config: WebConfig) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let state = AppState::new(db.store.clone(), config);
    let server = tokio::spawn(async move {
        stagehand_web::serve(listener, state, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    TestApp {
        addr,
        store: db.store.clone(),
        db: Some(db),
        stop: Some(stop),
        server: Some(server),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Where the data lives, for tests that look behind the server's back.
    pub fn database(&self) -> &stagehand_store::Database {
        &self.db.as_ref().expect("running").database
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        if let Some(db) = self.db.take() {
            db.cleanup().await;
        }
    }

    pub async fn user(&self, name: &str, platform_admin: bool) -> UserId {
        let hash = stagehand_web::auth::password::hash_password(SecretValue::new(PASSWORD.into()))
            .await
            .unwrap();
        self.store
            .create_user(
                NewUser {
                    username: Username::parse(name).unwrap(),
                    password_hash: hash,
                    is_platform_admin: platform_admin,
                },
                &Actor::system(),
            )
            .await
            .unwrap()
            .id
    }

    pub async fn team(&self, name: &str) -> TeamId {
        self.store
            .create_team(Name::parse("name", name).unwrap(), &Actor::system())
            .await
            .unwrap()
            .id
    }

    pub async fn bind(&self, team: TeamId, user: UserId, role: BuiltinRole) {
        self.store
            .bind_role(team, user, role.as_str(), &Actor::system())
            .await
            .unwrap();
    }

    /// A user holding `role` in `team`, logged in.
    pub async fn member(&self, team: TeamId, name: &str, role: BuiltinRole) -> Client {
        let id = self.user(name, false).await;
        self.bind(team, id, role).await;
        let c = Client::new(self);
        c.login(name, PASSWORD).await;
        c
    }

    pub async fn instance(&self, team: TeamId, name: &str, flows: &[(&str, &str)]) -> InstanceId {
        let i = self
            .store
            .create_instance(
                team,
                Name::parse("name", name).unwrap(),
                serde_json::json!({"url": format!("https://{name}.example")}),
                &Actor::system(),
            )
            .await
            .unwrap();
        for (flow, content) in flows {
            self.store
                .put_flow(
                    team,
                    i.id,
                    FlowName::parse(flow).unwrap(),
                    FlowContent::parse_json(content).unwrap(),
                    None,
                    &Actor::system(),
                )
                .await
                .unwrap();
        }
        i.id
    }

    /// Sets an env key of an instance, with a value or awaiting one.
    pub async fn env(&self, team: TeamId, instance: InstanceId, key: &str, value: Option<&str>) {
        self.store
            .set_env_var(
                team,
                instance,
                stagehand_domain::EnvKey::parse(key).unwrap(),
                value.map(|v| stagehand_domain::SecretValue::new(v.into())),
                &Actor::system(),
            )
            .await
            .unwrap();
    }

    /// An API token with `role` in `team` (a service account); its secret.
    pub async fn token(&self, team: TeamId, name: &str, role: &str) -> String {
        let secret = stagehand_web::auth::tokens::new_secret();
        self.store
            .create_token(
                stagehand_store::NewApiToken {
                    team,
                    name: Name::parse("name", name).unwrap(),
                    secret_hash: stagehand_web::auth::tokens::hash_secret(&secret),
                    user_id: None,
                    role: role.into(),
                    expires_at: None,
                },
                &Actor::system(),
            )
            .await
            .unwrap();
        secret
    }

    /// A user whose only role in `team` is a custom role `role` holding
    /// exactly `permissions`, logged in; the client and the user's id.
    pub async fn member_holding(
        &self,
        team: TeamId,
        name: &str,
        role: &str,
        permissions: &[Permission],
    ) -> (Client, UserId) {
        self.store
            .create_role(
                team,
                Name::parse("name", role).unwrap(),
                permissions.iter().copied().collect(),
                &Actor::system(),
            )
            .await
            .unwrap();
        let id = self.user(name, false).await;
        self.store
            .bind_role(team, id, role, &Actor::system())
            .await
            .unwrap();
        let c = Client::new(self);
        c.login(name, PASSWORD).await;
        (c, id)
    }

    /// A token the user makes for themselves, acting with `role`; its
    /// secret. Made as the tokens page makes it: by the user, holding what
    /// they hold in the team.
    pub async fn own_token(&self, team: TeamId, user: UserId, name: &str, role: &str) -> String {
        let who = self.store.user(user).await.unwrap();
        let held = self.store.permissions(team, user).await.unwrap();
        let secret = stagehand_web::auth::tokens::new_secret();
        self.store
            .create_token(
                stagehand_store::NewApiToken {
                    team,
                    name: Name::parse("name", name).unwrap(),
                    secret_hash: stagehand_web::auth::tokens::hash_secret(&secret),
                    user_id: Some(user),
                    role: role.into(),
                    expires_at: None,
                },
                &Actor::user(user, &who.username).holding(held),
            )
            .await
            .unwrap();
        secret
    }

    /// A pipeline over `instances`, in order; returns it and its stage ids.
    pub async fn pipeline(
        &self,
        team: TeamId,
        name: &str,
        instances: &[InstanceId],
    ) -> (PipelineId, Vec<StageId>) {
        let p = self
            .store
            .create_pipeline(team, Name::parse("name", name).unwrap(), &Actor::system())
            .await
            .unwrap();
        let mut stages = Vec::new();
        for i in instances {
            let after = self
                .store
                .add_stage(team, p.id, *i, None, &Actor::system())
                .await
                .unwrap();
            stages.push(after.stages.last().unwrap().id);
        }
        (p.id, stages)
    }
}

/// A browser-like client: keeps cookies, does not follow redirects, and
/// knows the CSRF token of its session once it has loaded a page.
pub struct Client {
    pub http: reqwest::Client,
    base: String,
    pub csrf: std::sync::Mutex<String>,
}

pub struct Page {
    pub status: StatusCode,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        self
    }

    pub fn assert_redirect_to(&self, prefix: &str) -> &Self {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.body);
        let to = self.location.as_deref().unwrap_or("");
        assert!(to.starts_with(prefix), "redirect to {to}, wanted {prefix}");
        self
    }
}

/// The value of the first `name="csrf_token"` field of a page.
pub fn csrf_of(body: &str) -> Option<String> {
    let at = body.find("name=\"csrf_token\" value=\"")?;
    let rest = &body[at + "name=\"csrf_token\" value=\"".len()..];
    Some(rest[..rest.find('"')?].to_owned())
}

impl Client {
    pub fn new(app: &TestApp) -> Self {
        Self {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(Policy::none())
                .build()
                .unwrap(),
            base: app.url(""),
            csrf: std::sync::Mutex::new(String::new()),
        }
    }

    pub fn base(&self) -> &str {
        self.base.trim_end_matches('/')
    }

    pub async fn page(&self, res: reqwest::Response) -> Page {
        let status = res.status();
        let headers = res.headers().clone();
        let location = headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = res.text().await.unwrap();
        if let Some(t) = csrf_of(&body) {
            *self.csrf.lock().unwrap() = t;
        }
        Page {
            status,
            location,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        let res = self
            .http
            .get(format!("{}{}", self.base, path))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        self.page(res).await
    }

    /// A form post as the browser sends it: same origin, with the session's
    /// CSRF token added.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.csrf.lock().unwrap().clone();
        let mut all: Vec<(&str, &str)> = vec![("csrf_token", token.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all, true).await
    }

    /// A form post with exactly `fields`, with or without our Origin.
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)], same_origin: bool) -> Page {
        let mut req = self
            .http
            .post(format!("{}{}", self.base, path))
            .header("accept", "text/html")
            .form(fields);
        req = req.header(
            "origin",
            if same_origin {
                self.base.trim_end_matches('/').to_owned()
            } else {
                "https://evil.example".to_owned()
            },
        );
        let res = req.send().await.unwrap();
        self.page(res).await
    }

    pub async fn login(&self, username: &str, password: &str) -> Page {
        let form = self.get("/login").await;
        form.assert_ok();
        let page = self
            .post_raw(
                "/login",
                &[
                    ("csrf_token", &csrf_of(&form.body).unwrap()),
                    ("username", username),
                    ("password", password),
                    ("next", "/"),
                ],
                true,
            )
            .await;
        if page.status == StatusCode::SEE_OTHER {
            // Load a page to learn the session's CSRF token.
            self.get("/").await.assert_ok();
        }
        page
    }
}

/// The value of the first `<input name="{name}" value="…">` of a page.
pub fn field_value(body: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let at = body.find(&marker)?;
    let rest = &body[at + marker.len()..];
    Some(rest[..rest.find('"')?].to_owned())
}

/// A TCP proxy in front of PostgreSQL that a test can cut: its port then
/// refuses connections and every connection through it drops, as when the
/// server stops; and restore, as when it is back.
pub struct PgProxy {
    /// The database, reached through the proxy.
    pub database: stagehand_store::Database,
    listen: SocketAddr,
    server: String,
    accept: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    links: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl PgProxy {
    pub async fn start(database: &stagehand_store::Database) -> Self {
        let stagehand_store::Database::Postgres { url } = database else {
            panic!("a proxy needs PostgreSQL");
        };
        // postgres://user@host:port/name
        let (head, rest) = url.split_once('@').unwrap();
        let (server, tail) = rest.split_once('/').unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let listen = listener.local_addr().unwrap();
        let proxy = Self {
            database: stagehand_store::Database::Postgres {
                url: format!("{head}@{listen}/{tail}"),
            },
            listen,
            server: server.to_owned(),
            accept: std::sync::Mutex::new(None),
            links: Arc::default(),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let (server, links) = (self.server.clone(), self.links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let server = server.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut upstream) = tokio::net::TcpStream::connect(&server).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                    }
                });
                links.lock().unwrap().push(link);
            }
        });
        *self.accept.lock().unwrap() = Some(accept);
    }

    /// PostgreSQL is gone: the port refuses, open connections drop.
    pub fn cut(&self) {
        if let Some(accept) = self.accept.lock().unwrap().take() {
            accept.abort();
        }
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    /// PostgreSQL is back, on the same address.
    pub async fn restore(&self) {
        let listener = tokio::net::TcpListener::bind(self.listen).await.unwrap();
        self.serve(listener);
    }
}

/// The JSON API as a bearer-token client (a CI bot, a script) calls it.
pub struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    pub fn new(app: &TestApp) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: app.url("/api/v1"),
        }
    }

    /// `method /api/v1{path}` with `token`: the status and the JSON body
    /// (`Null` if it is not JSON).
    pub async fn call(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, serde_json::Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or_default())
    }

    /// An instance's env keys as the API lists them, each with whether it
    /// has a value.
    pub async fn value_keys(&self, token: &str, instance: InstanceId) -> Vec<(String, bool)> {
        let (status, body) = self
            .call(
                token,
                reqwest::Method::GET,
                &format!("/instances/{instance}/env"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["key"].as_str().unwrap().to_owned(),
                    v["has_value"].as_bool().unwrap(),
                )
            })
            .collect()
    }
}
