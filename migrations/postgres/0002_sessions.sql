-- Web sessions and login throttling. Both live in the database so that any
-- replica can serve any request and a restart forgets nothing.

-- A session is found by the SHA-256 of its cookie token, so reading this
-- table never yields a usable cookie.
create table sessions (
    token_hash text not null,
    user_id uuid not null,
    csrf_token text not null,
    created_at timestamptz not null,
    last_seen_at timestamptz not null,
    expires_at timestamptz not null,
    constraint sessions_pkey primary key (token_hash),
    constraint sessions_user_fkey foreign key (user_id) references users (id) on delete cascade
);
create index sessions_user_idx on sessions (user_id);
create index sessions_expires_idx on sessions (expires_at);

-- One row per failed login, per scope (`user:NAME`, `ip:ADDRESS`); the
-- throttle counts the rows of a scope inside its window.
create table login_failures (
    id uuid not null,
    scope text not null,
    created_at timestamptz not null,
    constraint login_failures_pkey primary key (id)
);
create index login_failures_scope_idx on login_failures (scope, created_at);
