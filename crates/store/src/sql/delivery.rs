//! Delivery metrics, kept as one `delivery_days` row per target stage and
//! day (UTC). A change to a promotion recomputes the rows it touches from
//! the promotions themselves ([`promotion_changed`]), in the transaction
//! that made the change and under its lock of the target instance, so a
//! row is never a running total that could drift; reading a period is then
//! one row per stage and day, however long the history.

use super::{Conn, Db, lock_instance};
use crate::error::StoreResult;
use crate::model::Promotion;
use chrono::{DateTime, Days, NaiveDate, Utc};
use stagehand_domain::delivery::{DeliveryDay, Histogram};
use stagehand_domain::{
    ContentHash, InstanceId, PipelineId, PromotionId, PromotionPlan, PromotionStatus, StageId,
    TeamId,
};
use std::collections::BTreeSet;
use uuid::Uuid;

/// The first day whose promotions no purge has reached (`YYYY-MM-DD` in
/// `stagehand_meta`): the rows of earlier days are what they were when
/// their promotions were all there, and a recount would lose the purged.
const FROZEN_BEFORE: &str = "delivery_frozen_before";

/// Freezes the rows of the days before `first_kept`: the purge calls it
/// when it deletes promotions older than a cutoff on the day before.
pub(super) async fn freeze_before(conn: &mut Conn, first_kept: NaiveDate) -> StoreResult<()> {
    sqlx::query(
        "insert into stagehand_meta (key, value, created_at) values ($1, $2, $3)
         on conflict (key) do update set value = excluded.value
         where stagehand_meta.value < excluded.value",
    )
    .bind(FROZEN_BEFORE)
    .bind(first_kept.format("%Y-%m-%d").to_string())
    .bind(super::now())
    .execute(conn)
    .await?;
    Ok(())
}

async fn frozen(conn: &mut Conn, day: NaiveDate) -> StoreResult<bool> {
    let first_kept: Option<String> =
        sqlx::query_scalar("select value from stagehand_meta where key = $1")
            .bind(FROZEN_BEFORE)
            .fetch_optional(conn)
            .await?;
    Ok(first_kept
        .and_then(|v| NaiveDate::parse_from_str(&v, "%Y-%m-%d").ok())
        .is_some_and(|first_kept| day < first_kept))
}

fn start_of(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

#[derive(sqlx::FromRow)]
struct Changed {
    team_id: Uuid,
    pipeline_id: Uuid,
    source_stage_id: Uuid,
    target_stage_id: Uuid,
    created_at: DateTime<Utc>,
    applied_at: Option<DateTime<Utc>>,
    rollback_of: Option<Uuid>,
    lead_seconds: Option<i64>,
}

async fn changed(conn: &mut Conn, id: Uuid) -> StoreResult<Option<Changed>> {
    Ok(sqlx::query_as(
        "select team_id, pipeline_id, source_stage_id, target_stage_id, created_at, applied_at,
                rollback_of,
                lead_seconds
         from promotions where id = $1",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?)
}

/// Recomputes what a change of promotion `id` (applied, rolled back,
/// rejected, failed) touches: its lead time once it has arrived, and the
/// day rows of its target stage for the day it was requested, the day it
/// arrived, the days of the promotion it rolls back, and the days of the
/// failed deploys its arrival ends.
pub(super) async fn promotion_changed(conn: &mut Conn, id: PromotionId) -> StoreResult<()> {
    let Some(p) = changed(conn, id.0).await? else {
        return Ok(());
    };
    let mut days = BTreeSet::from([p.created_at.date_naive()]);
    if let Some(at) = p.applied_at {
        days.insert(at.date_naive());
        // A rollback or a restore (into its own stage) is no deployment.
        if p.source_stage_id != p.target_stage_id && p.lead_seconds.is_none() {
            record_lead_time(conn, TeamId(p.team_id), id, at).await?;
        }
        days.extend(failed_deploys_ended_by(conn, p.target_stage_id, at).await?);
    }
    if let Some(of) = p.rollback_of
        && let Some(f) = changed(conn, of).await?
    {
        days.insert(f.created_at.date_naive());
        days.extend(f.applied_at.map(|at| at.date_naive()));
    }
    for day in days {
        refresh_day(
            conn,
            TeamId(p.team_id),
            PipelineId(p.pipeline_id),
            StageId(p.target_stage_id),
            day,
        )
        .await?;
    }
    Ok(())
}

/// A play applied at once (no review, no runtime): counted into its day's
/// row as one more deployment, rather than by recounting the day, which
/// on a busy stage holds many. When it also ends failed deploys, or was
/// requested on another day, the days are recounted instead.
pub(super) async fn arrived(conn: &mut Conn, p: &Promotion) -> StoreResult<()> {
    let Some(at) = p.applied_at else {
        return promotion_changed(conn, p.id).await;
    };
    let day = at.date_naive();
    if p.source_stage_id == p.target_stage_id
        || p.created_at.date_naive() != day
        || !failed_deploys_ended_by(conn, p.target_stage_id.0, at)
            .await?
            .is_empty()
    {
        return promotion_changed(conn, p.id).await;
    }
    let lead = lead_time_of(conn, p.team_id, p.id, &p.plan, at).await?;
    let stage = p.target_stage_id;
    let rows: Vec<DayRow> = sqlx::query_as(&format!(
        "select {DAY_COLUMNS} from delivery_days where stage_id = $1 and day = $2"
    ))
    .bind(stage.0)
    .bind(day)
    .fetch_all(&mut *conn)
    .await?;
    let mut row = match rows.into_iter().next() {
        Some(r) => r.into_day()?,
        None => DeliveryDay {
            stage_id: stage,
            pipeline_id: p.pipeline_id,
            day,
            ..DeliveryDay::default()
        },
    };
    row.deployments += 1;
    if let Some(lead) = lead {
        row.lead_times.record(lead);
    }
    write_row(conn, p.team_id, &row).await
}

/// The lead time of an arrival: from the team's first save of the oldest
/// flow content it adds or changes to `arrived`. An arrival that changes
/// no flow has none.
async fn record_lead_time(
    conn: &mut Conn,
    team: TeamId,
    id: PromotionId,
    arrived: DateTime<Utc>,
) -> StoreResult<Option<i64>> {
    let plan: sqlx::types::Json<PromotionPlan> =
        sqlx::query_scalar("select plan from promotions where id = $1")
            .bind(id.0)
            .fetch_one(&mut *conn)
            .await?;
    lead_time_of(conn, team, id, &plan, arrived).await
}

/// [`record_lead_time`] with the plan at hand.
async fn lead_time_of(
    conn: &mut Conn,
    team: TeamId,
    id: PromotionId,
    plan: &PromotionPlan,
    arrived: DateTime<Utc>,
) -> StoreResult<Option<i64>> {
    let hashes: Vec<&ContentHash> = plan
        .flows_added
        .iter()
        .map(|f| &f.hash)
        .chain(plan.flows_changed.iter().map(|f| &f.to))
        .collect();
    // In chunks: a query takes a bounded number of parameters.
    let mut first_saved: Option<DateTime<Utc>> = None;
    for chunk in hashes.chunks(500) {
        let mut q = sqlx::QueryBuilder::<Db>::new(
            "select min(first_saved_at) from flow_saves where team_id = ",
        );
        q.push_bind(team.0).push(" and hash in (");
        let mut list = q.separated(", ");
        for h in chunk {
            list.push_bind(h.as_str());
        }
        q.push(")");
        let oldest: Option<DateTime<Utc>> = q.build_query_scalar().fetch_one(&mut *conn).await?;
        first_saved = first_saved.into_iter().chain(oldest).min();
    }
    let Some(saved) = first_saved else {
        return Ok(None);
    };
    let lead = (arrived - saved).num_seconds().max(0);
    sqlx::query("update promotions set lead_seconds = $2 where id = $1")
        .bind(id.0)
        .bind(lead)
        .execute(&mut *conn)
        .await?;
    Ok(Some(lead))
}

/// The days of the failed deploys into `stage` since the arrival before
/// `arrived`: the ones this arrival restores.
async fn failed_deploys_ended_by(
    conn: &mut Conn,
    stage: Uuid,
    arrived: DateTime<Utc>,
) -> StoreResult<Vec<NaiveDate>> {
    let failed: Vec<DateTime<Utc>> = sqlx::query_scalar(
        "select created_at from promotions
         where target_stage_id = $1 and status = $2 and created_at < $3
           and created_at >= coalesce(
               (select max(applied_at) from promotions
                where target_stage_id = $1 and applied_at < $3),
               $4)",
    )
    .bind(stage)
    .bind(PromotionStatus::Failed.as_str())
    .bind(arrived)
    .bind(DateTime::UNIX_EPOCH)
    .fetch_all(conn)
    .await?;
    Ok(failed.into_iter().map(|at| at.date_naive()).collect())
}

#[derive(sqlx::FromRow)]
struct Arrived {
    status: String,
    lead_seconds: Option<i64>,
    applied_at: DateTime<Utc>,
    rolled_back_at: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct Requested {
    status: String,
    created_at: DateTime<Utc>,
    decided_at: Option<DateTime<Utc>>,
    next_arrival: Option<DateTime<Utc>>,
}

/// Recomputes the row of `stage` on `day` from its promotions: those that
/// arrived that day (deployments, lead times, rollbacks and the time they
/// took) and those requested that day (failed deploys and the time to the
/// next arrival, approval waits). An empty day has no row; a day a purge
/// reached keeps the row it had.
async fn refresh_day(
    conn: &mut Conn,
    team: TeamId,
    pipeline: PipelineId,
    stage: StageId,
    day: NaiveDate,
) -> StoreResult<()> {
    if frozen(conn, day).await? {
        return Ok(());
    }
    let (from, to) = (start_of(day), start_of(day + Days::new(1)));
    let arrived: Vec<Arrived> = sqlx::query_as(
        "select status, lead_seconds, applied_at, rolled_back_at from promotions
         where target_stage_id = $1 and applied_at >= $2 and applied_at < $3
           and source_stage_id <> target_stage_id",
    )
    .bind(stage.0)
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    let requested: Vec<Requested> = sqlx::query_as(
        "select p.status, p.created_at,
            (select max(a.created_at) from promotion_approvals a where a.promotion_id = p.id)
                as decided_at,
            case when p.status = $4 then
                (select min(r.applied_at) from promotions r
                 where r.target_stage_id = p.target_stage_id and r.applied_at > p.created_at)
            end as next_arrival
         from promotions p
         where p.target_stage_id = $1 and p.created_at >= $2 and p.created_at < $3",
    )
    .bind(stage.0)
    .bind(from)
    .bind(to)
    .bind(PromotionStatus::Failed.as_str())
    .fetch_all(&mut *conn)
    .await?;

    let mut row = DeliveryDay {
        stage_id: stage,
        pipeline_id: pipeline,
        day,
        ..DeliveryDay::default()
    };
    let rolled_back = PromotionStatus::RolledBack.as_str();
    // Deployments only: rollbacks and restores arrive from their own stage.
    for a in &arrived {
        row.deployments += 1;
        if let Some(lead) = a.lead_seconds {
            row.lead_times.record(lead);
        }
        if a.status == rolled_back {
            row.rolled_back += 1;
            if let Some(at) = a.rolled_back_at {
                row.restore_times.record((at - a.applied_at).num_seconds());
            }
        }
    }
    let (failed, pending) = (
        PromotionStatus::Failed.as_str(),
        PromotionStatus::PendingApproval.as_str(),
    );
    for r in &requested {
        if r.status == failed {
            row.failed += 1;
            if let Some(at) = r.next_arrival {
                row.restore_times.record((at - r.created_at).num_seconds());
            }
        }
        if r.status != pending
            && let Some(at) = r.decided_at
        {
            row.approval_waits.record((at - r.created_at).num_seconds());
        }
    }
    write_row(conn, team, &row).await
}

async fn write_row(conn: &mut Conn, team: TeamId, row: &DeliveryDay) -> StoreResult<()> {
    let empty = row.deployments == 0
        && row.failed == 0
        && row.approval_waits.count == 0
        && row.restore_times.count == 0;
    if empty {
        sqlx::query("delete from delivery_days where stage_id = $1 and day = $2")
            .bind(row.stage_id.0)
            .bind(row.day)
            .execute(&mut *conn)
            .await?;
        return Ok(());
    }
    let json = |h: &Histogram| serde_json::to_string(h).unwrap_or_default();
    sqlx::query(
        "insert into delivery_days (stage_id, day, team_id, pipeline_id, deployments, rolled_back,
            failed, lead_times, restore_times, approval_waits)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         on conflict (stage_id, day) do update set deployments = excluded.deployments,
            rolled_back = excluded.rolled_back, failed = excluded.failed,
            lead_times = excluded.lead_times, restore_times = excluded.restore_times,
            approval_waits = excluded.approval_waits",
    )
    .bind(row.stage_id.0)
    .bind(row.day)
    .bind(team.0)
    .bind(row.pipeline_id.0)
    .bind(row.deployments as i64)
    .bind(row.rolled_back as i64)
    .bind(row.failed as i64)
    .bind(json(&row.lead_times))
    .bind(json(&row.restore_times))
    .bind(json(&row.approval_waits))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

const DAY_COLUMNS: &str = "stage_id, pipeline_id, day, deployments, rolled_back, failed,
    lead_times, restore_times, approval_waits";

#[derive(sqlx::FromRow)]
struct DayRow {
    stage_id: Uuid,
    pipeline_id: Uuid,
    day: NaiveDate,
    deployments: i64,
    rolled_back: i64,
    failed: i64,
    lead_times: String,
    restore_times: String,
    approval_waits: String,
}

impl DayRow {
    fn into_day(self) -> StoreResult<DeliveryDay> {
        let histogram = |s: &str| {
            serde_json::from_str::<Histogram>(s)
                .map_err(|e| crate::error::StoreError::Corrupt(format!("delivery histogram: {e}")))
        };
        Ok(DeliveryDay {
            stage_id: StageId(self.stage_id),
            pipeline_id: PipelineId(self.pipeline_id),
            day: self.day,
            deployments: self.deployments.max(0) as u64,
            rolled_back: self.rolled_back.max(0) as u64,
            failed: self.failed.max(0) as u64,
            lead_times: histogram(&self.lead_times)?,
            restore_times: histogram(&self.restore_times)?,
            approval_waits: histogram(&self.approval_waits)?,
        })
    }
}

/// The rows of a team (or of one of its pipelines) for the days in
/// `[since, until)`.
pub(super) async fn days(
    conn: &mut Conn,
    team: TeamId,
    pipeline: Option<PipelineId>,
    since: NaiveDate,
    until: NaiveDate,
) -> StoreResult<Vec<DeliveryDay>> {
    let mut q =
        sqlx::QueryBuilder::<Db>::new(format!("select {DAY_COLUMNS} from delivery_days where "));
    match pipeline {
        Some(p) => q
            .push("pipeline_id = ")
            .push_bind(p.0)
            .push(" and team_id = ")
            .push_bind(team.0),
        None => q.push("team_id = ").push_bind(team.0),
    };
    q.push(" and day >= ")
        .push_bind(since)
        .push(" and day < ")
        .push_bind(until);
    q.build_query_as::<DayRow>()
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(DayRow::into_day)
        .collect()
}

/// Promotions into the team's (or the pipeline's) stages awaiting approval.
pub(super) async fn waiting(
    conn: &mut Conn,
    team: TeamId,
    pipeline: Option<PipelineId>,
) -> StoreResult<u64> {
    let mut q = sqlx::QueryBuilder::<Db>::new("select count(*) from promotions where team_id = ");
    q.push_bind(team.0)
        .push(" and status = ")
        .push_bind(PromotionStatus::PendingApproval.as_str());
    if let Some(p) = pipeline {
        q.push(" and pipeline_id = ").push_bind(p.0);
    }
    let n: i64 = q.build_query_scalar().fetch_one(conn).await?;
    Ok(n.max(0) as u64)
}

/// Every (target instance, stage, day) that has promotions, for a rebuild.
pub(super) async fn all_days(
    conn: &mut Conn,
) -> StoreResult<BTreeSet<(Uuid, Uuid, Uuid, Uuid, NaiveDate)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        team_id: Uuid,
        pipeline_id: Uuid,
        target_instance_id: Uuid,
        target_stage_id: Uuid,
        created_at: DateTime<Utc>,
        applied_at: Option<DateTime<Utc>>,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "select team_id, pipeline_id, target_instance_id, target_stage_id, created_at, applied_at
         from promotions",
    )
    .fetch_all(conn)
    .await?;
    let mut days = BTreeSet::new();
    for r in rows {
        let key = |d: NaiveDate| {
            (
                r.team_id,
                r.target_instance_id,
                r.pipeline_id,
                r.target_stage_id,
                d,
            )
        };
        days.insert(key(r.created_at.date_naive()));
        if let Some(at) = r.applied_at {
            days.insert(key(at.date_naive()));
        }
    }
    Ok(days)
}

/// Arrivals without a lead time (applied before this was kept).
pub(super) async fn without_lead_time(
    conn: &mut Conn,
) -> StoreResult<Vec<(Uuid, Uuid, DateTime<Utc>)>> {
    Ok(sqlx::query_as(
        "select team_id, id, applied_at from promotions
         where applied_at is not null and source_stage_id <> target_stage_id
           and lead_seconds is null",
    )
    .fetch_all(conn)
    .await?)
}

/// One step of a rebuild, in its own transaction: the lead time of one
/// arrival.
pub(super) async fn rebuild_lead_time(
    conn: &mut Conn,
    (team, id, arrived): (Uuid, Uuid, DateTime<Utc>),
) -> StoreResult<()> {
    record_lead_time(conn, TeamId(team), PromotionId(id), arrived)
        .await
        .map(drop)
}

/// One step of a rebuild, in its own transaction: one day of one stage,
/// under the lock its promotions take.
pub(super) async fn rebuild_day(
    conn: &mut Conn,
    (team, instance, pipeline, stage, day): (Uuid, Uuid, Uuid, Uuid, NaiveDate),
) -> StoreResult<()> {
    lock_instance(conn, TeamId(team), InstanceId(instance)).await?;
    refresh_day(
        conn,
        TeamId(team),
        PipelineId(pipeline),
        StageId(stage),
        day,
    )
    .await
}
