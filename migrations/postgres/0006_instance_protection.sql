-- Protection belongs to the instance (the environment), not to one stage
-- of one pipeline: it survives stage removal and re-adding, and a second
-- pipeline cannot start it over at 0. Today's settings carry over: an
-- instance takes the strictest protection any of its stages had. The
-- stage columns stay (a landed migration is never edited) but are no
-- longer read or written.
alter table instances add column required_approvals integer not null default 0;
alter table instances add column requires_all_env_values boolean not null default false;
alter table instances add constraint instances_required_approvals_range
    check (required_approvals between 0 and 10);
update instances set
    required_approvals = coalesce(
        (select max(s.required_approvals) from stages s where s.instance_id = instances.id), 0),
    requires_all_env_values = exists(
        select 1 from stages s where s.instance_id = instances.id and s.requires_all_env_values);

-- A rollback into a protected instance is requested like a promotion and
-- applied once approved: the request is a promotion row that points at
-- the promotion it undoes.
alter table promotions add column rollback_of uuid;

-- Who created a token, as a user id: a promotion requested through a
-- service account may not be approved by the person who created it.
alter table api_tokens add column created_by_user_id uuid;
alter table api_tokens add constraint api_tokens_created_by_user_fkey
    foreign key (created_by_user_id) references users (id) on delete set null;
update api_tokens set created_by_user_id =
    (select u.id from users u where u.username = api_tokens.created_by);
