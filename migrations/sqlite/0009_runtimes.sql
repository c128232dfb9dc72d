-- Connected instances (see the PostgreSQL migration). SQLite cannot change
-- a CHECK constraint in place, so promotions is rebuilt: copy, drop,
-- rename, recreate the indexes. sqlx runs every SQLite migration inside a
-- transaction, where foreign keys cannot be switched off, so dropping the
-- old table cascades to its approvals: they are kept aside and put back,
-- with the key checks deferred to the commit.
PRAGMA defer_foreign_keys = ON;
create table promotion_approvals_kept as select * from promotion_approvals;

create table instance_runtimes (
    instance_id blob not null,
    kind text not null,
    url text not null,
    auth_nonce blob not null,
    auth_ciphertext blob not null,
    revision text,
    synced_at text,
    last_pull_at text,
    state text not null default 'unknown',
    state_detail text,
    changed_by text,
    checked_at text,
    connected_at text not null,
    connected_by text not null,
    constraint instance_runtimes_pkey primary key (instance_id),
    constraint instance_runtimes_instance_fkey foreign key (instance_id) references instances (id) on delete cascade,
    constraint instance_runtimes_kind_valid check (kind in ('node-red', 'langflow')),
    constraint instance_runtimes_state_valid check (state in ('unknown', 'in_sync', 'drifted', 'unreachable', 'auth_failed'))
);

create table promotions_new (
    id blob not null,
    team_id blob not null,
    pipeline_id blob not null,
    source_stage_id blob not null,
    target_stage_id blob not null,
    source_instance_id blob not null,
    target_instance_id blob not null,
    status text not null,
    source_snapshot_id blob not null,
    backup_snapshot_id blob,
    target_version integer,
    plan text not null,
    requested_by_user_id blob,
    requested_by text not null,
    idempotency_key text,
    created_at text not null,
    applied_at text,
    rolled_back_at text,
    rollback_of blob,
    requested_target_version integer,
    runtime_revision text,
    runtime_error text,
    overwrite_drift integer not null default 0,
    deploy_started_at text,
    constraint promotions_pkey primary key (id),
    constraint promotions_team_fkey foreign key (team_id) references teams (id) on delete cascade,
    constraint promotions_source_snapshot_fkey foreign key (source_snapshot_id) references snapshots (id),
    constraint promotions_backup_snapshot_fkey foreign key (backup_snapshot_id) references snapshots (id),
    constraint promotions_team_idempotency_key unique (team_id, idempotency_key),
    constraint promotions_status_valid check (status in ('pending_approval', 'deploying', 'applied', 'failed', 'rejected', 'rolled_back'))
);
insert into promotions_new (id, team_id, pipeline_id, source_stage_id, target_stage_id, source_instance_id,
    target_instance_id, status, source_snapshot_id, backup_snapshot_id, target_version, plan,
    requested_by_user_id, requested_by, idempotency_key, created_at, applied_at, rolled_back_at,
    rollback_of, requested_target_version)
select id, team_id, pipeline_id, source_stage_id, target_stage_id, source_instance_id,
    target_instance_id, status, source_snapshot_id, backup_snapshot_id, target_version, plan,
    requested_by_user_id, requested_by, idempotency_key, created_at, applied_at, rolled_back_at,
    rollback_of, requested_target_version
from promotions;
drop table promotions;
alter table promotions_new rename to promotions;
insert into promotion_approvals select * from promotion_approvals_kept;
drop table promotion_approvals_kept;
create index promotions_team_created_idx on promotions (team_id, created_at desc, id desc);
create index promotions_pipeline_created_idx on promotions (pipeline_id, created_at desc, id desc);
create index promotions_team_status_created_idx on promotions (team_id, status, created_at desc, id desc);
create index promotions_team_actor_created_idx on promotions (team_id, requested_by, created_at desc, id desc);
create index promotions_source_stage_created_idx on promotions (source_stage_id, created_at desc, id desc);
create index promotions_target_stage_created_idx on promotions (target_stage_id, created_at desc, id desc);
create index promotions_source_stage_actor_created_idx on promotions (source_stage_id, requested_by, created_at desc, id desc);
create index promotions_target_stage_actor_created_idx on promotions (target_stage_id, requested_by, created_at desc, id desc);
create index promotions_source_stage_status_created_idx on promotions (source_stage_id, status, created_at desc, id desc);
create index promotions_target_stage_status_created_idx on promotions (target_stage_id, status, created_at desc, id desc);
create index promotions_team_actor_status_created_idx on promotions (team_id, requested_by, status, created_at desc, id desc);
create index promotions_deploying_idx on promotions (deploy_started_at) where status = 'deploying';

alter table env_vars add column held_by_runtime integer not null default 0;

create table jobs (
    name text not null,
    next_run_at text not null,
    holder text,
    last_run_at text,
    constraint jobs_pkey primary key (name)
);
