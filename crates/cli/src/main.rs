//! The `stagehand` binary: a thin shell over the library crates.

mod admin;
mod moving;
mod remote;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use stagehand_store::crypto::SecretKey;
use stagehand_store::{Database, StoreOptions};
use std::path::PathBuf;

/// Stagehand: a self-hosted control plane for dev → prod pipelines.
#[derive(Debug, Parser)]
#[command(name = "stagehand", version, about)]
struct Cli {
    #[command(flatten)]
    storage: StorageArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
pub(crate) struct StorageArgs {
    /// PostgreSQL URL; without it, data lives in SQLite under --data-dir.
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    database_url: Option<String>,
    /// Where the embedded database and the generated secret key live.
    #[arg(
        long,
        env = "STAGEHAND_DATA_DIR",
        global = true,
        default_value = "stagehand-data"
    )]
    data_dir: PathBuf,
    /// How long a request waits for a PostgreSQL connection before it is
    /// answered 503 `unavailable` (milliseconds).
    #[arg(
        long,
        env = "STAGEHAND_DB_ACQUIRE_TIMEOUT_MS",
        global = true,
        default_value_t = 2000,
        value_parser = clap::value_parser!(u64).range(1..=600_000)
    )]
    db_acquire_timeout_ms: u64,
    /// The most PostgreSQL connections this process opens; with several
    /// replicas, keep replicas × this (+1 replica while a rolling update
    /// runs) under PostgreSQL's max_connections.
    #[arg(
        long,
        env = "STAGEHAND_DB_MAX_CONNECTIONS",
        global = true,
        default_value_t = StoreOptions::DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::value_parser!(u32).range(2..=1000)
    )]
    db_max_connections: u32,
}

impl StorageArgs {
    fn database(&self) -> Database {
        match &self.database_url {
            Some(url) if !url.is_empty() => Database::Postgres { url: url.clone() },
            _ => Database::Sqlite {
                path: self.data_dir.join("stagehand.db"),
            },
        }
    }

    fn key_from_env() -> Option<String> {
        std::env::var("STAGEHAND_SECRET_KEY")
            .ok()
            .filter(|k| !k.is_empty())
    }

    /// Makes the data directory 0700 (creating it if missing) when this
    /// run keeps anything there: the SQLite database, or the generated key.
    /// The database files and the key are made 0600 by the store.
    fn secure_data_dir(&self) -> Result<()> {
        let used =
            matches!(self.database(), Database::Sqlite { .. }) || Self::key_from_env().is_none();
        if used {
            stagehand_store::files::private_dir(&self.data_dir).with_context(|| {
                format!(
                    "could not make the data directory {} private (mode 0700)",
                    self.data_dir.display()
                )
            })?;
        }
        Ok(())
    }

    /// The key from STAGEHAND_SECRET_KEY, or the one in the data directory.
    fn key(&self) -> Result<SecretKey> {
        let from_env = Self::key_from_env();
        Ok(SecretKey::load_or_generate(
            from_env.as_deref(),
            &self.data_dir,
        )?)
    }

    /// The SQLite database in the data directory; an error when
    /// DATABASE_URL is set (the commands that need it act on SQLite only).
    fn sqlite_database(&self) -> Result<Database> {
        match self.database() {
            Database::Postgres { .. } => bail!(
                "this command acts on the SQLite store in --data-dir, but DATABASE_URL is set; \
                 unset it (for PostgreSQL use pg_dump and pg_restore: see the README's Backups)"
            ),
            sqlite => Ok(sqlite),
        }
    }

    fn key_file(&self) -> PathBuf {
        self.data_dir.join(stagehand_store::crypto::KEY_FILE)
    }

    /// The key the data was written with: never a freshly generated one.
    fn existing_key(&self) -> Result<SecretKey> {
        let from_env = Self::key_from_env();
        if from_env.is_none() && !self.key_file().is_file() {
            bail!(
                "no secret key: set STAGEHAND_SECRET_KEY, or keep {} where the server keeps it",
                self.key_file().display()
            );
        }
        Ok(SecretKey::load_or_generate(
            from_env.as_deref(),
            &self.data_dir,
        )?)
    }

    fn options(&self) -> StoreOptions {
        StoreOptions {
            acquire_timeout: std::time::Duration::from_millis(self.db_acquire_timeout_ms),
            max_connections: self.db_max_connections,
        }
    }

    pub(crate) async fn open(&self) -> Result<std::sync::Arc<dyn stagehand_store::Store>> {
        self.secure_data_dir()?;
        let database = self.database();
        let key = self.key()?;
        stagehand_store::open_with(&database, &key, &self.options())
            .await
            .with_context(|| format!("could not open the database {database:?}"))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (applies pending migrations first).
    Serve {
        /// Address to listen on.
        #[arg(long, env = "STAGEHAND_BIND", default_value = "127.0.0.1:8080")]
        bind: String,
        /// The URL users reach Stagehand at, e.g. https://stagehand.example.com.
        /// State-changing requests must come from this origin; with https,
        /// cookies are marked Secure. Unset: the Host each request was sent to.
        #[arg(long, env = "STAGEHAND_PUBLIC_URL")]
        public_url: Option<String>,
        /// Serve Prometheus metrics at /metrics on this address (e.g.
        /// 0.0.0.0:9464), and only there. Unset: no metrics are served.
        #[arg(long, env = "STAGEHAND_METRICS_BIND")]
        metrics_bind: Option<String>,
        /// Load balancers whose X-Forwarded-For / Forwarded headers name the
        /// client: comma-separated addresses or CIDRs (10.0.0.0/8). Unset:
        /// the TCP peer is the client, and forwarding headers are ignored.
        #[arg(long, env = "STAGEHAND_TRUSTED_PROXIES", value_parser = parse_proxies)]
        trusted_proxies: Option<stagehand_web::client_addr::TrustedProxies>,
        /// The forwarding header those proxies write: x-forwarded-for (nginx,
        /// ingress-nginx, most balancers) or forwarded (RFC 7239). Only that
        /// one is read; the other is whatever the client sent.
        #[arg(
            long,
            env = "STAGEHAND_FORWARDED_HEADER",
            default_value = "x-forwarded-for",
            value_parser = stagehand_web::client_addr::ForwardedHeader::parse
        )]
        forwarded_header: stagehand_web::client_addr::ForwardedHeader,
        /// After SIGTERM or Ctrl-C, answer /readyz with 503 for this many
        /// seconds while still serving, so a load balancer stops sending
        /// requests here before the server stops accepting them.
        #[arg(
            long,
            env = "STAGEHAND_SHUTDOWN_DELAY_SECS",
            default_value_t = 0,
            value_parser = clap::value_parser!(u64).range(0..=300)
        )]
        shutdown_delay_secs: u64,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Copy the SQLite store in --data-dir into an empty PostgreSQL
    /// database, verify the copy (row counts, content hashes, audit chains)
    /// and commit it only if it verified. Stop the server first.
    MigrateStore {
        /// The target: postgres://user:password@host/database (empty).
        #[arg(long)]
        to: String,
    },
    /// Write a consistent copy of the SQLite store into a new file, while
    /// the server runs (for PostgreSQL, use pg_dump).
    Backup {
        /// The backup file to create.
        #[arg(long)]
        to: PathBuf,
    },
    /// Manage local user accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage teams.
    Team {
        #[command(subcommand)]
        command: admin::TeamCommand,
    },
    /// Give users roles in teams.
    Member {
        #[command(subcommand)]
        command: admin::MemberCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: admin::TokenCommand,
    },
    /// Check the tamper-evident audit log.
    Audit {
        #[command(subcommand)]
        command: admin::AuditCommand,
    },
    /// Remove what the retention policy does not keep (expired sessions,
    /// old failed logins, unreferenced flow content; old promotions,
    /// snapshots and audit events as the flags say).
    Purge(admin::PurgeArgs),
    /// Recompute the delivery metrics (one row per target stage and day)
    /// from the promotions kept: once after upgrading from a version that
    /// did not keep them. Safe while serving; each day is its own
    /// transaction.
    RebuildMetrics,
    /// Push or pull an instance's flows (remote: STAGEHAND_URL, STAGEHAND_TOKEN).
    Flows {
        #[command(flatten)]
        server: remote::Server,
        #[command(subcommand)]
        command: remote::FlowsCommand,
    },
    /// Connect an instance to its runtime, test it, pull it (remote).
    Instance {
        #[command(flatten)]
        server: remote::Server,
        #[command(subcommand)]
        command: remote::InstanceCommand,
    },
    /// An instance's env keys (remote).
    Env {
        #[command(flatten)]
        server: remote::Server,
        #[command(subcommand)]
        command: remote::EnvCommand,
    },
    /// Promote a stage into the next one, printing the plan (remote).
    Promote {
        #[command(flatten)]
        server: remote::Server,
        #[command(flatten)]
        args: remote::PromoteArgs,
    },
    /// The promotion history (remote).
    Promotions {
        #[command(flatten)]
        server: remote::Server,
        #[command(subcommand)]
        command: remote::PromotionsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Create a user. The password is prompted for, or read from stdin.
    Create {
        username: String,
        /// Make the user a platform administrator.
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

fn parse_proxies(s: &str) -> Result<stagehand_web::client_addr::TrustedProxies, String> {
    stagehand_web::client_addr::TrustedProxies::parse(s)
}

/// Logs to stderr: text for people, or one JSON object per line
/// (`STAGEHAND_LOG_FORMAT=json`) for a log pipeline; either way a line
/// written while serving a request carries the request's id.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into());
    let format = std::env::var("STAGEHAND_LOG_FORMAT").unwrap_or_default();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format.trim() {
        "json" => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        "" | "text" => builder.init(),
        other => {
            builder.init();
            tracing::warn!("STAGEHAND_LOG_FORMAT={other:?} is not json or text; logging as text");
        }
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    init_logs();
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            match e.downcast_ref::<remote::Failure>() {
                Some(f) => std::process::ExitCode::from(f.exit as u8),
                None => std::process::ExitCode::FAILURE,
            }
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve {
            bind,
            public_url,
            metrics_bind,
            trusted_proxies,
            forwarded_header,
            shutdown_delay_secs,
        } => {
            let options = ServeOptions {
                bind,
                public_url,
                metrics_bind: metrics_bind.filter(|b| !b.trim().is_empty()),
                trusted_proxies: trusted_proxies
                    .unwrap_or_default()
                    .reading(forwarded_header),
                shutdown_delay: std::time::Duration::from_secs(shutdown_delay_secs),
            };
            serve(&cli.storage, options).await
        }
        Command::Migrate => {
            let database = cli.storage.database();
            if matches!(database, Database::Sqlite { .. }) {
                cli.storage.secure_data_dir()?;
            }
            stagehand_store::migrate(&database, &cli.storage.options()).await?;
            eprintln!("migrations applied to {database:?}");
            Ok(())
        }
        Command::MigrateStore { to } => moving::migrate_store(&cli.storage, &to).await,
        Command::Backup { to } => moving::backup(&cli.storage, &to).await,
        Command::User {
            command:
                UserCommand::Create {
                    username,
                    admin,
                    password_stdin,
                },
        } => admin::create_user(&cli.storage, &username, admin, password_stdin).await,
        Command::Team { command } => admin::team(&cli.storage, command).await,
        Command::Member { command } => admin::member(&cli.storage, command).await,
        Command::Token { command } => admin::token(&cli.storage, command).await,
        Command::Audit { command } => admin::audit(&cli.storage, command).await,
        Command::Purge(args) => admin::purge(&cli.storage, args).await,
        Command::RebuildMetrics => admin::rebuild_metrics(&cli.storage).await,
        Command::Flows { server, command } => Ok(remote::flows(&server, command).await?),
        Command::Env { server, command } => Ok(remote::env(&server, command).await?),
        Command::Instance { server, command } => Ok(remote::instance(&server, command).await?),
        Command::Promote { server, args } => Ok(remote::promote(&server, args).await?),
        Command::Promotions { server, command } => Ok(remote::promotions(&server, command).await?),
    }
}

/// A whole number from the environment: `None` if unset or blank, an error
/// naming the variable if it is not one.
fn env_number<T: std::str::FromStr>(name: &str) -> Result<Option<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<T>()
            .map(Some)
            .with_context(|| format!("{name} must be a whole number, got {v:?}")),
        _ => Ok(None),
    }
}

/// How the server talks to runtimes, from the environment.
fn runtime_options() -> Result<stagehand_web::RuntimeOptions> {
    let mut options = stagehand_web::RuntimeOptions::default();
    let number = env_number::<u64>;
    if let Some(ms) = number("STAGEHAND_RUNTIME_TIMEOUT_MS")? {
        options.client.timeout = std::time::Duration::from_millis(ms.max(100));
        options.reconcile_after = options.client.timeout + std::time::Duration::from_secs(5);
    }
    if let Some(s) = number("STAGEHAND_DRIFT_CHECK_SECS")? {
        options.drift_check_every = std::time::Duration::from_secs(s.max(1));
    }
    if let Some(s) = number("STAGEHAND_RECONCILE_SECS")? {
        options.reconcile_every = std::time::Duration::from_secs(s.max(1));
    }
    if let Some(s) = number("STAGEHAND_RECONCILE_AFTER_SECS")? {
        options.reconcile_after = std::time::Duration::from_secs(s);
    }
    if let Some(ms) = number("STAGEHAND_FAULT_PAUSE_AFTER_DEPLOY_MS")? {
        tracing::warn!(
            "STAGEHAND_FAULT_PAUSE_AFTER_DEPLOY_MS is set: deploys pause before they are recorded (crash tests only)"
        );
        options.fault_pause_after_deploy = Some(std::time::Duration::from_millis(ms));
    }
    Ok(options)
}

/// The retention job, from the environment: `STAGEHAND_PURGE_SECS` (0
/// turns it off), and the policy `stagehand purge` reads too.
fn retention_options() -> Result<stagehand_web::RetentionOptions> {
    let mut options = stagehand_web::RetentionOptions::default();
    let number = env_number::<u32>;
    if let Some(s) = number("STAGEHAND_PURGE_SECS")? {
        options.every = (s > 0).then(|| std::time::Duration::from_secs(u64::from(s)));
    }
    options.policy = admin::policy(
        number("STAGEHAND_RETAIN_SNAPSHOTS")?,
        number("STAGEHAND_RETAIN_DAYS")?,
    );
    Ok(options)
}

/// What `serve` was asked for, besides the store.
#[derive(Debug)]
struct ServeOptions {
    bind: String,
    public_url: Option<String>,
    metrics_bind: Option<String>,
    trusted_proxies: stagehand_web::client_addr::TrustedProxies,
    shutdown_delay: std::time::Duration,
}

async fn serve(storage: &StorageArgs, options: ServeOptions) -> Result<()> {
    let ServeOptions {
        bind,
        public_url,
        metrics_bind,
        trusted_proxies,
        shutdown_delay,
    } = options;
    if let Some(url) = public_url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        anyhow::bail!("STAGEHAND_PUBLIC_URL must start with https:// or http://, got {url:?}");
    }
    let store = storage.open().await?;
    let listener = tokio::net::TcpListener::bind(&bind)
        .await
        .with_context(|| format!("could not listen on {bind}"))?;
    let metrics_listener = match &metrics_bind {
        Some(at) => Some(
            tokio::net::TcpListener::bind(at)
                .await
                .with_context(|| format!("could not listen on {at} (STAGEHAND_METRICS_BIND)"))?,
        ),
        None => None,
    };
    let addr = listener.local_addr()?;
    if store.count_users().await? == 0 {
        tracing::warn!(
            "no user exists yet: create the first administrator with `stagehand user create NAME --admin`"
        );
    }
    let mut config = stagehand_web::WebConfig::default().with_public_url(public_url);
    config.runtimes = runtime_options()?;
    config.trusted_proxies = trusted_proxies;
    config.shutdown_delay = shutdown_delay;
    config.retention = retention_options()?;
    let state = stagehand_web::AppState::new(store, config);
    let mut tasks = Vec::new();
    if let Some(metrics_listener) = metrics_listener {
        let handle = stagehand_web::metrics::install().map_err(anyhow::Error::msg)?;
        tracing::info!(
            "metrics at http://{}/metrics",
            metrics_listener.local_addr()?
        );
        tasks.push(tokio::spawn(stagehand_web::metrics::upkeep(handle.clone())));
        tasks.push(tokio::spawn(stagehand_web::metrics::serve(
            metrics_listener,
            state.clone(),
            handle,
        )));
    }
    // Reconciliation of deploys a crash interrupted, the drift check and
    // the purge: on one replica at a time (the jobs table), from the start.
    tasks.push(tokio::spawn(stagehand_web::jobs::background(state.clone())));
    // What this replica runs with, so an operator can check a pod's
    // configuration from its first lines (never a secret).
    let c = &state.config;
    tracing::info!(
        public_url = c.public_url.as_deref().unwrap_or("(each request's Host)"),
        trusted_proxies = ?c.trusted_proxies,
        shutdown_delay_secs = c.shutdown_delay.as_secs(),
        metrics = metrics_bind.as_deref().unwrap_or("off"),
        db_max_connections = storage.db_max_connections,
        retain_snapshots = ?c.retention.policy.keep_snapshots_per_instance,
        retain_days = ?c.retention.policy.max_age.map(|a| a.as_secs() / 86_400),
        purge_every_secs = ?c.retention.every.map(|e| e.as_secs()),
        "configuration"
    );
    let signal = stagehand_web::shutdown_signal().context("could not install signal handlers")?;
    tracing::info!(database = ?storage.database(), "stagehand listening on http://{addr}");
    let draining = state.clone();
    let shutdown = async move {
        signal.await;
        draining.begin_draining();
        if !shutdown_delay.is_zero() {
            tracing::info!(
                delay = ?shutdown_delay,
                "draining: /readyz answers 503 while requests are still served"
            );
            tokio::time::sleep(shutdown_delay).await;
        }
    };
    let served = stagehand_web::serve(listener, state, shutdown).await;
    for task in tasks {
        task.abort();
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}
