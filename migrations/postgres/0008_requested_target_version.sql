-- The target's version when a promotion or rollback was requested: if the
-- target changed before the approval, reviewers are told that what
-- applies is the pinned snapshot over the target as it is by then.
alter table promotions add column requested_target_version bigint;
