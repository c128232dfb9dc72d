-- A tamper-evident audit log: each event carries its position in its
-- chain (one chain per team, one for the platform's own events), the hash
-- of the event before it and its own hash over a canonical encoding.
-- Events written before this change have no hash; the chain starts after
-- them.
alter table audit_events add column chain_seq integer;
alter table audit_events add column prev_hash text;
alter table audit_events add column hash text;
create unique index audit_events_chain_seq_idx on audit_events (team_id, chain_seq);

-- The head of each chain; its row lock orders writers of one chain.
create table audit_chain_heads (
    chain text not null,
    seq integer not null,
    last_hash text not null,
    created_at text not null,
    constraint audit_chain_heads_pkey primary key (chain)
);
