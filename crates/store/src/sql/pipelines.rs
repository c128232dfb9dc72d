//! Pipelines and their stages: add, remove, reorder. A stage shows the
//! protection of its instance; removing a protected instance from a
//! pipeline (or deleting the pipeline) is a change of that instance's
//! existence in the pipeline, refused unless the actor manages protection.

use super::{Conn, audit, history, instances, now, stored};
use crate::cache::{OverviewCache, StateKey};
use crate::error::{Conflict, StoreError, StoreResult};
use crate::model::{Actor, NewAuditEvent, Pipeline, PipelineOverview, Stage, StageOverview};
use chrono::{DateTime, Utc};
use serde_json::json;
use stagehand_domain::{
    AuditEventKind, InstanceId, Name, PipelineId, Protection, StageId, StageOrder, TeamId,
    ValidationError,
};
use uuid::Uuid;

/// Most stages one pipeline may have.
pub(crate) const MAX_STAGES: usize = 20;

#[derive(Clone, sqlx::FromRow)]
struct PipelineRow {
    id: Uuid,
    team_id: Uuid,
    name: String,
    created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct StageRow {
    id: Uuid,
    instance_id: Uuid,
    instance_name: String,
    position: i32,
    required_approvals: i32,
    requires_all_env_values: bool,
}

impl StageRow {
    fn into_stage(self) -> StoreResult<Stage> {
        Ok(Stage {
            id: StageId(self.id),
            instance_id: InstanceId(self.instance_id),
            instance_name: stored(Name::from_stored(&self.instance_name))?,
            position: self.position.into(),
            protection: stored(Protection::new(
                u32::try_from(self.required_approvals).unwrap_or(0),
                self.requires_all_env_values,
            ))?,
        })
    }
}

fn assemble(row: PipelineRow, stages: Vec<Stage>) -> StoreResult<Pipeline> {
    Ok(Pipeline {
        id: PipelineId(row.id),
        team_id: TeamId(row.team_id),
        name: stored(Name::from_stored(&row.name))?,
        created_at: row.created_at,
        stages,
    })
}

/// A pipeline with its stages, one row per stage (one row with no stage
/// for a pipeline without any), so a read is one query.
const PIPELINE_COLUMNS: &str = "p.id, p.team_id, p.name, p.created_at,
        s.id as stage_id, s.instance_id, i.name as instance_name, s.position,
        i.required_approvals, i.requires_all_env_values";
const PIPELINE_FROM: &str = "from pipelines p
     left join stages s on s.pipeline_id = p.id
     left join instances i on i.id = s.instance_id";

#[derive(sqlx::FromRow)]
struct PipelineStageRow {
    #[sqlx(flatten)]
    pipeline: PipelineRow,
    stage_id: Option<Uuid>,
    instance_id: Option<Uuid>,
    instance_name: Option<String>,
    position: Option<i32>,
    required_approvals: Option<i32>,
    requires_all_env_values: Option<bool>,
}

impl PipelineStageRow {
    /// Its stage, if the row has one (a stage's instance always exists:
    /// the foreign key keeps a staged instance from being deleted).
    fn stage(&self) -> Option<StageRow> {
        Some(StageRow {
            id: self.stage_id?,
            instance_id: self.instance_id?,
            instance_name: self.instance_name.clone()?,
            position: self.position?,
            required_approvals: self.required_approvals?,
            requires_all_env_values: self.requires_all_env_values?,
        })
    }
}

/// Pipelines from rows ordered by pipeline, then stage position.
fn assemble_rows(rows: Vec<PipelineStageRow>) -> StoreResult<Vec<Pipeline>> {
    let mut pipelines: Vec<(PipelineRow, Vec<Stage>)> = Vec::new();
    for row in rows {
        let stage = row.stage().map(StageRow::into_stage).transpose()?;
        match pipelines.last_mut() {
            Some((p, stages)) if p.id == row.pipeline.id => stages.extend(stage),
            _ => pipelines.push((row.pipeline, stage.into_iter().collect())),
        }
    }
    pipelines
        .into_iter()
        .map(|(row, stages)| assemble(row, stages))
        .collect()
}

pub(super) async fn get(conn: &mut Conn, team: TeamId, id: PipelineId) -> StoreResult<Pipeline> {
    let rows: Vec<PipelineStageRow> = sqlx::query_as(&format!(
        "select {PIPELINE_COLUMNS} {PIPELINE_FROM} where p.id = $1 and p.team_id = $2 order by s.position"
    ))
    .bind(id.0)
    .bind(team.0)
    .fetch_all(conn)
    .await?;
    assemble_rows(rows)?
        .pop()
        .ok_or(StoreError::NotFound("pipeline"))
}

/// Every pipeline of the team with its stages, in one query.
pub(super) async fn list(conn: &mut Conn, team: TeamId) -> StoreResult<Vec<Pipeline>> {
    let rows: Vec<PipelineStageRow> = sqlx::query_as(&format!(
        "select {PIPELINE_COLUMNS} {PIPELINE_FROM} where p.team_id = $1 order by p.name, p.id, s.position"
    ))
    .bind(team.0)
    .fetch_all(conn)
    .await?;
    assemble_rows(rows)
}

async fn record(
    conn: &mut Conn,
    pipeline: &Pipeline,
    actor: &Actor,
    kind: AuditEventKind,
    details: serde_json::Value,
) -> StoreResult<()> {
    let mut details = details;
    if let Some(map) = details.as_object_mut() {
        map.insert("pipeline".into(), json!(pipeline.name));
    }
    audit::record(
        conn,
        NewAuditEvent {
            team: Some(pipeline.team_id),
            actor,
            kind,
            subject: Some(pipeline.id.0),
            details,
        },
    )
    .await
}

pub(super) async fn create(
    conn: &mut Conn,
    team: TeamId,
    name: Name,
    actor: &Actor,
) -> StoreResult<Pipeline> {
    super::identity::team(conn, team).await?;
    let id = PipelineId::new();
    sqlx::query("insert into pipelines (id, team_id, name, created_at) values ($1, $2, $3, $4)")
        .bind(id.0)
        .bind(team.0)
        .bind(name.as_str())
        .bind(now())
        .execute(&mut *conn)
        .await?;
    let pipeline = get(conn, team, id).await?;
    record(
        conn,
        &pipeline,
        actor,
        AuditEventKind::PipelineCreated,
        json!({}),
    )
    .await?;
    Ok(pipeline)
}

pub(super) async fn rename(
    conn: &mut Conn,
    team: TeamId,
    id: PipelineId,
    name: Name,
    actor: &Actor,
) -> StoreResult<Pipeline> {
    let before = lock(conn, team, id).await?;
    sqlx::query("update pipelines set name = $3 where id = $1 and team_id = $2")
        .bind(id.0)
        .bind(team.0)
        .bind(name.as_str())
        .execute(&mut *conn)
        .await?;
    let pipeline = get(conn, team, id).await?;
    record(
        conn,
        &pipeline,
        actor,
        AuditEventKind::PipelineRenamed,
        json!({ "from": before.name }),
    )
    .await?;
    Ok(pipeline)
}

/// Locks the pipeline against concurrent stage edits (its row, on Postgres).
async fn lock(conn: &mut Conn, team: TeamId, id: PipelineId) -> StoreResult<Pipeline> {
    // An update that changes nothing takes the row lock in both dialects.
    let hit = sqlx::query("update pipelines set name = name where id = $1 and team_id = $2")
        .bind(id.0)
        .bind(team.0)
        .execute(&mut *conn)
        .await?;
    if hit.rows_affected() == 0 {
        return Err(StoreError::NotFound("pipeline"));
    }
    get(conn, team, id).await
}

pub(super) async fn delete(
    conn: &mut Conn,
    team: TeamId,
    id: PipelineId,
    actor: &Actor,
) -> StoreResult<()> {
    let pipeline = lock(conn, team, id).await?;
    // In instance id order, as plays lock them, so that two deletions of
    // pipelines sharing instances cannot deadlock.
    let mut stages: Vec<&Stage> = pipeline.stages.iter().collect();
    stages.sort_by_key(|s| s.instance_id);
    for stage in &stages {
        check_unprotected(conn, team, stage, actor).await?;
    }
    for stage in &stages {
        check_nothing_waits(conn, stage).await?;
    }
    sqlx::query("delete from pipelines where id = $1")
        .bind(id.0)
        .execute(&mut *conn)
        .await?;
    record(
        conn,
        &pipeline,
        actor,
        AuditEventKind::PipelineDeleted,
        json!({}),
    )
    .await
}

/// A protected instance leaves a pipeline only at the hands of someone
/// who manages protection (under the instance's row lock).
async fn check_unprotected(
    conn: &mut Conn,
    team: TeamId,
    stage: &Stage,
    actor: &Actor,
) -> StoreResult<()> {
    super::instances::lock_for_direct_edit(conn, team, stage.instance_id, None, actor)
        .await
        .map(|_| ())
}

/// No stage leaves while a request into or out of it waits for approval:
/// the request would outlive it, unseen on the pipeline's page.
async fn check_nothing_waits(conn: &mut Conn, stage: &Stage) -> StoreResult<()> {
    let waiting: Option<Uuid> = sqlx::query_scalar(
        "select id from promotions
          where (target_stage_id = $1 or source_stage_id = $1) and status = 'pending_approval'
          limit 1",
    )
    .bind(stage.id.0)
    .fetch_optional(&mut *conn)
    .await?;
    match waiting {
        Some(id) => Err(Conflict::RequestWaiting {
            instance: stage.instance_name.to_string(),
            id: stagehand_domain::PromotionId(id),
        }
        .into()),
        None => Ok(()),
    }
}

/// Gives the stages the positions of `order` (0, 1, …). Two passes, so the
/// unique (pipeline, position) constraint holds after every statement.
async fn renumber(conn: &mut Conn, pipeline: PipelineId, order: &[StageId]) -> StoreResult<()> {
    for pass in [true, false] {
        for (i, stage) in order.iter().enumerate() {
            let i = i32::try_from(i).unwrap_or(i32::MAX);
            sqlx::query("update stages set position = $3 where id = $1 and pipeline_id = $2")
                .bind(stage.0)
                .bind(pipeline.0)
                .bind(if pass { -i - 1 } else { i })
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(())
}

/// Duplicates `source` and, with `into`, adds the copy to that pipeline:
/// after the source's stage when it has one there, last otherwise.
pub(super) async fn duplicate_into(
    conn: &mut Conn,
    team: TeamId,
    source: InstanceId,
    name: Name,
    into: Option<PipelineId>,
    actor: &Actor,
) -> StoreResult<crate::model::Instance> {
    let made = instances::duplicate(conn, team, source, name, actor).await?;
    if let Some(pipeline) = into {
        let position = lock(conn, team, pipeline)
            .await?
            .stages
            .iter()
            .position(|s| s.instance_id == source)
            .map(|i| i + 1);
        add_stage(conn, team, pipeline, made.id, position, actor).await?;
    }
    Ok(made)
}

pub(super) async fn add_stage(
    conn: &mut Conn,
    team: TeamId,
    pipeline_id: PipelineId,
    instance: InstanceId,
    position: Option<usize>,
    actor: &Actor,
) -> StoreResult<Pipeline> {
    let pipeline = lock(conn, team, pipeline_id).await?;
    if pipeline.stages.len() >= MAX_STAGES {
        return Err(ValidationError::new(
            "stages",
            format!("a pipeline has at most {MAX_STAGES} stages"),
        )
        .into());
    }
    let position = position.unwrap_or(pipeline.stages.len());
    if position > pipeline.stages.len() {
        return Err(ValidationError::new(
            "position",
            format!("must be between 0 and {}", pipeline.stages.len()),
        )
        .into());
    }
    // Another team's instance is "not found", whatever its id.
    let inst = super::instances::get(conn, team, instance)
        .await
        .map_err(|e| match e {
            StoreError::NotFound(_) => {
                ValidationError::new("instance_id", "no such instance in this team").into()
            }
            other => other,
        })?;
    let id = StageId::new();
    sqlx::query(
        "insert into stages (id, pipeline_id, team_id, instance_id, position, created_at)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id.0)
    .bind(pipeline_id.0)
    .bind(team.0)
    .bind(instance.0)
    .bind(i32::MIN)
    .bind(now())
    .execute(&mut *conn)
    .await?;
    let mut order: Vec<StageId> = pipeline.stages.iter().map(|s| s.id).collect();
    order.insert(position, id);
    renumber(conn, pipeline_id, &order).await?;
    let updated = get(conn, team, pipeline_id).await?;
    record(
        conn,
        &updated,
        actor,
        AuditEventKind::StageAdded,
        json!({ "stage": id, "instance": inst.name, "position": position }),
    )
    .await?;
    Ok(updated)
}

pub(super) async fn remove_stage(
    conn: &mut Conn,
    team: TeamId,
    pipeline_id: PipelineId,
    stage: StageId,
    actor: &Actor,
) -> StoreResult<Pipeline> {
    let pipeline = lock(conn, team, pipeline_id).await?;
    let Some((removed, _)) = pipeline.stage_and_next(stage) else {
        return Err(StoreError::NotFound("stage"));
    };
    check_unprotected(conn, team, removed, actor).await?;
    check_nothing_waits(conn, removed).await?;
    let instance = removed.instance_name.clone();
    sqlx::query("delete from stages where id = $1")
        .bind(stage.0)
        .execute(&mut *conn)
        .await?;
    let order: Vec<StageId> = pipeline
        .stages
        .iter()
        .map(|s| s.id)
        .filter(|s| *s != stage)
        .collect();
    renumber(conn, pipeline_id, &order).await?;
    let updated = get(conn, team, pipeline_id).await?;
    record(
        conn,
        &updated,
        actor,
        AuditEventKind::StageRemoved,
        json!({ "stage": stage, "instance": instance }),
    )
    .await?;
    Ok(updated)
}

pub(super) async fn reorder(
    conn: &mut Conn,
    team: TeamId,
    pipeline_id: PipelineId,
    wanted: Vec<StageId>,
    actor: &Actor,
) -> StoreResult<Pipeline> {
    let pipeline = lock(conn, team, pipeline_id).await?;
    let current: Vec<StageId> = pipeline.stages.iter().map(|s| s.id).collect();
    let order = StageOrder::parse(&current, wanted)?;
    renumber(conn, pipeline_id, order.as_slice()).await?;
    let updated = get(conn, team, pipeline_id).await?;
    let names: Vec<&Name> = updated.stages.iter().map(|s| &s.instance_name).collect();
    record(
        conn,
        &updated,
        actor,
        AuditEventKind::StagesReordered,
        json!({ "order": names }),
    )
    .await?;
    Ok(updated)
}

/// The pipeline with what each stage's card shows, in two queries
/// whatever the number of stages, once the cache holds the stages' states
/// and the snapshots their promotions left: the pipeline with its stages
/// and the id of each one's newest applied promotion (a correlated index
/// lookup), then those promotions and the pending requests with their
/// approvals. The stages' flows and keys are read only when an instance's
/// version moved; the team's instance names (a third query) only when
/// `with_team_instances` or a promotion shown comes from elsewhere.
pub(super) async fn overview(
    conn: &mut Conn,
    cache: &OverviewCache,
    team: TeamId,
    id: PipelineId,
    with_team_instances: bool,
) -> StoreResult<PipelineOverview> {
    /// A pipeline row joined to one of its stages, or to none, with its
    /// instance's state key and the last promotion that arrived there.
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        base: PipelineStageRow,
        instance_version: Option<i64>,
        instance_updated_at: Option<DateTime<Utc>>,
        last_arrival: Option<Uuid>,
        /// Whether the stage's instance is connected to a runtime.
        connected: Option<bool>,
    }
    let joined: Vec<Row> = sqlx::query_as(&format!(
        "select {PIPELINE_COLUMNS},
            i.version as instance_version, i.updated_at as instance_updated_at,
            (select x.id from promotions x
              where x.target_stage_id = s.id and x.status in ('applied', 'rolled_back')
              order by x.created_at desc, x.id desc limit 1) as last_arrival,
            exists (select 1 from instance_runtimes r where r.instance_id = s.instance_id)
              as connected
         {PIPELINE_FROM}
         where p.id = $1 and p.team_id = $2
         order by s.position"
    ))
    .bind(id.0)
    .bind(team.0)
    .fetch_all(&mut *conn)
    .await?;
    let first = joined.first().ok_or(StoreError::NotFound("pipeline"))?;
    let row = first.base.pipeline.clone();
    // Runtime connections are read only when a stage has one (most
    // pipelines have none: no statement then).
    let links = if joined.iter().any(|r| r.connected == Some(true)) {
        super::runtimes::links(conn, team).await?
    } else {
        Vec::new()
    };
    let rows: Vec<(StageRow, StateKey, Option<Uuid>)> = joined
        .into_iter()
        .filter_map(|r| {
            Some((
                r.base.stage()?,
                (r.instance_version?, r.instance_updated_at?),
                r.last_arrival,
            ))
        })
        .collect();
    let instances: Vec<(Uuid, StateKey)> = rows
        .iter()
        .map(|(s, key, _)| (s.instance_id, *key))
        .collect();
    let mut states = instances::states_cached(conn, cache, &instances).await?;
    let arrival_ids: Vec<Uuid> = rows.iter().filter_map(|(_, _, a)| *a).collect();
    let (arrivals, pending) =
        history::of_pipeline_page(conn, cache, team, id, &arrival_ids).await?;
    let mut stages = Vec::with_capacity(rows.len());
    let mut cards = Vec::with_capacity(rows.len());
    for (r, _, arrival) in rows {
        let stage = r.into_stage()?;
        let known = states
            .remove(&stage.instance_id.0)
            .ok_or(StoreError::NotFound("instance"))?;
        cards.push(StageOverview {
            state_hash: known.1,
            state: known.0,
            arrival: arrival.and_then(|a| arrivals.iter().find(|x| x.promotion.id.0 == a).cloned()),
            pending: pending
                .iter()
                .filter(|p| p.promotion.target_stage_id == stage.id)
                .cloned()
                .collect(),
            runtime: links
                .iter()
                .find(|l| l.instance_id == stage.instance_id)
                .cloned(),
            stage: stage.clone(),
        });
        stages.push(stage);
    }
    let pipeline = assemble(row, stages)?;
    let from_elsewhere = cards.iter().any(|c| {
        c.arrival
            .iter()
            .map(|a| &a.promotion)
            .chain(c.pending.iter().map(|p| &p.promotion))
            .any(|p| {
                !pipeline
                    .stages
                    .iter()
                    .any(|s| s.instance_id == p.source_instance_id)
            })
    });
    let team_instances = if with_team_instances || from_elsewhere {
        instances::names(conn, team).await?
    } else {
        Vec::new()
    };
    Ok(PipelineOverview {
        pipeline,
        stages: cards,
        team_instances,
    })
}
