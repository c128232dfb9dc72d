-- Connected instances: a runtime (Node-RED, Langflow) an instance mirrors,
-- its sealed credentials, and what Stagehand last saw of it.
create table instance_runtimes (
    instance_id uuid not null,
    kind text not null,
    url text not null,
    auth_nonce bytea not null,
    auth_ciphertext bytea not null,
    -- The runtime's revision when Stagehand last pulled or deployed.
    revision text,
    synced_at timestamptz,
    last_pull_at timestamptz,
    -- What the last check found: unknown, in_sync, drifted, unreachable, auth_failed.
    state text not null default 'unknown',
    state_detail text,
    changed_by text,
    checked_at timestamptz,
    connected_at timestamptz not null,
    connected_by text not null,
    constraint instance_runtimes_pkey primary key (instance_id),
    constraint instance_runtimes_instance_fkey foreign key (instance_id) references instances (id) on delete cascade,
    constraint instance_runtimes_kind_valid check (kind in ('node-red', 'langflow')),
    constraint instance_runtimes_state_valid check (state in ('unknown', 'in_sync', 'drifted', 'unreachable', 'auth_failed'))
);

-- A promotion into a connected target is `deploying` between the runtime
-- call and its outcome; it carries the runtime's answer.
alter table promotions drop constraint promotions_status_valid;
alter table promotions add constraint promotions_status_valid
    check (status in ('pending_approval', 'deploying', 'applied', 'failed', 'rejected', 'rolled_back'));
alter table promotions add column runtime_revision text;
alter table promotions add column runtime_error text;
alter table promotions add column overwrite_drift boolean not null default false;
alter table promotions add column deploy_started_at timestamptz;
create index promotions_deploying_idx on promotions (deploy_started_at) where status = 'deploying';

-- A key whose value only the runtime holds (a Langflow Credential variable).
alter table env_vars add column held_by_runtime boolean not null default false;

-- Periodic background work: one row per job, claimed by one replica per period.
create table jobs (
    name text not null,
    next_run_at timestamptz not null,
    holder text,
    last_run_at timestamptz,
    constraint jobs_pkey primary key (name)
);
