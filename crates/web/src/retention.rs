//! The retention job: [`Store::purge`](stagehand_store::Store::purge)
//! under the configured policy, run by one replica per period (the jobs
//! table), from the background loop in `deploy.rs`. The store audits a
//! purge that removed anything; this logs what it did.

use crate::AppState;
use stagehand_store::{Actor, PurgeReport, StoreResult};

/// The job's name in the jobs table.
pub const JOB: &str = "retention_purge";

/// Purges if the job is on and this replica claims this period's run;
/// the report of that run, if it ran and succeeded.
pub async fn run_if_due(state: &AppState, holder: &str) -> Option<PurgeReport> {
    let every = state.config.retention.every?;
    if !matches!(state.store.claim_job(JOB, every, holder).await, Ok(true)) {
        return None;
    }
    match purge(state).await {
        Ok(report) => Some(report),
        Err(e) => {
            tracing::warn!(error = %e, "the retention purge failed; it runs again next period");
            None
        }
    }
}

/// One purge under the configured policy, acting as Stagehand itself.
pub async fn purge(state: &AppState) -> StoreResult<PurgeReport> {
    let mut policy = state.config.retention.policy.clone();
    // The login throttle counts failures inside its window: never purge those.
    policy.login_failures_max_age = policy
        .login_failures_max_age
        .max(state.config.throttle.window);
    let report = state.store.purge(&policy, false, &Actor::system()).await?;
    for chain in &report.chains_not_purged {
        tracing::warn!(
            chain = %chain.chain,
            seq = chain.first_break.seq,
            reason = %chain.first_break.reason,
            "an audit chain does not verify: its old events are kept"
        );
    }
    if report.total() > 0 {
        tracing::info!(
            sessions = report.sessions,
            login_failures = report.login_failures,
            promotions = report.promotions,
            snapshots = report.snapshots,
            flow_blobs = report.flow_blobs,
            audit_events = report.audit_events,
            "retention purge"
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WebConfig;
    use stagehand_store::testing::TestDatabase;

    #[tokio::test]
    async fn one_replica_runs_the_purge_each_period_and_it_can_be_turned_off() {
        let db = TestDatabase::sqlite().await.unwrap();
        let mut config = WebConfig::default();
        let a = AppState::new(db.store.clone(), config.clone());
        assert!(run_if_due(&a, "replica-a").await.is_some());
        // The other replica, in the same period: not its turn.
        assert!(run_if_due(&a, "replica-b").await.is_none());
        config.retention.every = None;
        let off = AppState::new(db.store.clone(), config);
        assert!(run_if_due(&off, "replica-c").await.is_none());
        db.cleanup().await;
    }
}
