//! Connected instances, driven in one place for the pages, the API, the
//! approvals and the background jobs: connect, check, pull, and the deploy
//! state machine of a promotion into a connected target.
//!
//! A promotion into a connected target goes:
//! 1. the store plans it under the target's lock, takes the backup and
//!    records it `deploying` (`Store::play`, `rollback`, `decide`);
//! 2. [`run`] builds the payload from the shipped flows with the
//!    **target's** values and sends it with the target's last known
//!    revision, so a runtime changed since is a conflict, not an overwrite;
//! 3. the runtime's answer becomes `applied` (with its new revision) or
//!    `failed` (with its error) in one transaction (`Store::finish_deploy`).
//!
//! A crash between 2 and 3 leaves `deploying`; [`reconcile`] (at start and
//! periodically, on one replica at a time) compares the runtime's content
//! with what was sent and ends it `applied` or `failed`, audited.

use crate::AppState;
use crate::error::{AppError, AppResult};
use crate::scrub::Secrets;
use axum::http::StatusCode;
use stagehand_domain::{
    ContentHash, FlowName, InstanceId, PromotionId, PromotionStatus, SecretValue, TeamId,
};
use stagehand_runtime::{
    Connection, Deployment, FoundValue, Revision, Runtime, RuntimeAuth, RuntimeError, RuntimeKind,
};
use stagehand_store::{
    Actor, Decision, DeployOutcome, Instance, NewRuntimeLink, Played, Promotion, PromotionRequest,
    PulledState, PulledValue, RuntimeLink, RuntimeState,
};
use std::collections::BTreeMap;

/// What a connect request carries.
#[derive(Debug)]
pub struct ConnectRequest {
    pub kind: RuntimeKind,
    pub url: String,
    pub auth: RuntimeAuth,
}

/// Checks a connect request: a URL Stagehand will call, credentials of the
/// kind the runtime takes.
pub fn check_connect(request: &ConnectRequest) -> AppResult<url::Url> {
    let url = stagehand_runtime::http::check_url(&request.url)
        .map_err(|m| AppError::invalid("url", m))?;
    let fits = matches!(
        (request.kind, &request.auth),
        (
            RuntimeKind::NodeRed,
            RuntimeAuth::None | RuntimeAuth::Bearer { .. } | RuntimeAuth::Basic { .. }
        ) | (RuntimeKind::Langflow, RuntimeAuth::ApiKey { .. })
    );
    if !fits {
        return Err(AppError::invalid(
            "auth",
            match request.kind {
                RuntimeKind::NodeRed => {
                    "Node-RED takes a bearer token or adminAuth user and password"
                }
                RuntimeKind::Langflow => "Langflow takes an API key",
            },
        ));
    }
    let blank = match &request.auth {
        RuntimeAuth::None => false,
        RuntimeAuth::Bearer { token } => token.trim().is_empty(),
        RuntimeAuth::Basic { username, password } => {
            username.trim().is_empty() || password.is_empty()
        }
        RuntimeAuth::ApiKey { key } => key.trim().is_empty(),
    };
    if blank {
        return Err(AppError::invalid(
            "auth",
            "the credentials must not be empty",
        ));
    }
    Ok(url)
}

/// Connects (or re-connects) an instance; the store checks the actor
/// manages protection. The credentials are sealed at rest and never shown.
pub async fn connect(
    state: &AppState,
    team: TeamId,
    instance: InstanceId,
    request: ConnectRequest,
    actor: &Actor,
) -> AppResult<RuntimeLink> {
    let url = check_connect(&request)?;
    let auth = serde_json::to_string(&request.auth)
        .map_err(|e| AppError::Internal(format!("cannot encode credentials: {e}")))?;
    let link = state
        .store
        .connect_runtime(
            team,
            instance,
            NewRuntimeLink {
                kind: request.kind.as_str().to_owned(),
                url: url.as_str().to_owned(),
                auth: SecretValue::new(auth),
            },
            actor,
        )
        .await?;
    Ok(link)
}

/// Runtime clients by instance, reused while the connection is the same
/// one (same `connected_at`) and the timeouts are the same.
#[derive(Debug, Default)]
pub(crate) struct Clients {
    by_instance: std::sync::Mutex<BTreeMap<(InstanceId, u128), CachedClient>>,
}

#[derive(Debug)]
struct CachedClient {
    connected_at: chrono::DateTime<chrono::Utc>,
    runtime: std::sync::Arc<dyn Runtime>,
    secrets: Secrets,
}

/// A client of the instance's runtime, with the link it was built from.
async fn client(
    state: &AppState,
    team: TeamId,
    instance: InstanceId,
    options: &stagehand_runtime::ClientOptions,
) -> AppResult<(RuntimeLink, std::sync::Arc<dyn Runtime>, Secrets)> {
    let (link, sealed) = state.store.runtime_credentials(team, instance).await?;
    let slot = (instance, options.timeout.as_millis());
    if let Ok(cache) = state.runtimes.by_instance.lock()
        && let Some(c) = cache.get(&slot)
        && c.connected_at == link.connected_at
    {
        return Ok((link, c.runtime.clone(), c.secrets.clone()));
    }
    let auth: RuntimeAuth = serde_json::from_str(sealed.expose())
        .map_err(|_| AppError::Internal("stored runtime credentials are unreadable".into()))?;
    let kind: RuntimeKind = link.kind.parse().map_err(AppError::Internal)?;
    let url = url::Url::parse(&link.url)
        .map_err(|e| AppError::Internal(format!("stored runtime URL: {e}")))?;
    let runtime: std::sync::Arc<dyn Runtime> = stagehand_runtime::client(
        Connection {
            kind,
            url,
            auth: auth.clone(),
        },
        options,
    )
    .map_err(|e| AppError::Internal(e.to_string()))?
    .into();
    let secrets = Secrets::of(&auth, runtime.clone());
    if let Ok(mut cache) = state.runtimes.by_instance.lock() {
        cache.insert(
            slot,
            CachedClient {
                connected_at: link.connected_at,
                runtime: runtime.clone(),
                secrets: secrets.clone(),
            },
        );
    }
    Ok((link, runtime, secrets))
}

/// How a runtime failure reads to a caller of "test connection" or "pull".
fn runtime_failure(kind: &str, e: &RuntimeError, secrets: &Secrets) -> AppError {
    let (status, code) = match e {
        RuntimeError::AuthFailed(_) => (StatusCode::BAD_GATEWAY, "auth_failed"),
        RuntimeError::Unreachable(_) => (StatusCode::BAD_GATEWAY, "unreachable"),
        RuntimeError::Conflict(_) => (StatusCode::CONFLICT, "drifted"),
        RuntimeError::Rejected { .. } => (StatusCode::BAD_GATEWAY, "runtime_rejected"),
        RuntimeError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "runtime_invalid"),
    };
    AppError::Runtime {
        status,
        code,
        message: secrets.scrub(&format!("{}: {e}", label(kind))),
    }
}

fn label(kind: &str) -> &'static str {
    kind.parse::<RuntimeKind>()
        .map(RuntimeKind::label)
        .unwrap_or("The runtime")
}

/// The state a revision answer means, against what Stagehand last saw.
fn compare(
    link: &RuntimeLink,
    found: &Result<Revision, RuntimeError>,
    secrets: &Secrets,
) -> (RuntimeState, Option<String>) {
    match found {
        Ok(rev) if link.revision.as_deref() == Some(rev.0.as_str()) => (RuntimeState::InSync, None),
        Ok(_) => match link.synced_at {
            Some(at) => (
                RuntimeState::Drifted,
                Some(format!(
                    "changed in {} since Stagehand last synced it at {}",
                    label(&link.kind),
                    at.format("%Y-%m-%d %H:%M UTC")
                )),
            ),
            None => (
                RuntimeState::Drifted,
                Some("Stagehand has not pulled it yet: pull it to start tracking it".into()),
            ),
        },
        Err(RuntimeError::AuthFailed(m)) => (RuntimeState::AuthFailed, Some(secrets.scrub(m))),
        Err(e) => (
            RuntimeState::Unreachable,
            Some(secrets.scrub(&e.to_string())),
        ),
    }
}

/// Looks at the runtime now and records what it found: "test connection",
/// the pipeline page and the drift check.
pub async fn check(
    state: &AppState,
    team: TeamId,
    instance: InstanceId,
    options: &stagehand_runtime::ClientOptions,
) -> AppResult<RuntimeLink> {
    let (link, runtime, secrets) = client(state, team, instance, options).await?;
    let found = runtime.revision().await;
    let (runtime_state, detail) = compare(&link, &found, &secrets);
    Ok(state
        .store
        .record_runtime_check(team, instance, runtime_state, detail, None)
        .await?)
}

/// How recent a check a page view reuses instead of asking the runtime
/// again: many viewers do not make many runtime calls.
pub const PAGE_CHECK_REUSE: chrono::Duration = chrono::Duration::seconds(5);

/// Checks every connected instance among `instances` at once, each within
/// the page's budget; one checked within `reuse`, or that does not answer
/// in time, shows its last known state.
pub async fn check_many(
    state: &AppState,
    team: TeamId,
    instances: &[InstanceId],
    reuse: chrono::Duration,
) -> Vec<RuntimeLink> {
    let mut options = state.config.runtimes.client.clone();
    options.timeout = state.config.runtimes.page_check;
    options.connect_timeout = options
        .connect_timeout
        .min(state.config.runtimes.page_check);
    let fresh_since = chrono::Utc::now() - reuse;
    let checks = instances.iter().map(|id| {
        let options = options.clone();
        async move {
            if let Ok(Some(link)) = state.store.runtime_link(team, *id).await
                && (link.checked_at.is_some_and(|at| at > fresh_since)
                    // Refused credentials are not retried by page views:
                    // Node-RED locks a user out after a few failed logins.
                    // "Test connection" or a new connection tries again.
                    || link.state == RuntimeState::AuthFailed)
            {
                return Some(link);
            }
            check(state, team, *id, &options).await.ok()
        }
    });
    futures_util::future::join_all(checks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// The instance's runtime link looked at now (or reused if checked within
/// `reuse`); `None` if it is not connected. A runtime that does not answer
/// in the page budget shows its last known state.
pub async fn link_now(
    state: &AppState,
    team: TeamId,
    instance: InstanceId,
    reuse: chrono::Duration,
) -> AppResult<Option<RuntimeLink>> {
    let Some(link) = state.store.runtime_link(team, instance).await? else {
        return Ok(None);
    };
    Ok(Some(
        check_many(state, team, &[instance], reuse)
            .await
            .pop()
            .unwrap_or(link),
    ))
}

/// "Test connection": authenticates and reads the revision now. A runtime
/// that refuses or does not answer is a 502 `unreachable` or `auth_failed`
/// (an instance not connected is a 409, from the store).
pub async fn test_connection(
    state: &AppState,
    team: TeamId,
    instance: InstanceId,
) -> AppResult<RuntimeLink> {
    let link = check(state, team, instance, &state.config.runtimes.client).await?;
    if matches!(
        link.state,
        RuntimeState::Unreachable | RuntimeState::AuthFailed
    ) {
        return Err(AppError::Runtime {
            status: StatusCode::BAD_GATEWAY,
            code: link.state.as_str(),
            message: format!(
                "The connection test failed: {}",
                link.state_detail
                    .unwrap_or_else(|| link.state.label().into())
            ),
        });
    }
    Ok(link)
}

/// Reads the runtime's flows and values into the instance (a snapshot,
/// audited). A protected instance is pulled only by someone who manages
/// protection: a pull replaces its values in Stagehand.
pub async fn pull(
    state: &AppState,
    team: TeamId,
    instance: InstanceId,
    actor: &Actor,
) -> AppResult<Instance> {
    // Refused before the runtime is asked anything (the store checks it
    // again under the instance's lock).
    let current = state.store.instance(team, instance).await?;
    if current.protection.is_protected() && !actor.manages_protection() {
        return Err(stagehand_store::StoreError::Protected {
            instance: current.name.to_string(),
        }
        .into());
    }
    let (link, runtime, secrets) =
        client(state, team, instance, &state.config.runtimes.client).await?;
    let started_at = chrono::Utc::now();
    let pulled = match runtime.pull().await {
        Ok(p) => p,
        Err(e) => {
            let (s, detail) = compare(&link, &Err(e.clone()), &secrets);
            if matches!(s, RuntimeState::AuthFailed | RuntimeState::Unreachable) {
                let _ = state
                    .store
                    .record_runtime_check(team, instance, s, detail, None)
                    .await;
            }
            return Err(runtime_failure(&link.kind, &e, &secrets));
        }
    };
    let env = pulled
        .env
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                FoundValue::Value(s) => PulledValue::Value(s),
                FoundValue::HeldByRuntime => PulledValue::HeldByRuntime,
                FoundValue::Empty => PulledValue::Empty,
            };
            (k, v)
        })
        .collect();
    Ok(state
        .store
        .record_pull(
            team,
            instance,
            PulledState {
                revision: pulled.revision.0,
                flows: pulled.flows.into_iter().collect(),
                env,
                changed_by: pulled.changed_by,
                started_at,
            },
            actor,
        )
        .await?)
}

/// Play, for pages and API alike: a connected source is pulled first (what
/// ships is what runs there); into a connected target that drifted, play is
/// refused unless the request chose to overwrite; then the store plans it
/// and, into a connected target, it is deployed.
///
/// `expected_source_version` (the version of the source the preview
/// showed, from the pages) refuses a play whose connected source changed
/// in its runtime since the preview: the pull is recorded, and the next
/// preview shows what would really ship. An overwrite of a drifted target
/// pulls the target first, so its backup (and the plan) hold what ran
/// there, and a rollback can bring it back.
pub async fn play(
    state: &AppState,
    request: PromotionRequest,
    expected_source_version: Option<i64>,
) -> AppResult<Played> {
    let started = std::time::Instant::now();
    let result = play_unmeasured(state, request, expected_source_version).await;
    crate::metrics::promotion("play", started, &result, |p| p.promotion.status.to_string());
    result
}

async fn play_unmeasured(
    state: &AppState,
    mut request: PromotionRequest,
    expected_source_version: Option<i64>,
) -> AppResult<Played> {
    let pipeline = state.store.pipeline(request.team, request.pipeline).await?;
    let (source, target) = match pipeline.stage_and_next(request.stage) {
        None => return Err(AppError::NotFound("stage")),
        // A restore sets the stage's own instance back to a snapshot.
        Some((s, _)) if request.restore => (s.clone(), s.clone()),
        Some((_, None)) => {
            return Err(AppError::Conflict(
                "This is the last stage: there is nothing to promote it into.".into(),
            ));
        }
        Some((s, Some(t))) => (s.clone(), t.clone()),
    };
    let team = request.team;
    // The source's pull and the target's drift check ask two different
    // runtimes: at once.
    let overwrite_asked = request.overwrite_drift;
    // A chosen snapshot ships as it was kept: the source is not asked.
    let chosen = request.source_snapshot.is_some() || request.restore;
    let (source_side, target_side) = tokio::join!(
        async {
            if chosen {
                return Ok(());
            }
            prepare_source(
                state,
                team,
                source.instance_id,
                &request.actor,
                expected_source_version,
            )
            .await
        },
        gate_play_target(state, team, target.instance_id, overwrite_asked),
    );
    source_side?;
    if target_side? {
        // Keep what runs there before replacing it: pulled, it is the
        // plan's "from" and the backup a rollback restores. The caller's
        // expected target version predates the pull, and overwriting is
        // the choice it made.
        pull(state, team, target.instance_id, &request.actor).await?;
        request.expected_target_version = None;
    }
    let played = state.store.play(request).await?;
    if played.replayed || played.promotion.status != PromotionStatus::Deploying {
        return Ok(played);
    }
    let actor = &played_actor(&played.promotion);
    let promotion = run(state, team, played.promotion.id, None, actor).await?;
    Ok(Played {
        promotion,
        replayed: false,
    })
}

/// A connected source before a play: pulled (what ships is what runs
/// there), or for a protected one the player may not pull, checked in
/// sync. Refused if it changed since the preview the player saw.
async fn prepare_source(
    state: &AppState,
    team: TeamId,
    source: InstanceId,
    actor: &Actor,
    expected_source_version: Option<i64>,
) -> AppResult<()> {
    let Some(link) = state.store.runtime_link(team, source).await? else {
        return Ok(());
    };
    let source_instance = state.store.instance(team, source).await?;
    if source_instance.protection.is_protected() && !actor.manages_protection() {
        // Pulling would replace a protected instance's values: only its
        // managers may. What ships must still be what runs there.
        drift_gate(state, team, &source_instance, &link, false).await?;
        return Ok(());
    }
    let pulled = pull(state, team, source, actor).await?;
    if let Some(seen) = expected_source_version
        && seen != pulled.version
    {
        return Err(AppError::Conflict(format!(
            "{} changed in its runtime since your preview. Stagehand has pulled it: \
             review the plan again before you promote.",
            source_instance.name
        )));
    }
    Ok(())
}

/// A connected target before a play: refused if it drifted, unless the
/// player chose to overwrite it (not a protected one: reviewers decide
/// there, and the gate runs again at the last approval). True when it
/// drifted and is to be overwritten.
async fn gate_play_target(
    state: &AppState,
    team: TeamId,
    target: InstanceId,
    overwrite: bool,
) -> AppResult<bool> {
    let Some(link) = state.store.runtime_link(team, target).await? else {
        return Ok(false);
    };
    let instance = state.store.instance(team, target).await?;
    let overwrite = overwrite && !instance.protection.is_protected();
    Ok(drift_gate(state, team, &instance, &link, overwrite)
        .await?
        .is_some())
}

/// The deploy's actor: whoever asked for the promotion. (The store wrote
/// who asked; the outcome is the runtime's, recorded under their name.)
fn played_actor(p: &Promotion) -> Actor {
    let mut actor = Actor::system();
    actor.name = p.requested_by.clone();
    actor.user_id = p.requested_by_user_id;
    actor.accountable_user_id = p.requested_by_user_id;
    actor
}

/// Refuses to go on with an instance whose runtime changed behind
/// Stagehand's back (or that Stagehand never pulled), unless `overwrite`;
/// then a deploy is guarded by the revision seen now. An unreachable
/// runtime is not refused here: the deploy fails and is recorded.
async fn drift_gate(
    state: &AppState,
    team: TeamId,
    instance: &Instance,
    link: &RuntimeLink,
    overwrite: bool,
) -> AppResult<Option<Revision>> {
    let (_, runtime, secrets) =
        client(state, team, instance.id, &state.config.runtimes.client).await?;
    let found = runtime.revision().await;
    let (runtime_state, detail) = compare(link, &found, &secrets);
    if runtime_state != link.state || detail != link.state_detail {
        let _ = state
            .store
            .record_runtime_check(team, instance.id, runtime_state, detail.clone(), None)
            .await;
    }
    match (runtime_state, found) {
        (RuntimeState::Drifted, Ok(rev)) if overwrite => Ok(Some(rev)),
        (RuntimeState::Drifted, _) => Err(AppError::Runtime {
            status: StatusCode::CONFLICT,
            code: "drifted",
            message: format!(
                "{} {}. Pull it first to keep what runs there{}.",
                instance.name,
                detail.unwrap_or_else(|| "changed in its runtime".into()),
                if instance.protection.is_protected() {
                    " (a protected instance is pulled by someone who manages protection)"
                } else {
                    ", or promote again choosing to overwrite it"
                }
            ),
        }),
        _ => Ok(None),
    }
}

/// The gate before a rollback or an approval deploys into `target`.
async fn gate_target(state: &AppState, team: TeamId, target: InstanceId) -> AppResult<()> {
    if let Some(link) = state.store.runtime_link(team, target).await? {
        let instance = state.store.instance(team, target).await?;
        drift_gate(state, team, &instance, &link, false).await?;
    }
    Ok(())
}

/// Rollback, for pages and API alike; into a connected target it deploys
/// (refused while the target drifted: pull it first).
pub async fn rollback(
    state: &AppState,
    team: TeamId,
    id: PromotionId,
    expected_target_version: Option<i64>,
    actor: &Actor,
) -> AppResult<Promotion> {
    let started = std::time::Instant::now();
    let result = rollback_unmeasured(state, team, id, expected_target_version, actor).await;
    crate::metrics::promotion("rollback", started, &result, |p| p.status.to_string());
    result
}

async fn rollback_unmeasured(
    state: &AppState,
    team: TeamId,
    id: PromotionId,
    expected_target_version: Option<i64>,
    actor: &Actor,
) -> AppResult<Promotion> {
    let original = state.store.promotion(team, id).await?;
    gate_target(state, team, original.target_instance_id).await?;
    let promotion = state
        .store
        .rollback(team, id, expected_target_version, actor)
        .await?;
    if promotion.status == PromotionStatus::Deploying {
        return run(state, team, promotion.id, None, actor).await;
    }
    Ok(promotion)
}

/// Approve or reject, for pages and API alike; the last approval into a
/// connected target deploys. An approval into a target that drifted is
/// refused (nothing is recorded): what the reviewers saw is no longer
/// what they would overwrite.
pub async fn decide(
    state: &AppState,
    team: TeamId,
    id: PromotionId,
    decision: Decision,
    comment: Option<&str>,
    actor: &Actor,
) -> AppResult<Promotion> {
    let started = std::time::Instant::now();
    let action = match decision {
        Decision::Approve => "approve",
        Decision::Reject => "reject",
    };
    let result = decide_unmeasured(state, team, id, decision, comment, actor).await;
    crate::metrics::promotion(action, started, &result, |p| p.status.to_string());
    result
}

async fn decide_unmeasured(
    state: &AppState,
    team: TeamId,
    id: PromotionId,
    decision: Decision,
    comment: Option<&str>,
    actor: &Actor,
) -> AppResult<Promotion> {
    if decision == Decision::Approve {
        let pending = state.store.promotion(team, id).await?;
        if pending.status == PromotionStatus::PendingApproval {
            gate_target(state, team, pending.target_instance_id).await?;
        }
    }
    let promotion = state
        .store
        .decide_with_comment(team, id, decision, comment, actor)
        .await?;
    if promotion.status == PromotionStatus::Deploying {
        return run(state, team, promotion.id, None, actor).await;
    }
    Ok(promotion)
}

/// Sends a `deploying` promotion to its target's runtime and records the
/// answer. `base` overrides the guard revision (an overwrite of a drifted
/// target, guarded by the revision seen just before). With neither a base
/// nor a revision Stagehand saw, nothing is sent: a deploy is never blind.
pub async fn run(
    state: &AppState,
    team: TeamId,
    id: PromotionId,
    base: Option<Revision>,
    actor: &Actor,
) -> AppResult<Promotion> {
    let input = state.store.deployment(team, id).await?;
    let target = input.promotion.target_instance_id;
    let kind = input.link.kind.clone();
    let failed = |error: String| DeployOutcome::Failed {
        error,
        drifted: false,
    };
    let Some(base_revision) = base.or(input.link.revision.clone().map(Revision)) else {
        let outcome = failed(format!(
            "Stagehand has not pulled this {} since it was connected, so it does not know what it would overwrite; pull it first",
            label(&kind)
        ));
        return Ok(state
            .store
            .finish_deploy(team, id, outcome, actor, false)
            .await?);
    };
    let (runtime, mut secrets) =
        match client(state, team, target, &state.config.runtimes.client).await {
            Ok((_, r, s)) => (r, s),
            Err(e) => {
                let outcome = failed(format!("{}: cannot build a client: {e}", label(&kind)));
                return Ok(state
                    .store
                    .finish_deploy(team, id, outcome, actor, false)
                    .await?);
            }
        };
    for (_, value) in &input.values {
        if let Some(v) = value {
            secrets.add(v.expose());
        }
    }
    let deployment = Deployment {
        flows: input.flows.into_iter().collect(),
        values: input.values.into_iter().collect(),
        base_revision: Some(base_revision),
    };
    let sent = std::time::Instant::now();
    let answer = runtime.deploy(&deployment).await;
    crate::metrics::runtime_deploy(
        kind.as_str(),
        match &answer {
            Ok(_) => "accepted",
            Err(RuntimeError::Conflict(_)) => "conflict",
            Err(RuntimeError::Unreachable(_)) => "unreachable",
            Err(_) => "error",
        },
        sent.elapsed(),
    );
    let outcome = match answer {
        Ok(deployed) => {
            if let Some(pause) = state.config.runtimes.fault_pause_after_deploy {
                tracing::warn!(promotion = %id, "fault injection: pausing after the runtime accepted");
                tokio::time::sleep(pause).await;
            }
            DeployOutcome::Accepted {
                revision: deployed.revision.0,
            }
        }
        Err(RuntimeError::Conflict(m)) => DeployOutcome::Failed {
            error: secrets.scrub(&format!(
                // Whether anything was written is the runtime's to say: a
                // Langflow deploy writes flow by flow, and a conflict on a
                // later write comes after earlier ones landed.
                "{} changed in the runtime since Stagehand last saw it{}: {m}",
                label(&kind),
                input
                    .link
                    .synced_at
                    .map(|at| format!(" at {}", at.format("%Y-%m-%d %H:%M UTC")))
                    .unwrap_or_default()
            )),
            drifted: true,
        },
        Err(RuntimeError::Unreachable(m)) if m.contains("timed out") => {
            // The runtime may have taken it: ask it rather than guess.
            tracing::warn!(promotion = %id, "deploy timed out; reconciling");
            return match reconcile_one(state, team, id).await? {
                Some(p) => Ok(p),
                None => Ok(state.store.promotion(team, id).await?),
            };
        }
        Err(e) => failed(secrets.scrub(&format!("{}: {e}", label(&kind)))),
    };
    Ok(state
        .store
        .finish_deploy(team, id, outcome, actor, false)
        .await?)
}

/// Resolves one `deploying` promotion against its runtime: applied if the
/// runtime holds exactly the flows it sent, failed otherwise. `None` if the
/// runtime cannot be asked now (it stays deploying, for a later try).
pub async fn reconcile_one(
    state: &AppState,
    team: TeamId,
    id: PromotionId,
) -> AppResult<Option<Promotion>> {
    let input = state.store.deployment(team, id).await?;
    let target = input.promotion.target_instance_id;
    let mut actor = Actor::system();
    actor.name = "stagehand reconciler".into();
    let (_, runtime, secrets) = client(state, team, target, &state.config.runtimes.client).await?;
    let expected: BTreeMap<FlowName, ContentHash> = input
        .flows
        .iter()
        .map(|(n, c)| (n.clone(), c.hash().clone()))
        .collect();
    let outcome = match runtime.pull().await {
        Ok(pulled) => {
            let found: BTreeMap<FlowName, ContentHash> = pulled
                .flows
                .iter()
                .map(|(n, c)| (n.clone(), c.hash().clone()))
                .collect();
            if found == expected {
                DeployOutcome::Accepted {
                    revision: pulled.revision.0,
                }
            } else {
                DeployOutcome::Failed {
                    error: format!(
                        "{} does not hold what this promotion sent (found when reconciling after an interrupted deploy)",
                        label(&input.link.kind)
                    ),
                    drifted: input.link.revision.as_deref() != Some(pulled.revision.0.as_str()),
                }
            }
        }
        Err(RuntimeError::Unreachable(_)) => return Ok(None),
        Err(e) => DeployOutcome::Failed {
            error: secrets.scrub(&format!(
                "{}: {e} (when reconciling)",
                label(&input.link.kind)
            )),
            drifted: false,
        },
    };
    Ok(Some(
        state
            .store
            .finish_deploy(team, id, outcome, &actor, true)
            .await?,
    ))
}

/// Reconciles every promotion deploying for longer than a live deploy can.
pub async fn reconcile(state: &AppState) -> AppResult<usize> {
    let cutoff = chrono::Utc::now()
        - chrono::Duration::from_std(state.config.runtimes.reconcile_after)
            .unwrap_or(chrono::Duration::seconds(60));
    let mut done = 0;
    for p in state.store.deploying_promotions(cutoff).await? {
        match reconcile_one(state, p.team_id, p.id).await {
            Ok(Some(r)) => {
                tracing::info!(promotion = %p.id, status = %r.status, "reconciled a deploy");
                done += 1;
            }
            Ok(None) => {
                tracing::warn!(promotion = %p.id, "runtime unreachable; will reconcile later")
            }
            Err(e) => tracing::warn!(promotion = %p.id, error = %e, "reconciling failed"),
        }
    }
    Ok(done)
}

/// Checks every connected runtime of the installation for drift.
pub async fn check_all(state: &AppState) -> AppResult<usize> {
    let links = state.store.all_runtime_links().await?;
    let n = links.len();
    for (team, link) in links {
        if link.state == RuntimeState::AuthFailed {
            // Not retried on a timer either (see `check_many`).
            continue;
        }
        if let Err(e) = check(state, team, link.instance_id, &state.config.runtimes.client).await {
            tracing::warn!(instance = %link.instance_id, error = %e, "drift check failed");
        }
    }
    Ok(n)
}
