-- When an instance's settings last changed. Everyone who may see an
-- instance sees this and the settings' top-level keys; the values need
-- instance.edit. Null means "not since the instance was created" (reads
-- fall back to created_at). Instances edited before this change take the
-- time of their last settings update from the audit log.
alter table instances add column settings_updated_at text;
update instances set settings_updated_at = (
    select max(e.created_at) from audit_events e
    where e.kind = 'instance.settings_updated' and e.subject_id = instances.id
);
