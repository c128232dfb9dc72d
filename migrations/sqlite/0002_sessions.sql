-- Web sessions and login throttling. Both live in the database so that a
-- restart forgets nothing (and PostgreSQL replicas share them).

-- A session is found by the SHA-256 of its cookie token, so reading this
-- table never yields a usable cookie.
create table sessions (
    token_hash text not null,
    user_id blob not null,
    csrf_token text not null,
    created_at text not null,
    last_seen_at text not null,
    expires_at text not null,
    constraint sessions_pkey primary key (token_hash),
    constraint sessions_user_fkey foreign key (user_id) references users (id) on delete cascade
);
create index sessions_user_idx on sessions (user_id);
create index sessions_expires_idx on sessions (expires_at);

-- One row per failed login, per scope (`user:NAME`, `ip:ADDRESS`); the
-- throttle counts the rows of a scope inside its window.
create table login_failures (
    id blob not null,
    scope text not null,
    created_at text not null,
    constraint login_failures_pkey primary key (id)
);
create index login_failures_scope_idx on login_failures (scope, created_at);
