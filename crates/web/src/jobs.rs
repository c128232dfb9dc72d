//! The background jobs, each run by one replica per period: whichever
//! replica claims the period in the jobs table first
//! ([`Store::claim_job`]) runs it, so a job moves to another replica as
//! soon as the one that ran it last dies.
//!
//! [`Store::claim_job`]: stagehand_store::Store::claim_job

use crate::{AppState, deploy, metrics, retention};
use std::future::Future;
use std::time::{Duration, Instant};

/// Runs the jobs until the process ends: reconciliation of deploys left
/// `deploying`, the drift check of connected runtimes, and the retention
/// purge (`retention.rs`).
pub async fn background(state: AppState) {
    let runtimes = &state.config.runtimes;
    let tick = Duration::from_secs(1)
        .min(runtimes.reconcile_every)
        .min(runtimes.drift_check_every);
    // At start, whatever the jobs table says: deploys a crash (of this or
    // another replica) left behind are resolved before anything else.
    // Finishing is idempotent, so a replica starting beside this one does
    // no harm doing the same.
    let _ = deploy::reconcile(&state).await;
    loop {
        run_claimed(
            &state,
            "reconcile_deploys",
            runtimes.reconcile_every,
            || deploy::reconcile(&state),
        )
        .await;
        run_claimed(&state, "drift_check", runtimes.drift_check_every, || {
            deploy::check_all(&state)
        })
        .await;
        if let Some(every) = state.config.retention.every {
            run_claimed(&state, retention::JOB, every, || retention::purge(&state)).await;
        }
        tokio::time::sleep(tick).await;
    }
}

/// Runs `job` if this replica claims its current period; counts the run.
/// Whether it ran.
pub(crate) async fn run_claimed<F, T, E>(
    state: &AppState,
    name: &'static str,
    every: Duration,
    job: impl FnOnce() -> F,
) -> bool
where
    F: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let holder = &state.config.runtimes.holder;
    match state.store.claim_job(name, every, holder).await {
        Ok(true) => {}
        Ok(false) => return false,
        Err(e) => {
            tracing::warn!(job = name, error = %e, "could not claim a background job");
            return false;
        }
    }
    let started = Instant::now();
    let result = job().await;
    if let Err(e) = &result {
        tracing::warn!(job = name, error = %e, "background job failed");
    }
    tracing::debug!(job = name, holder = %holder, "background job ran");
    metrics::job_run(name, result.is_ok(), started.elapsed());
    true
}
