-- Delivery metrics (deployment frequency, lead time, change failure rate,
-- time to restore, approval wait), kept as one row per target stage and
-- day. Each row is recomputed from the promotions of that stage and day in
-- the transaction that changes one of them, so reading a period costs one
-- row per stage and day, however long the history.

-- How long the oldest flow change a promotion carries waited, from the
-- first save of its content to this arrival; set when it is applied.
alter table promotions add column lead_seconds integer;

-- "The promotions that arrived in this stage on this day."
create index promotions_target_stage_applied_idx on promotions (target_stage_id, applied_at);

create table delivery_days (
    stage_id blob not null,
    day text not null,
    team_id blob not null,
    pipeline_id blob not null,
    -- Promotions applied into the stage that day, rollbacks not counted.
    deployments integer not null,
    -- Of those, the ones rolled back since.
    rolled_back integer not null,
    -- Promotions into the stage requested that day whose runtime deploy failed.
    failed integer not null,
    -- Histograms (JSON: count, sum, max, per-bucket counts) in seconds.
    lead_times text not null,
    restore_times text not null,
    approval_waits text not null,
    constraint delivery_days_pkey primary key (stage_id, day),
    constraint delivery_days_team_fkey foreign key (team_id) references teams (id) on delete cascade
);
create index delivery_days_team_day_idx on delivery_days (team_id, day);
create index delivery_days_pipeline_day_idx on delivery_days (pipeline_id, day);

-- When each team first saved each flow content: where a lead time starts.
-- Content is stored once for every team (flow_blobs), so its own date
-- would tell one team when another first held the same flow.
create table flow_saves (
    team_id blob not null,
    hash text not null,
    first_saved_at text not null,
    constraint flow_saves_pkey primary key (team_id, hash),
    constraint flow_saves_team_fkey foreign key (team_id) references teams (id) on delete cascade
);
-- What the team holds now, from when its instances last changed it.
insert into flow_saves (team_id, hash, first_saved_at)
    select i.team_id, f.content_hash, min(f.updated_at)
    from flows f join instances i on i.id = f.instance_id
    group by i.team_id, f.content_hash;
