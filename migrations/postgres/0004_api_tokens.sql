-- API tokens for CI/CD: bound to a role in one team, for a user or for the
-- team itself (a service account, user_id null). Only the SHA-256 of the
-- secret is kept; the secret is shown once, at creation.
create table api_tokens (
    id uuid not null,
    team_id uuid not null,
    name text not null,
    secret_hash text not null,
    user_id uuid,
    role text not null,
    created_by text not null,
    expires_at timestamptz,
    last_used_at timestamptz,
    revoked_at timestamptz,
    created_at timestamptz not null,
    constraint api_tokens_pkey primary key (id),
    constraint api_tokens_team_fkey foreign key (team_id) references teams (id) on delete cascade,
    constraint api_tokens_user_fkey foreign key (user_id) references users (id) on delete cascade,
    constraint api_tokens_secret_hash_key unique (secret_hash),
    constraint api_tokens_team_name_key unique (team_id, name)
);
