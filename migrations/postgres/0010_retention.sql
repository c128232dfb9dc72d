-- Retention and purge. Deleting the oldest events of an audit chain
-- leaves the chain starting past seq 1: its anchor records where it now
-- starts and the hash the first kept event links to, so `verify` starts
-- there. The purge that moved an anchor records it in the platform chain
-- too, and `verify` checks the two agree: an anchor written or removed
-- behind Stagehand's back is found.
create table audit_chain_anchors (
    chain text not null,
    -- The position of the first kept event.
    first_seq bigint not null,
    -- The hash of the last purged event: what the first kept one links to.
    prev_hash text not null,
    -- Events purged from the front of the chain, over every purge.
    purged_events bigint not null,
    purged_at timestamptz not null,
    purged_by text not null,
    created_at timestamptz not null,
    constraint audit_chain_anchors_pkey primary key (chain),
    constraint audit_chain_anchors_first_seq_positive check (first_seq > 1)
);

-- What the purge asks before it deletes a snapshot or flow content (and
-- what PostgreSQL's foreign key checks ask on every such delete): is
-- anything still pointing at it.
create index promotions_source_snapshot_idx on promotions (source_snapshot_id);
create index promotions_backup_snapshot_idx on promotions (backup_snapshot_id);
create index flows_content_hash_idx on flows (content_hash);
