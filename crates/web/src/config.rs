//! The web server's settings, with production defaults.

use crate::client_addr::TrustedProxies;
use std::time::Duration;

/// Largest request body: a flow may be 8 MiB of JSON, which a form encodes
/// into at most about three times that.
pub const MAX_BODY_BYTES: usize = 26 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct WebConfig {
    /// `STAGEHAND_PUBLIC_URL`, e.g. `https://stagehand.example.com`: the
    /// origin state-changing requests must come from, and whether cookies
    /// are `Secure`. Unset: the request's own `Host`.
    pub public_url: Option<String>,
    /// A session ends after this long without a request.
    pub session_idle: Duration,
    /// A session ends this long after login, however active.
    pub session_absolute: Duration,
    pub throttle: LoginThrottle,
    /// How long `/readyz` waits for its write probe before it answers
    /// "unavailable": under a second, as probes expect.
    pub ready_timeout: Duration,
    pub connections: ConnectionLimits,
    pub runtimes: RuntimeOptions,
    /// `STAGEHAND_TRUSTED_PROXIES`: the load balancers whose
    /// `X-Forwarded-For`/`Forwarded` name the client (see `client_addr`).
    /// Empty: the TCP peer is the client.
    pub trusted_proxies: TrustedProxies,
    /// `STAGEHAND_SHUTDOWN_DELAY_SECS`: after SIGTERM, `/readyz` answers 503
    /// for this long while requests are still served, so a load balancer
    /// stops sending new ones before the server stops accepting.
    pub shutdown_delay: Duration,
    pub retention: RetentionOptions,
}

/// The retention job (`retention.rs`): the purge, on a timer.
#[derive(Debug, Clone)]
pub struct RetentionOptions {
    /// What the job purges (`STAGEHAND_RETAIN_SNAPSHOTS`,
    /// `STAGEHAND_RETAIN_DAYS`). Failed logins the login throttle still
    /// counts are kept whatever it says.
    pub policy: stagehand_store::RetentionPolicy,
    /// How often one replica runs it (`STAGEHAND_PURGE_SECS`); `None`
    /// turns it off.
    pub every: Option<Duration>,
}

impl Default for RetentionOptions {
    fn default() -> Self {
        Self {
            policy: stagehand_store::RetentionPolicy::default(),
            every: Some(Duration::from_secs(60 * 60)),
        }
    }
}

/// How Stagehand talks to connected runtimes and watches them.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Timeouts of every runtime call (`STAGEHAND_RUNTIME_TIMEOUT_MS`).
    pub client: stagehand_runtime::ClientOptions,
    /// How long the pipeline page waits for a stage's runtime before it
    /// shows the last known state.
    pub page_check: Duration,
    /// How often one replica checks every connected runtime for drift
    /// (`STAGEHAND_DRIFT_CHECK_SECS`).
    pub drift_check_every: Duration,
    /// How often one replica reconciles promotions left `deploying`.
    pub reconcile_every: Duration,
    /// A promotion deploying for longer than this is presumed orphaned
    /// (its replica died) and reconciled against the runtime. Longer than
    /// the client timeout, so a live deploy is never second-guessed.
    pub reconcile_after: Duration,
    /// Who this replica is, in the jobs table.
    pub holder: String,
    /// Fault injection for the crash tests: after a runtime accepted a
    /// deploy, wait this long before recording it
    /// (`STAGEHAND_FAULT_PAUSE_AFTER_DEPLOY_MS`; never set it otherwise).
    pub fault_pause_after_deploy: Option<Duration>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        let client = stagehand_runtime::ClientOptions::default();
        Self {
            reconcile_after: client.timeout + Duration::from_secs(5),
            client,
            page_check: Duration::from_secs(2),
            drift_check_every: Duration::from_secs(60),
            reconcile_every: Duration::from_secs(15),
            holder: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple()),
            fault_pause_after_deploy: None,
        }
    }
}

/// How long a client may hold a connection without doing its part, and how
/// many connections are open at once (see `server.rs`). A client past a
/// limit is disconnected; past the cap, new connections wait to be
/// accepted.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// A request's headers must be complete this long after the connection
    /// opened (its first request) or after their first byte (later ones).
    pub header_read: Duration,
    /// A request's body must have arrived this long after its headers.
    pub body_read: Duration,
    /// A kept-alive connection between requests, or one whose client does
    /// not read the response, is closed after this long.
    pub idle: Duration,
    /// Connections open at once; keep it under the process's file
    /// descriptor limit, with room for the database pool.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(30),
            idle: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// Failed logins allowed inside `window` before further attempts are
/// refused until the window has passed.
#[derive(Debug, Clone)]
pub struct LoginThrottle {
    pub window: Duration,
    pub per_account: i64,
    pub per_address: i64,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            public_url: None,
            session_idle: Duration::from_secs(30 * 60),
            session_absolute: Duration::from_secs(12 * 60 * 60),
            throttle: LoginThrottle {
                window: Duration::from_secs(15 * 60),
                per_account: 5,
                per_address: 30,
            },
            ready_timeout: Duration::from_millis(800),
            connections: ConnectionLimits::default(),
            runtimes: RuntimeOptions::default(),
            trusted_proxies: TrustedProxies::default(),
            shutdown_delay: Duration::ZERO,
            retention: RetentionOptions::default(),
        }
    }
}

impl WebConfig {
    /// Sets the public URL; blank means unset.
    pub fn with_public_url(mut self, url: Option<String>) -> Self {
        self.public_url = url
            .map(|u| u.trim().trim_end_matches('/').to_owned())
            .filter(|u| !u.is_empty());
        self
    }

    /// Cookies are `Secure` when the public URL is https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blank_public_url_is_no_public_url() {
        assert_eq!(
            WebConfig::default()
                .with_public_url(Some("  ".into()))
                .public_url,
            None
        );
        let c = WebConfig::default().with_public_url(Some("https://s.example/".into()));
        assert_eq!(c.public_url.as_deref(), Some("https://s.example"));
        assert!(c.secure_cookies());
    }
}
