-- A reviewer may say why they approved or rejected: kept with the decision
-- and in its audit event.
alter table promotion_approvals add column comment text;
