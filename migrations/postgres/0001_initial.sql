-- Stagehand's initial schema (PostgreSQL). Never edit once landed: add a
-- new numbered file instead.

create table stagehand_meta (
    key text not null,
    value text not null,
    created_at timestamptz not null,
    constraint stagehand_meta_pkey primary key (key)
);

create table teams (
    id uuid not null,
    name text not null,
    created_at timestamptz not null,
    constraint teams_pkey primary key (id),
    constraint teams_name_key unique (name)
);

create table users (
    id uuid not null,
    username text not null,
    password_hash text not null,
    is_platform_admin boolean not null default false,
    disabled_at timestamptz,
    created_at timestamptz not null,
    constraint users_pkey primary key (id),
    constraint users_username_key unique (username)
);

-- Custom roles; the built-in viewer, lead and admin live in code.
create table roles (
    id uuid not null,
    team_id uuid not null,
    name text not null,
    permissions jsonb not null,
    created_at timestamptz not null,
    constraint roles_pkey primary key (id),
    constraint roles_team_fkey foreign key (team_id) references teams (id) on delete cascade,
    constraint roles_team_name_key unique (team_id, name)
);

-- `role` is a built-in role name or the name of a custom role of the team.
create table role_bindings (
    team_id uuid not null,
    user_id uuid not null,
    role text not null,
    created_at timestamptz not null,
    constraint role_bindings_pkey primary key (team_id, user_id, role),
    constraint role_bindings_team_fkey foreign key (team_id) references teams (id) on delete cascade,
    constraint role_bindings_user_fkey foreign key (user_id) references users (id) on delete cascade
);
create index role_bindings_user_idx on role_bindings (user_id);

create table instances (
    id uuid not null,
    team_id uuid not null,
    name text not null,
    settings jsonb not null,
    version bigint not null,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    constraint instances_pkey primary key (id),
    constraint instances_team_fkey foreign key (team_id) references teams (id) on delete cascade,
    constraint instances_team_name_key unique (team_id, name),
    constraint instances_id_team_key unique (id, team_id),
    constraint instances_settings_object check (jsonb_typeof(settings) = 'object')
);

-- Flow content, stored once per distinct content and never changed.
create table flow_blobs (
    hash text not null,
    content jsonb not null,
    size_bytes integer not null,
    created_at timestamptz not null,
    constraint flow_blobs_pkey primary key (hash)
);

create table flows (
    instance_id uuid not null,
    name text not null,
    content_hash text not null,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    constraint flows_pkey primary key (instance_id, name),
    constraint flows_instance_fkey foreign key (instance_id) references instances (id) on delete cascade,
    constraint flows_blob_fkey foreign key (content_hash) references flow_blobs (hash)
);

-- Values are AES-256-GCM ciphertext; a key with no value awaits one.
create table env_vars (
    instance_id uuid not null,
    key text not null,
    value_nonce bytea,
    value_ciphertext bytea,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    constraint env_vars_pkey primary key (instance_id, key),
    constraint env_vars_instance_fkey foreign key (instance_id) references instances (id) on delete cascade,
    constraint env_vars_value_pair check ((value_nonce is null) = (value_ciphertext is null))
);

create table pipelines (
    id uuid not null,
    team_id uuid not null,
    name text not null,
    created_at timestamptz not null,
    constraint pipelines_pkey primary key (id),
    constraint pipelines_team_fkey foreign key (team_id) references teams (id) on delete cascade,
    constraint pipelines_team_name_key unique (team_id, name),
    constraint pipelines_id_team_key unique (id, team_id)
);

-- The composite foreign keys make a stage of another team's instance
-- impossible, not merely unchecked.
create table stages (
    id uuid not null,
    pipeline_id uuid not null,
    team_id uuid not null,
    instance_id uuid not null,
    position integer not null,
    required_approvals integer not null default 0,
    requires_all_env_values boolean not null default false,
    created_at timestamptz not null,
    constraint stages_pkey primary key (id),
    constraint stages_pipeline_fkey foreign key (pipeline_id, team_id) references pipelines (id, team_id) on delete cascade,
    constraint stages_instance_fkey foreign key (instance_id, team_id) references instances (id, team_id),
    constraint stages_pipeline_position_key unique (pipeline_id, position),
    constraint stages_pipeline_instance_key unique (pipeline_id, instance_id),
    constraint stages_required_approvals_range check (required_approvals between 0 and 10)
);
create index stages_instance_idx on stages (instance_id);

-- Snapshots and promotions keep plain ids of instances, pipelines and
-- stages (no foreign key) so history outlives what it describes.
create table snapshots (
    id uuid not null,
    team_id uuid not null,
    instance_id uuid not null,
    reason text not null,
    content_hash text not null,
    flows jsonb not null,
    env_keys jsonb not null,
    created_at timestamptz not null,
    constraint snapshots_pkey primary key (id),
    constraint snapshots_team_fkey foreign key (team_id) references teams (id) on delete cascade
);
create index snapshots_instance_idx on snapshots (instance_id, created_at desc);

create table promotions (
    id uuid not null,
    team_id uuid not null,
    pipeline_id uuid not null,
    source_stage_id uuid not null,
    target_stage_id uuid not null,
    source_instance_id uuid not null,
    target_instance_id uuid not null,
    status text not null,
    source_snapshot_id uuid not null,
    backup_snapshot_id uuid,
    target_version bigint,
    plan jsonb not null,
    requested_by_user_id uuid,
    requested_by text not null,
    idempotency_key text,
    created_at timestamptz not null,
    applied_at timestamptz,
    rolled_back_at timestamptz,
    constraint promotions_pkey primary key (id),
    constraint promotions_team_fkey foreign key (team_id) references teams (id) on delete cascade,
    constraint promotions_source_snapshot_fkey foreign key (source_snapshot_id) references snapshots (id),
    constraint promotions_backup_snapshot_fkey foreign key (backup_snapshot_id) references snapshots (id),
    constraint promotions_team_idempotency_key unique (team_id, idempotency_key),
    constraint promotions_status_valid check (status in ('pending_approval', 'applied', 'failed', 'rejected', 'rolled_back'))
);
create index promotions_team_created_idx on promotions (team_id, created_at desc, id desc);
create index promotions_pipeline_created_idx on promotions (pipeline_id, created_at desc, id desc);

-- Room for approvals of protected stages (a later change fills it).
create table promotion_approvals (
    promotion_id uuid not null,
    user_id uuid not null,
    decision text not null,
    created_at timestamptz not null,
    constraint promotion_approvals_pkey primary key (promotion_id, user_id),
    constraint promotion_approvals_promotion_fkey foreign key (promotion_id) references promotions (id) on delete cascade,
    constraint promotion_approvals_decision_valid check (decision in ('approve', 'reject'))
);

create table audit_events (
    id uuid not null,
    team_id uuid,
    actor_user_id uuid,
    actor text not null,
    source_ip text,
    kind text not null,
    subject_id uuid,
    details jsonb not null,
    created_at timestamptz not null,
    constraint audit_events_pkey primary key (id),
    constraint audit_events_team_fkey foreign key (team_id) references teams (id) on delete cascade
);
create index audit_events_team_created_idx on audit_events (team_id, created_at desc, id desc);
