//! The retention job: [`Store::purge`](stagehand_store::Store::purge)
//! under the configured policy, run by one replica per period (the jobs
//! table), from the background loop in `jobs.rs`. The store audits a
//! purge that removed anything; this logs what it did.

use crate::AppState;
use stagehand_store::{Actor, PurgeReport, StoreResult};

/// The job's name in the jobs table.
pub const JOB: &str = "retention_purge";

/// One purge under the configured policy, acting as Stagehand itself.
pub async fn purge(state: &AppState) -> StoreResult<PurgeReport> {
    let mut policy = state.config.retention.policy.clone();
    // The login throttle counts failures inside its window: never purge those.
    policy.login_failures_max_age = policy
        .login_failures_max_age
        .max(state.config.throttle.window);
    let mut actor = Actor::system();
    actor.name = "stagehand retention job".into();
    let report = state.store.purge(&policy, false, &actor).await?;
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
    async fn one_replica_runs_the_purge_each_period() {
        let db = TestDatabase::sqlite().await.unwrap();
        let mut config = WebConfig::default();
        config.runtimes.holder = "replica-a".into();
        let a = AppState::new(db.store.clone(), config.clone());
        let every = std::time::Duration::from_secs(3600);
        let job = |s: &AppState| {
            let s = s.clone();
            async move { purge(&s).await }
        };
        assert!(crate::jobs::run_claimed(&a, JOB, every, || job(&a)).await);
        // The other replica, in the same period: not its turn.
        config.runtimes.holder = "replica-b".into();
        let b = AppState::new(db.store.clone(), config);
        assert!(!crate::jobs::run_claimed(&b, JOB, every, || job(&b)).await);
        db.cleanup().await;
    }
}
