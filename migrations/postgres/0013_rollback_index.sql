-- The rollbacks of a promotion: the promotion page links them, and a
-- rollback request looks for one already waiting. Without it both scan the
-- team's promotions.
create index promotions_rollback_of on promotions (rollback_of) where rollback_of is not null;
