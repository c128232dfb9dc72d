//! Reading promotions back: the filtered history (keyset pages, one index
//! per filter) and the plan-free heads a pipeline page shows.

use super::promotions::{PROMOTION_COLUMNS, PromotionRow};
use super::{Conn, Db, push_window_and_page};
use crate::error::{StoreError, StoreResult};
use crate::model::{Arrival, PendingRequest, Promotion, PromotionFilter, PromotionHead};
use chrono::{DateTime, Utc};
use stagehand_domain::{
    InstanceId, PipelineId, PromotionId, PromotionStatus, SnapshotId, StageId, TeamId, UserId,
};
use uuid::Uuid;

const HEAD_COLUMNS: &str = "id, pipeline_id, source_stage_id, target_stage_id, source_instance_id,
    target_instance_id, status, requested_by_user_id, requested_by, rollback_of, created_at";

#[derive(sqlx::FromRow)]
struct HeadRow {
    id: Uuid,
    pipeline_id: Uuid,
    source_stage_id: Uuid,
    target_stage_id: Uuid,
    source_instance_id: Uuid,
    target_instance_id: Uuid,
    status: String,
    requested_by_user_id: Option<Uuid>,
    requested_by: String,
    rollback_of: Option<Uuid>,
    created_at: DateTime<Utc>,
}

impl HeadRow {
    fn into_head(self) -> StoreResult<PromotionHead> {
        Ok(PromotionHead {
            id: PromotionId(self.id),
            pipeline_id: PipelineId(self.pipeline_id),
            source_stage_id: StageId(self.source_stage_id),
            target_stage_id: StageId(self.target_stage_id),
            source_instance_id: InstanceId(self.source_instance_id),
            target_instance_id: InstanceId(self.target_instance_id),
            status: self.status.parse().map_err(
                |e: stagehand_domain::promotion::UnknownStatus| StoreError::Corrupt(e.to_string()),
            )?,
            requested_by_user_id: self.requested_by_user_id.map(UserId),
            requested_by: self.requested_by,
            rollback_of: self.rollback_of.map(PromotionId),
            created_at: self.created_at,
        })
    }
}

pub(super) async fn history(
    conn: &mut Conn,
    team: TeamId,
    f: &PromotionFilter,
) -> StoreResult<Vec<Promotion>> {
    let mut q = sqlx::QueryBuilder::<Db>::new("");
    match f.stage {
        None => push_history_branch(&mut q, team, f, None),
        // "Out of or into the stage" as two index-ordered branches, each
        // already limited, rather than an `or` that would need a sort of
        // every match.
        Some(stage) => {
            q.push(format!("select {PROMOTION_COLUMNS} from ("));
            push_history_branch(&mut q, team, f, Some(("source_stage_id", stage)));
            q.push(format!(
                ") as out_of union all select {PROMOTION_COLUMNS} from ("
            ));
            push_history_branch(&mut q, team, f, Some(("target_stage_id", stage)));
            q.push(") as into_it order by created_at desc, id desc limit ")
                .push_bind(f.limit.clamp(1, crate::model::MAX_PAGE));
        }
    }
    q.build_query_as::<PromotionRow>()
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(PromotionRow::into_promotion)
        .collect()
}

/// Most pending promotions a pipeline page lists; the history page, filtered
/// by status, has the rest.
pub(crate) const MAX_PENDING_SHOWN: i64 = 20;

/// The promotions a pipeline page shows, in one query: those with the
/// given ids (each stage's newest applied one) with when they were applied
/// and rolled back and the flows each left in its target (snapshot
/// manifests, through the cache), and the newest of the pipeline's
/// requests awaiting approval, newest first, with their approvals so far.
pub(super) async fn of_pipeline_page(
    conn: &mut Conn,
    cache: &crate::cache::OverviewCache,
    team: TeamId,
    pipeline: PipelineId,
    arrival_ids: &[Uuid],
) -> StoreResult<(Vec<Arrival>, Vec<PendingRequest>)> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        head: HeadRow,
        source_snapshot_id: Uuid,
        backup_snapshot_id: Option<Uuid>,
        applied_at: Option<DateTime<Utc>>,
        rolled_back_at: Option<DateTime<Utc>>,
        rolled_back_by: Option<String>,
        approvals: i64,
        is_pending: i32,
    }
    const COLUMNS: &str =
        "source_snapshot_id, backup_snapshot_id, applied_at, rolled_back_at, rolled_back_by";
    // The status and the limit are written into the statement, not bound:
    // PostgreSQL then plans it once for the connection (a generic plan that
    // knows how rare waiting requests are) instead of on every call (a
    // bound status made the generic plan look costlier than a custom one,
    // and planning was most of the page's database time).
    let mut q = sqlx::QueryBuilder::<Db>::new(format!(
        "select * from (select {HEAD_COLUMNS}, {COLUMNS},
            (select count(*) from promotion_approvals a
              where a.promotion_id = p.id and a.decision = 'approve') as approvals,
            1 as is_pending
         from promotions p where team_id = "
    ));
    q.push_bind(team.0)
        .push(" and pipeline_id = ")
        .push_bind(pipeline.0)
        .push(format!(
            " and status = '{}' order by created_at desc, id desc limit {MAX_PENDING_SHOWN}) as pending",
            PromotionStatus::PendingApproval.as_str()
        ));
    if !arrival_ids.is_empty() {
        q.push(format!(
            " union all select {HEAD_COLUMNS}, {COLUMNS}, 0, 0 from promotions where team_id = "
        ))
        .push_bind(team.0)
        .push(" and id in (");
        let mut list = q.separated(", ");
        for id in arrival_ids {
            list.push_bind(*id);
        }
        q.push(")");
    }
    let rows: Vec<Row> = q.build_query_as().fetch_all(&mut *conn).await?;
    let (pending, arrived): (Vec<Row>, Vec<Row>) =
        rows.into_iter().partition(|r| r.is_pending == 1);
    // A rollback put the backup back; otherwise the pinned snapshot is
    // what the promotion left.
    let left = |r: &Row| match (r.head.status.as_str(), r.backup_snapshot_id) {
        ("rolled_back", Some(backup)) => backup,
        _ => r.source_snapshot_id,
    };
    let wanted: Vec<Uuid> = arrived.iter().map(left).collect();
    let manifests = super::snapshots::manifests(conn, cache, &wanted).await?;
    let arrivals = arrived
        .into_iter()
        .map(|r| {
            let left_flows = manifests.get(&left(&r)).cloned().unwrap_or_default();
            Ok(Arrival {
                promotion: r.head.into_head()?,
                applied_at: r.applied_at,
                rolled_back_at: r.rolled_back_at,
                rolled_back_by: r.rolled_back_by,
                left_flows,
            })
        })
        .collect::<StoreResult<_>>()?;
    let mut pending = pending
        .into_iter()
        .map(|r| {
            Ok(PendingRequest {
                approvals: u32::try_from(r.approvals).unwrap_or(u32::MAX),
                promotion: r.head.into_head()?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    pending.sort_by_key(|p| std::cmp::Reverse((p.promotion.created_at, p.promotion.id)));
    Ok((arrivals, pending))
}

/// The promotions that pinned the snapshot or took it as their backup,
/// newest first: two index lookups.
pub(super) async fn of_snapshot(
    conn: &mut Conn,
    team: TeamId,
    snapshot: SnapshotId,
) -> StoreResult<Vec<PromotionHead>> {
    let rows: Vec<HeadRow> = sqlx::query_as(&format!(
        "select {HEAD_COLUMNS} from promotions
         where team_id = $1 and (source_snapshot_id = $2 or backup_snapshot_id = $2)
         order by created_at desc, id desc limit 20"
    ))
    .bind(team.0)
    .bind(snapshot.0)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(HeadRow::into_head).collect()
}

/// The rollbacks of a promotion (requested, waiting, applied or not),
/// newest first.
pub(super) async fn rollbacks_of(
    conn: &mut Conn,
    team: TeamId,
    promotion: PromotionId,
) -> StoreResult<Vec<PromotionHead>> {
    let rows: Vec<HeadRow> = sqlx::query_as(&format!(
        "select {HEAD_COLUMNS} from promotions
         where rollback_of = $1 and team_id = $2
         order by created_at desc, id desc limit 20"
    ))
    .bind(promotion.0)
    .bind(team.0)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(HeadRow::into_head).collect()
}

/// One `select` of the history: the filters, the window, the page.
fn push_history_branch(
    q: &mut sqlx::QueryBuilder<'_, Db>,
    team: TeamId,
    f: &PromotionFilter,
    stage: Option<(&'static str, StageId)>,
) {
    q.push(format!(
        "select {PROMOTION_COLUMNS} from promotions where team_id = "
    ));
    q.push_bind(team.0);
    if let Some((column, id)) = stage {
        q.push(format!(" and {column} = ")).push_bind(id.0);
    }
    if let Some(p) = f.pipeline {
        q.push(" and pipeline_id = ").push_bind(p.0);
    }
    if let Some(a) = &f.actor {
        q.push(" and requested_by = ").push_bind(a.clone());
    }
    if let Some(s) = f.status {
        q.push(" and status = ").push_bind(s.as_str());
    }
    push_window_and_page(
        q,
        f.since,
        f.until,
        f.before.map(|(at, id)| (at, id.0)),
        f.limit,
    );
}
