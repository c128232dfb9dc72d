-- Who rolled a promotion back (the actor's name, as requested_by): the
-- history shows who requested, who decided and who rolled back.
alter table promotions add column rolled_back_by text;
