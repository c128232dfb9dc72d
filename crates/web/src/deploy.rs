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

/// A client of the instance's runtime, with the link it was built from.
async fn client(
    state: &AppState,
    team: TeamId,
    instance: InstanceId,
    options: &stagehand_runtime::ClientOptions,
) -> AppResult<(RuntimeLink, Box<dyn Runtime>)> {
    let (link, sealed) = state.store.runtime_credentials(team, instance).await?;
    let auth: RuntimeAuth = serde_json::from_str(sealed.expose())
        .map_err(|_| AppError::Internal("stored runtime credentials are unreadable".into()))?;
    let kind: RuntimeKind = link.kind.parse().map_err(AppError::Internal)?;
    let url = url::Url::parse(&link.url)
        .map_err(|e| AppError::Internal(format!("stored runtime URL: {e}")))?;
    let runtime = stagehand_runtime::client(Connection { kind, url, auth }, options)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((link, runtime))
}

/// How a runtime failure reads to a caller of "test connection" or "pull".
fn runtime_failure(kind: &str, e: &RuntimeError) -> AppError {
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
        message: format!("{}: {e}", label(kind)),
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
        Err(RuntimeError::AuthFailed(m)) => (RuntimeState::AuthFailed, Some(m.clone())),
        Err(e) => (RuntimeState::Unreachable, Some(e.to_string())),
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
    let (link, runtime) = client(state, team, instance, options).await?;
    let found = runtime.revision().await;
    let (runtime_state, detail) = compare(&link, &found);
    Ok(state
        .store
        .record_runtime_check(team, instance, runtime_state, detail, None)
        .await?)
}

/// Checks every connected instance among `instances` at once, each within
/// the page's budget; one that does not answer in time keeps its last
/// known state.
pub async fn check_many(
    state: &AppState,
    team: TeamId,
    instances: &[InstanceId],
) -> Vec<RuntimeLink> {
    let mut options = state.config.runtimes.client.clone();
    options.timeout = state.config.runtimes.page_check;
    options.connect_timeout = options
        .connect_timeout
        .min(state.config.runtimes.page_check);
    let checks = instances.iter().map(|id| {
        let options = options.clone();
        async move { check(state, team, *id, &options).await.ok() }
    });
    futures_util::future::join_all(checks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Reads the runtime's flows and values into the instance (a snapshot,
/// audited).
pub async fn pull(
    state: &AppState,
    team: TeamId,
    instance: InstanceId,
    actor: &Actor,
) -> AppResult<Instance> {
    let (link, runtime) = client(state, team, instance, &state.config.runtimes.client).await?;
    let pulled = match runtime.pull().await {
        Ok(p) => p,
        Err(e) => {
            let (s, detail) = compare(&link, &Err(e.clone()));
            if matches!(s, RuntimeState::AuthFailed | RuntimeState::Unreachable) {
                let _ = state
                    .store
                    .record_runtime_check(team, instance, s, detail, None)
                    .await;
            }
            return Err(runtime_failure(&link.kind, &e));
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
            },
            actor,
        )
        .await?)
}

/// Play, for pages and API alike: a connected source is pulled first (what
/// ships is what runs there); into a connected target that drifted, play is
/// refused unless the request chose to overwrite; then the store plans it
/// and, into a connected target, it is deployed.
pub async fn play(state: &AppState, request: PromotionRequest) -> AppResult<Played> {
    let pipeline = state.store.pipeline(request.team, request.pipeline).await?;
    let (source, target) = match pipeline.stage_and_next(request.stage) {
        None => return Err(AppError::NotFound("stage")),
        Some((_, None)) => {
            return Err(AppError::Conflict(
                "This is the last stage: there is nothing to promote it into.".into(),
            ));
        }
        Some((s, Some(t))) => (s.clone(), t.clone()),
    };
    let team = request.team;
    let mut base = None;
    if state
        .store
        .runtime_link(team, source.instance_id)
        .await?
        .is_some()
    {
        pull(state, team, source.instance_id, &request.actor).await?;
    }
    let target_instance = state.store.instance(team, target.instance_id).await?;
    if let Some(link) = state.store.runtime_link(team, target.instance_id).await?
        && !target_instance.protection.is_protected()
    {
        base = drift_gate(
            state,
            team,
            &target_instance,
            &link,
            request.overwrite_drift,
        )
        .await?;
    }
    let played = state.store.play(request).await?;
    if played.replayed || played.promotion.status != PromotionStatus::Deploying {
        return Ok(played);
    }
    let actor = &played_actor(&played.promotion);
    let promotion = run(state, team, played.promotion.id, base, actor).await?;
    Ok(Played {
        promotion,
        replayed: false,
    })
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

/// Refuses a play into a target whose runtime changed behind Stagehand's
/// back, unless `overwrite`; then the deploy is guarded by the revision
/// seen now. An unreachable runtime is not refused here: the deploy fails
/// and is recorded as failed.
async fn drift_gate(
    state: &AppState,
    team: TeamId,
    target: &Instance,
    link: &RuntimeLink,
    overwrite: bool,
) -> AppResult<Option<Revision>> {
    let (_, runtime) = client(state, team, target.id, &state.config.runtimes.client).await?;
    let found = runtime.revision().await;
    let (runtime_state, detail) = compare(link, &found);
    if runtime_state != link.state || detail != link.state_detail {
        let _ = state
            .store
            .record_runtime_check(team, target.id, runtime_state, detail.clone(), None)
            .await;
    }
    match (runtime_state, found) {
        (RuntimeState::Drifted, Ok(rev)) if overwrite => Ok(Some(rev)),
        (RuntimeState::Drifted, _) => Err(AppError::Runtime {
            status: StatusCode::CONFLICT,
            code: "drifted",
            message: format!(
                "{} {}. Pull it first to keep what runs there, or promote again choosing to overwrite it.",
                target.name,
                detail.unwrap_or_else(|| "changed in its runtime".into())
            ),
        }),
        _ => Ok(None),
    }
}

/// Rollback, for pages and API alike; into a connected target it deploys.
pub async fn rollback(
    state: &AppState,
    team: TeamId,
    id: PromotionId,
    actor: &Actor,
) -> AppResult<Promotion> {
    let promotion = state.store.rollback(team, id, actor).await?;
    if promotion.status == PromotionStatus::Deploying {
        return run(state, team, promotion.id, None, actor).await;
    }
    Ok(promotion)
}

/// Approve or reject, for pages and API alike; the last approval into a
/// connected target deploys.
pub async fn decide(
    state: &AppState,
    team: TeamId,
    id: PromotionId,
    decision: Decision,
    actor: &Actor,
) -> AppResult<Promotion> {
    let promotion = state.store.decide(team, id, decision, actor).await?;
    if promotion.status == PromotionStatus::Deploying {
        return run(state, team, promotion.id, None, actor).await;
    }
    Ok(promotion)
}

/// Sends a `deploying` promotion to its target's runtime and records the
/// answer. `base` overrides the guard revision (an overwrite of a drifted
/// target, guarded by the revision seen just before).
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
    let runtime = match client(state, team, target, &state.config.runtimes.client).await {
        Ok((_, r)) => r,
        Err(e) => {
            let outcome = DeployOutcome::Failed {
                error: format!("{}: cannot build a client: {e}", label(&kind)),
                drifted: false,
            };
            return Ok(state
                .store
                .finish_deploy(team, id, outcome, actor, false)
                .await?);
        }
    };
    let deployment = Deployment {
        flows: input.flows.into_iter().collect(),
        values: input.values.into_iter().collect(),
        base_revision: base.or(input.link.revision.clone().map(Revision)),
    };
    let outcome = match runtime.deploy(&deployment).await {
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
            error: format!(
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
            ),
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
        Err(e) => DeployOutcome::Failed {
            error: format!("{}: {e}", label(&kind)),
            drifted: false,
        },
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
    let (_, runtime) = client(state, team, target, &state.config.runtimes.client).await?;
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
            error: format!("{}: {e} (when reconciling)", label(&input.link.kind)),
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
        if let Err(e) = check(state, team, link.instance_id, &state.config.runtimes.client).await {
            tracing::warn!(instance = %link.instance_id, error = %e, "drift check failed");
        }
    }
    Ok(n)
}

/// The background jobs: reconciliation and the drift check, each run by
/// one replica per period (`Store::claim_job`). Runs until the process
/// ends.
pub async fn background(state: AppState) {
    let tick = std::time::Duration::from_secs(1)
        .min(state.config.runtimes.reconcile_every)
        .min(state.config.runtimes.drift_check_every);
    let holder = state.config.runtimes.holder.clone();
    // At start, whatever the jobs table says: deploys a crash (of this or
    // another replica) left behind are resolved before anything else.
    // Finishing is idempotent, so a replica starting beside this one does
    // no harm doing the same.
    let _ = reconcile(&state).await;
    loop {
        let every = state.config.runtimes.reconcile_every;
        if matches!(
            state
                .store
                .claim_job("reconcile_deploys", every, &holder)
                .await,
            Ok(true)
        ) {
            let _ = reconcile(&state).await;
        }
        let every = state.config.runtimes.drift_check_every;
        if matches!(
            state.store.claim_job("drift_check", every, &holder).await,
            Ok(true)
        ) {
            let _ = check_all(&state).await;
        }
        tokio::time::sleep(tick).await;
    }
}
