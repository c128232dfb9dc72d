-- Indexes for the history and audit filters: each serves one filter in the
-- newest-first keyset order, so a page never scans or sorts the rows of
-- other pages.
create index promotions_team_status_created_idx on promotions (team_id, status, created_at desc, id desc);
create index promotions_team_actor_created_idx on promotions (team_id, requested_by, created_at desc, id desc);
create index promotions_source_stage_created_idx on promotions (source_stage_id, created_at desc, id desc);
create index promotions_target_stage_created_idx on promotions (target_stage_id, created_at desc, id desc);
create index audit_events_team_actor_created_idx on audit_events (team_id, actor, created_at desc, id desc);
create index audit_events_team_kind_created_idx on audit_events (team_id, kind, created_at desc, id desc);
-- The filters auditors combine most: a stage with an actor or a status.
create index promotions_source_stage_actor_created_idx on promotions (source_stage_id, requested_by, created_at desc, id desc);
create index promotions_target_stage_actor_created_idx on promotions (target_stage_id, requested_by, created_at desc, id desc);
create index promotions_source_stage_status_created_idx on promotions (source_stage_id, status, created_at desc, id desc);
create index promotions_target_stage_status_created_idx on promotions (target_stage_id, status, created_at desc, id desc);
create index promotions_team_actor_status_created_idx on promotions (team_id, requested_by, status, created_at desc, id desc);
