//! Every route of the server, each with the access it requires, on one
//! screen. The [`routes!`] macro builds both the router and [`ROUTES`], the
//! table the route × role test walks: a route cannot be added without
//! declaring its access.

use crate::api;
use crate::authz::{Access, authorize};
use crate::views::{
    admin, audit, dashboard, delivery, history, instances, pipelines, promotions, restore,
    runtimes, snapshots, tokens, undo,
};
use crate::{AppState, assets, auth::login, health};
use axum::Router;
use axum::routing::{delete, get, patch, post, put};
use stagehand_domain::Permission::*;

/// One row of the route table.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
    /// The handler, `module::function` (the API's operation ids).
    pub handler: &'static str,
}

macro_rules! routes {
    ($( $method:ident $path:literal => $handler:path, $access:expr; )*) => {
        /// Every route, in the order they are declared.
        pub const ROUTES: &[RouteSpec] = &[
            $( RouteSpec {
                method: stringify!($method),
                path: $path,
                access: $access,
                handler: stringify!($handler),
            }, )*
        ];

        /// The router, each route behind [`authorize`] with its access.
        pub fn router(state: &AppState) -> Router<AppState> {
            let mut r = Router::new();
            $(
                r = r.route(
                    $path,
                    $method($handler).route_layer(axum::middleware::from_fn_with_state(
                        (state.clone(), $access),
                        authorize,
                    )),
                );
            )*
            r
        }
    };
}

use Access::{Api, Authenticated, PlatformAdmin, Public, Team};

routes! {
    get  "/healthz" => health::healthz, Public;
    get  "/api/v1/openapi.json" => api::openapi::openapi_get, Public;
    get  "/readyz" => health::readyz, Public;
    get  "/static/{file}" => assets::get_static, Public;
    get  "/login" => login::view_login_get, Public;
    post "/login" => login::view_login_post, Public;
    post "/logout" => login::logout_post, Authenticated;
    get  "/" => dashboard::view_dashboard_get, Authenticated;

    get  "/admin" => admin::view_admin_get, PlatformAdmin;
    post "/admin/users" => admin::create_user_post, PlatformAdmin;
    post "/admin/users/{user}/disabled" => admin::set_disabled_post, PlatformAdmin;
    post "/admin/users/{user}/password" => admin::reset_password_post, PlatformAdmin;
    post "/admin/teams" => admin::create_team_post, PlatformAdmin;
    get  "/admin/audit" => audit::view_platform_audit_get, PlatformAdmin;
    get  "/admin/audit/export" => audit::platform_export_get, PlatformAdmin;

    get  "/teams/{team}" => dashboard::view_team_get, Team(PipelineView);
    get  "/teams/{team}/members" => admin::view_members_get, Team(MemberManage);
    post "/teams/{team}/members" => admin::bind_post, Team(MemberManage);
    post "/teams/{team}/members/{user}/unbind" => admin::unbind_post, Team(MemberManage);
    post "/teams/{team}/roles" => admin::create_role_post, Team(RoleManage);
    get  "/teams/{team}/tokens" => tokens::view_tokens_get, Team(TokenManage);
    post "/teams/{team}/tokens" => tokens::create_post, Team(TokenManage);
    post "/teams/{team}/tokens/{token}/revoke" => tokens::revoke_post, Team(TokenManage);

    post "/teams/{team}/pipelines" => pipelines::create_post, Team(PipelineEdit);
    get  "/teams/{team}/pipelines/{pipeline}" => pipelines::view_pipeline_get, Team(PipelineView);
    post "/teams/{team}/pipelines/{pipeline}/delete" => pipelines::delete_post, Team(PipelineEdit);
    post "/teams/{team}/pipelines/{pipeline}/stages" => pipelines::add_stage_post, Team(PipelineEdit);
    post "/teams/{team}/pipelines/{pipeline}/stages/{stage}/remove" => pipelines::remove_stage_post, Team(PipelineEdit);
    post "/teams/{team}/pipelines/{pipeline}/stages/{stage}/move" => pipelines::move_stage_post, Team(PipelineEdit);
    get  "/teams/{team}/pipelines/{pipeline}/stages/{stage}/preview" => promotions::view_preview_get, Team(PipelineView);
    post "/teams/{team}/pipelines/{pipeline}/stages/{stage}/promote" => promotions::promote_post, Team(StagePromote);
    // A restore sets an instance back, as a rollback does: it needs what a
    // rollback needs (and is held for approval into a protected instance).
    get  "/teams/{team}/pipelines/{pipeline}/stages/{stage}/restore" => restore::view_restore_get, Team(PipelineView);
    post "/teams/{team}/pipelines/{pipeline}/stages/{stage}/restore" => restore::restore_post, Team(PromotionRollback);

    get  "/teams/{team}/metrics" => delivery::view_team_metrics_get, Team(PromotionView);
    get  "/teams/{team}/pipelines/{pipeline}/metrics" => delivery::view_pipeline_metrics_get, Team(PromotionView);
    get  "/teams/{team}/promotions" => history::view_history_get, Team(PromotionView);
    get  "/teams/{team}/promotions/export" => history::export_get, Team(AuditExport);
    get  "/teams/{team}/promotions/{promotion}" => promotions::view_promotion_get, Team(PromotionView);
    get  "/teams/{team}/promotions/{promotion}/rollback" => undo::view_undo_get, Team(PromotionRollback);
    post "/teams/{team}/promotions/{promotion}/rollback" => promotions::rollback_post, Team(PromotionRollback);
    post "/teams/{team}/promotions/{promotion}/decision" => promotions::decide_post, Team(PromotionApprove);

    get  "/teams/{team}/snapshots/compare" => snapshots::compare_get, Team(InstanceView);
    get  "/teams/{team}/snapshots/{snapshot}" => snapshots::view_snapshot_get, Team(InstanceView);
    get  "/teams/{team}/snapshots/{snapshot}/download" => snapshots::download_get, Team(InstanceView);

    get  "/teams/{team}/instances" => instances::view_instances_get, Team(InstanceView);
    post "/teams/{team}/instances" => instances::create_post, Team(InstanceEdit);
    get  "/teams/{team}/instances/{instance}" => instances::view_instance_get, Team(InstanceView);
    post "/teams/{team}/instances/{instance}/delete" => instances::delete_post, Team(InstanceEdit);
    post "/teams/{team}/instances/{instance}/duplicate" => instances::duplicate_post, Team(InstanceEdit);
    post "/teams/{team}/instances/{instance}/settings" => instances::settings_post, Team(InstanceEdit);
    // Protection guards production: changing it is for those who manage it.
    post "/teams/{team}/instances/{instance}/protection" => instances::protection_post, Team(StagePromoteProtected);
    post "/teams/{team}/instances/{instance}/runtime" => runtimes::connect_post, Team(StagePromoteProtected);
    post "/teams/{team}/instances/{instance}/runtime/disconnect" => runtimes::disconnect_post, Team(StagePromoteProtected);
    post "/teams/{team}/instances/{instance}/runtime/test" => runtimes::test_post, Team(InstanceEdit);
    post "/teams/{team}/instances/{instance}/pull" => runtimes::pull_post, Team(InstanceEdit);
    post "/teams/{team}/instances/{instance}/flows" => instances::save_flow_post, Team(InstanceEdit);
    post "/teams/{team}/instances/{instance}/flows/upload" => instances::upload_flow_post, Team(InstanceEdit);
    get  "/teams/{team}/instances/{instance}/flows/{flow}" => instances::view_flow_get, Team(InstanceView);
    get  "/teams/{team}/instances/{instance}/flows/{flow}/download" => instances::download_flow_get, Team(InstanceView);
    post "/teams/{team}/instances/{instance}/flows/{flow}/delete" => instances::delete_flow_post, Team(InstanceEdit);
    post "/teams/{team}/instances/{instance}/env" => instances::add_key_post, Team(InstanceEdit);
    post "/teams/{team}/instances/{instance}/env/missing" => instances::add_missing_keys_post, Team(InstanceEdit);
    post "/teams/{team}/instances/{instance}/env/{key}/value" => instances::set_value_post, Team(EnvvarSet);
    post "/teams/{team}/instances/{instance}/env/{key}/remove" => instances::remove_key_post, Team(InstanceEdit);
    // Back to a reveal asks for it again with GET: the instance, no value.
    get  "/teams/{team}/instances/{instance}/env/{key}/reveal" => instances::reveal_get, Team(InstanceView);
    post "/teams/{team}/instances/{instance}/env/{key}/reveal" => instances::reveal_post, Team(EnvvarReveal);

    get  "/teams/{team}/audit" => audit::view_audit_get, Team(AuditView);
    get  "/teams/{team}/audit/export" => audit::export_get, Team(AuditExport);

    // The JSON API, for API tokens.
    get    "/api/v1/teams/{team}/instances" => api::instances::list_get, Api(InstanceView);
    post   "/api/v1/teams/{team}/instances" => api::instances::create_post, Api(InstanceEdit);
    get    "/api/v1/instances/{instance}" => api::instances::get, Api(InstanceView);
    post   "/api/v1/instances/{instance}/duplicate" => api::instances::duplicate_post, Api(InstanceEdit);
    get    "/api/v1/instances/{instance}/snapshots" => api::snapshots::list_get, Api(InstanceView);
    get    "/api/v1/snapshots/compare" => api::snapshots::compare_get, Api(InstanceView);
    get    "/api/v1/snapshots/{snapshot}" => api::snapshots::get, Api(InstanceView);
    get    "/api/v1/snapshots/{snapshot}/download" => api::snapshots::download_get, Api(InstanceView);
    patch  "/api/v1/instances/{instance}" => api::instances::patch, Api(InstanceEdit);
    delete "/api/v1/instances/{instance}" => api::instances::delete, Api(InstanceEdit);
    get    "/api/v1/instances/{instance}/protection" => api::instances::protection_get, Api(InstanceView);
    put    "/api/v1/instances/{instance}/protection" => api::instances::protection_put, Api(StagePromoteProtected);
    get    "/api/v1/instances/{instance}/runtime" => api::runtimes::runtime_get, Api(InstanceView);
    put    "/api/v1/instances/{instance}/runtime" => api::runtimes::runtime_put, Api(StagePromoteProtected);
    delete "/api/v1/instances/{instance}/runtime" => api::runtimes::runtime_delete, Api(StagePromoteProtected);
    post   "/api/v1/instances/{instance}/runtime/test" => api::runtimes::runtime_test_post, Api(InstanceEdit);
    post   "/api/v1/instances/{instance}/pull" => api::runtimes::pull_post, Api(InstanceEdit);
    get    "/api/v1/instances/{instance}/flows" => api::instances::flows_get, Api(InstanceView);
    put    "/api/v1/instances/{instance}/flows" => api::instances::flows_put, Api(InstanceEdit);
    get    "/api/v1/instances/{instance}/flows/{flow}" => api::instances::flow_get, Api(InstanceView);
    put    "/api/v1/instances/{instance}/flows/{flow}" => api::instances::flow_put, Api(InstanceEdit);
    delete "/api/v1/instances/{instance}/flows/{flow}" => api::instances::flow_delete, Api(InstanceEdit);
    get    "/api/v1/instances/{instance}/env" => api::instances::env_get, Api(InstanceView);
    put    "/api/v1/instances/{instance}/env/{key}" => api::instances::env_put, Api(EnvvarSet);
    delete "/api/v1/instances/{instance}/env/{key}" => api::instances::env_delete, Api(InstanceEdit);
    get    "/api/v1/instances/{instance}/env/{key}/value" => api::instances::env_value_get, Api(EnvvarReveal);
    get    "/api/v1/teams/{team}/pipelines" => api::pipelines::list_get, Api(PipelineView);
    post   "/api/v1/teams/{team}/pipelines" => api::pipelines::create_post, Api(PipelineEdit);
    get    "/api/v1/pipelines/{pipeline}" => api::pipelines::get, Api(PipelineView);
    patch  "/api/v1/pipelines/{pipeline}" => api::pipelines::patch, Api(PipelineEdit);
    delete "/api/v1/pipelines/{pipeline}" => api::pipelines::delete, Api(PipelineEdit);
    post   "/api/v1/pipelines/{pipeline}/stages" => api::pipelines::add_stage_post, Api(PipelineEdit);
    put    "/api/v1/pipelines/{pipeline}/stages" => api::pipelines::reorder_put, Api(PipelineEdit);
    delete "/api/v1/pipelines/{pipeline}/stages/{stage}" => api::pipelines::remove_stage_delete, Api(PipelineEdit);
    get    "/api/v1/pipelines/{pipeline}/metrics" => api::delivery::pipeline_metrics_get, Api(PromotionView);
    get    "/api/v1/teams/{team}/metrics" => api::delivery::team_metrics_get, Api(PromotionView);
    get    "/api/v1/pipelines/{pipeline}/stages/{stage}/preview" => api::pipelines::preview_get, Api(PipelineView);
    post   "/api/v1/pipelines/{pipeline}/stages/{stage}/promote" => api::pipelines::promote_post, Api(StagePromote);
    get    "/api/v1/pipelines/{pipeline}/stages/{stage}/restore-preview" => api::pipelines::restore_preview_get, Api(PipelineView);
    post   "/api/v1/pipelines/{pipeline}/stages/{stage}/restore" => api::pipelines::restore_post, Api(PromotionRollback);
    get    "/api/v1/promotions" => api::promotions::list_get, Api(PromotionView);
    get    "/api/v1/promotions/{promotion}" => api::promotions::get, Api(PromotionView);
    post   "/api/v1/promotions/{promotion}/approve" => api::promotions::approve_post, Api(PromotionApprove);
    post   "/api/v1/promotions/{promotion}/reject" => api::promotions::reject_post, Api(PromotionApprove);
    post   "/api/v1/promotions/{promotion}/rollback" => api::promotions::rollback_post, Api(PromotionRollback);
    get    "/api/v1/audit" => api::promotions::audit_get, Api(AuditView);
    get    "/api/v1/audit/verify" => api::promotions::audit_verify_get, Api(AuditView);
}

/// The nearest page above `path`: its longest ancestor that a page route
/// answers with `GET` (a form's address, reached by Back or typed in,
/// leads there instead of to "method not allowed").
pub fn page_above(path: &str) -> Option<String> {
    let split = |p: &'static str| p.split('/').filter(|s| !s.is_empty()).collect::<Vec<_>>();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let is_page = |candidate: &[&str]| {
        ROUTES.iter().any(|r| {
            let pattern = split(r.path);
            r.method == "get"
                && !r.path.starts_with("/api/")
                && pattern.len() == candidate.len()
                && pattern
                    .iter()
                    .zip(candidate)
                    .all(|(p, c)| p.starts_with('{') || p == c)
        })
    };
    (0..segments.len())
        .rev()
        .map(|n| &segments[..n])
        .find(|candidate| is_page(candidate))
        .map(|candidate| format!("/{}", candidate.join("/")))
}

#[cfg(test)]
mod tests {
    use super::page_above;

    #[test]
    fn a_forms_address_leads_to_the_page_it_belongs_to() {
        let t = "/teams/t1";
        for (form, page) in [
            (
                format!("{t}/instances/i1/flows"),
                format!("{t}/instances/i1"),
            ),
            (
                format!("{t}/instances/i1/env/API_TOKEN/value"),
                format!("{t}/instances/i1"),
            ),
            (
                format!("{t}/pipelines/p1/stages/s1/remove"),
                format!("{t}/pipelines/p1"),
            ),
            (
                format!("{t}/promotions/x/decision"),
                format!("{t}/promotions/x"),
            ),
            (format!("{t}/tokens/k/revoke"), format!("{t}/tokens")),
            ("/admin/users/u/disabled".to_owned(), "/admin".to_owned()),
            ("/logout".to_owned(), "/".to_owned()),
        ] {
            assert_eq!(page_above(&form).as_deref(), Some(page.as_str()), "{form}");
        }
    }
}
