//! The store conformance suite: every behaviour is one test body in
//! `cases`, run once on SQLite and once on PostgreSQL by `conformance!`.
//! PostgreSQL tests need `DATABASE_URL` (scripts/test.sh starts a
//! throwaway server); without it they fail, they are never skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod approvals;
mod cases;
mod chosen;
mod concurrency;
mod delivery;
mod grants;
mod harness;
mod migrations;
mod protection;
mod reads;
mod restore;
mod retention;
mod runtimes;
mod sqlite_only;
mod transfer;
mod trust;

/// Generates `sqlite::name` and `postgres::name` for each case.
macro_rules! conformance {
    ($($module:ident :: $name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let h = crate::harness::Harness::sqlite().await;
                crate::$module::$name(&h).await;
                h.cleanup().await;
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let h = crate::harness::Harness::postgres().await;
                crate::$module::$name(&h).await;
                h.cleanup().await;
            })*
        }
    };
}

conformance!(
    cases::env_values_round_trip_and_are_ciphertext_at_rest,
    cases::a_wrong_secret_key_fails_loudly_at_open,
    cases::teams_roles_and_bindings_give_permissions,
    cases::duplicate_names_are_typed_conflicts,
    cases::another_teams_ids_are_not_found,
    cases::flows_are_saved_listed_and_deleted_with_versions,
    cases::bad_flow_input_writes_nothing,
    cases::a_stale_version_is_a_conflict_and_writes_nothing,
    cases::env_vars_are_set_cleared_removed_and_revealed_with_audit,
    cases::a_duplicate_has_the_flows_and_keys_but_no_value_setting_or_connection,
    cases::settings_must_be_an_object,
    cases::stages_are_added_inserted_reordered_and_removed,
    cases::a_stage_cannot_use_another_teams_instance_or_repeat_one,
    cases::an_instance_that_is_a_stage_cannot_be_deleted,
    cases::promotion_follows_the_design_semantics,
    cases::unchanged_flows_are_not_rewritten,
    cases::the_store_applies_plans_exactly_as_the_domain_does,
    cases::no_value_reaches_a_snapshot_plan_or_audit_event,
    cases::promoting_the_last_stage_is_refused_and_writes_nothing,
    cases::a_retried_promotion_with_the_same_idempotency_key_is_one_promotion,
    cases::a_promotion_against_a_stale_preview_is_a_conflict,
    cases::rollback_restores_the_flows_and_is_audited,
    cases::a_stage_requiring_all_values_refuses_promotions_that_leave_keys_empty,
    cases::a_protected_stage_gets_a_pending_promotion_pinned_to_the_source,
    reads::the_history_filters_and_pages_by_keyset,
    trust::the_audit_chain_detects_edits_deletions_and_truncation,
    trust::api_tokens_authenticate_until_revoked_expired_or_their_user_is_disabled,
    reads::the_pipeline_overview_counts_flows_keys_and_promotions_per_stage,
    approvals::n_approvals_from_others_apply_the_pinned_snapshot,
    approvals::a_stage_with_a_waiting_request_stays_until_it_is_decided,
    chosen::play_promotes_a_chosen_snapshot_of_the_source,
    restore::a_restore_is_a_promotion_of_the_snapshot_into_its_own_instance,
    restore::a_restore_into_a_protected_instance_waits_for_its_approvals,
    delivery::delivery_rows_follow_arrivals_rollbacks_decisions_and_failed_deploys,
    approvals::one_rejection_rejects_and_writes_nothing_to_the_target,
    concurrency::concurrent_promotions_into_one_target_serialise,
    protection::protection_belongs_to_the_instance_in_every_pipeline,
    protection::nothing_changes_a_protected_instance_directly_but_its_manager,
    protection::a_service_account_is_not_a_person,
    protection::a_replayed_play_says_so,
    migrations::protection_moves_from_stages_to_their_instances,
    migrations::promotions_and_their_approvals_survive_the_runtimes_migration,
    runtimes::a_connected_target_deploys_in_two_steps_and_nothing_changes_it_meanwhile,
    runtimes::a_pull_records_what_runs_in_the_runtime,
    runtimes::each_period_of_a_job_is_claimed_once,
    runtimes::the_reconciler_finds_old_deploys_of_every_team,
    concurrency::concurrent_login_attempts_never_exceed_the_limit,
    grants::binding_or_defining_a_role_never_grants_more_than_the_grantor_holds,
    grants::a_token_never_holds_more_than_the_people_behind_it,
    grants::a_password_reset_revokes_every_token_the_user_owns,
    grants::a_token_is_revoked_only_by_someone_holding_what_it_holds,
    grants::the_last_member_who_manages_a_team_cannot_be_unbound,
    retention::expired_sessions_and_old_login_failures_go_and_live_ones_stay,
    retention::flow_content_nothing_refers_to_goes_and_referenced_content_stays,
    retention::keeping_the_last_snapshots_keeps_what_kept_promotions_roll_back_to,
    retention::pending_promotions_and_what_they_need_are_never_purged,
    retention::the_last_promotion_into_each_target_is_kept_however_old,
    retention::an_age_purge_anchors_each_audit_chain_and_tampering_still_shows,
);
