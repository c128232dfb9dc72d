//! The API's OpenAPI 3.1 document, generated from the route table: every
//! `Access::Api` route with its path parameters, the permission it needs,
//! its query parameters, its success and error answers. Served at
//! `/api/v1/openapi.json`; `crates/web/openapi.json` is the committed copy
//! a test compares against.
//!
//! Bodies are described by [`request_schema`] and the schemas in
//! [`schemas`], which schemathesis checks against real answers in the test
//! command.

use crate::authz::Access;
use crate::routes::{ROUTES, RouteSpec};
use axum::Json;
use serde_json::{Map, Value, json};

/// Query parameters of the list endpoints.
fn query_parameters(path: &str) -> Vec<Value> {
    let string = |name: &str, description: &str| {
        json!({ "name": name, "in": "query", "required": false,
                "description": description, "schema": { "type": "string" } })
    };
    let limit = json!({ "name": "limit", "in": "query", "required": false,
        "description": "rows per page, 1 to 500 (blank or absent: 100)",
        "schema": { "type": "integer", "minimum": 1, "maximum": 500 } });
    let window = [
        string(
            "since",
            "RFC 3339 time in the years 0001 to 9999 (UTC), inclusive",
        ),
        string(
            "until",
            "RFC 3339 time in the years 0001 to 9999 (UTC), exclusive",
        ),
        string("cursor", "next_cursor of the previous page"),
    ];
    match path {
        "/api/v1/promotions" => [
            string("pipeline", "pipeline id"),
            string("stage", "stage id: promotions out of or into it"),
            string("actor", "who requested it: a username or token:NAME"),
            json!({ "name": "status", "in": "query", "required": false,
                "schema": { "type": "string", "enum": ["pending_approval", "applied", "failed", "rejected", "rolled_back"] } }),
        ]
        .into_iter()
        .chain(window)
        .chain([limit])
        .collect(),
        "/api/v1/snapshots/compare" => vec![
            json!({ "name": "from", "in": "query", "required": true,
                    "description": "the snapshot compared from", "schema": { "type": "string" } }),
            json!({ "name": "to", "in": "query", "required": true,
                    "description": "the snapshot compared to", "schema": { "type": "string" } }),
        ],
        "/api/v1/instances/{instance}/snapshots" => vec![limit],
        "/api/v1/pipelines/{pipeline}/stages/{stage}/restore-preview" => vec![
            json!({ "name": "snapshot", "in": "query", "required": true,
                    "description": "the snapshot of the stage's instance to restore", "schema": { "type": "string" } }),
        ],
        "/api/v1/pipelines/{pipeline}/metrics" | "/api/v1/teams/{team}/metrics" => vec![
            string("since", "first day of the period: a date (2026-11-01) or an RFC 3339 time, counted from the start of its day (UTC); default: `until` less `days`"),
            string("until", "last day of the period: a date, included whole, or an RFC 3339 time, counted to the end of its day unless it is midnight (UTC); default: today"),
            json!({ "name": "days", "in": "query", "required": false,
                "description": "the period's length, counted back from `until`, when `since` is not given (default 30; giving both is a 422); a period spans at most 731 days",
                "schema": { "type": "integer", "minimum": 1, "maximum": 731 } }),
        ],
        "/api/v1/audit" => [string("actor", "who did it"), string("kind", "event kind, e.g. promotion.applied")]
            .into_iter()
            .chain(window)
            .chain([limit])
            .collect(),
        _ => Vec::new(),
    }
}

/// Routes whose POST takes no body.
fn takes_body(route: &RouteSpec) -> bool {
    match route.method {
        "put" | "patch" => true,
        "post" => ![
            "/promote",
            "/approve",
            "/reject",
            "/rollback",
            "/pull",
            "/test",
        ]
        .iter()
        .any(|s| route.path.ends_with(s)),
        _ => false,
    }
}

/// Play and restore: promotions created with play's headers and answers.
fn is_play(route: &RouteSpec) -> bool {
    route.method == "post" && (route.path.ends_with("/promote") || route.path.ends_with("/restore"))
}

fn success(route: &RouteSpec) -> (&'static str, &'static str) {
    match route.method {
        "delete" if !route.path.contains("/stages/") => ("204", "Done"),
        "put" if route.path.contains("/env/") => ("204", "Done"),
        "post" if is_play(route) => (
            "201",
            "The promotion, applied or pending approval (200 for a retry with the same Idempotency-Key)",
        ),
        "post"
            if route.path.ends_with("/instances")
                || route.path.ends_with("/duplicate")
                || route.path.ends_with("/pipelines")
                || route.path.ends_with("/stages") =>
        {
            ("201", "Created")
        }
        _ => ("200", "OK"),
    }
}

/// The schema of a route's success body, by handler.
fn response_schema(handler: &str) -> Value {
    let r = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}") });
    let list = |key: &str, item: &str| json!({ "type": "object", "required": [key], "properties": { key: { "type": "array", "items": r(item) } } });
    let page = |key: &str, item: &str| {
        json!({ "type": "object", "required": [key, "next_cursor"], "properties": {
            key: { "type": "array", "items": r(item) },
            "next_cursor": { "type": ["string", "null"] } } })
    };
    match handler.trim_start_matches("api::") {
        "instances::list_get" => list("instances", "Instance"),
        "instances::create_post"
        | "instances::duplicate_post"
        | "instances::get"
        | "instances::patch"
        | "instances::flows_put"
        | "instances::flow_put" => r("Instance"),
        "instances::flows_get" => list("flows", "FlowMeta"),
        "instances::protection_get" | "instances::protection_put" => r("Protection"),
        "runtimes::runtime_get" | "runtimes::runtime_put" | "runtimes::runtime_test_post" => {
            r("Runtime")
        }
        "runtimes::pull_post" => r("Instance"),
        "snapshots::list_get" => list("snapshots", "SnapshotMeta"),
        "snapshots::get" => r("Snapshot"),
        "snapshots::download_get" => {
            json!({ "type": "object", "required": ["snapshot", "flows", "env_keys"],
            "properties": { "snapshot": { "type": "object" },
                "flows": { "type": "object", "description": "flow name → flow document" },
                "env_keys": { "type": "array", "items": { "type": "string" } } } })
        }
        "snapshots::compare_get" => {
            json!({ "type": "object", "required": ["from", "to", "equal", "summary", "plan"],
            "properties": { "from": { "type": "object" }, "to": { "type": "object" },
                "equal": { "type": "boolean" }, "summary": { "type": "object" },
                "plan": r("Plan") } })
        }
        "instances::env_get" => list("env", "EnvVar"),
        "instances::env_value_get" => json!({ "type": "object", "required": ["key", "value"],
            "properties": { "key": { "type": "string" }, "value": { "type": ["string", "null"] } } }),
        "pipelines::list_get" => list("pipelines", "Pipeline"),
        "pipelines::get"
        | "pipelines::create_post"
        | "pipelines::patch"
        | "pipelines::add_stage_post"
        | "pipelines::reorder_put"
        | "pipelines::remove_stage_delete" => r("Pipeline"),
        "pipelines::preview_get" | "pipelines::restore_preview_get" => r("Preview"),
        "pipelines::promote_post"
        | "pipelines::restore_post"
        | "promotions::get"
        | "promotions::approve_post"
        | "promotions::reject_post"
        | "promotions::rollback_post" => r("Promotion"),
        "promotions::list_get" => page("promotions", "Promotion"),
        "promotions::audit_get" => page("events", "AuditEvent"),
        "promotions::audit_verify_get" => r("ChainReport"),
        "delivery::pipeline_metrics_get" | "delivery::team_metrics_get" => r("DeliveryMetrics"),
        // A flow document is whatever JSON the flow is.
        _ => json!({}),
    }
}

/// The schema of a route's request body, by handler.
fn request_schema(handler: &str) -> Value {
    let name = json!({ "type": "object", "required": ["name"], "properties": {
        "name": { "type": "string", "minLength": 1, "maxLength": 100 } } });
    match handler.trim_start_matches("api::") {
        "instances::create_post" => json!({ "type": "object", "required": ["name"], "properties": {
            "name": { "type": "string", "minLength": 1, "maxLength": 100 },
            "settings": { "type": "object" } } }),
        "instances::duplicate_post" => json!({ "type": "object", "required": ["name"],
            "additionalProperties": false, "properties": {
            "name": { "type": "string", "minLength": 1, "maxLength": 100,
                      "description": "the new instance's name, unique in the team" },
            "pipeline": { "type": "string", "format": "uuid",
                          "description": "a pipeline the copy joins as a stage: right after the source when the source is one of its stages, last otherwise (needs pipeline.edit)" } } }),
        "instances::patch" => json!({ "type": "object", "properties": {
            "settings": { "type": "object" }, "expected_version": { "type": "integer" } } }),
        "instances::flows_put" => json!({ "type": "object", "required": ["flows"], "properties": {
            "flows": { "type": "object", "description": "flow name → flow document" },
            "expected_version": { "type": "integer" } } }),
        "instances::protection_put" => {
            json!({ "type": "object", "required": ["required_approvals"], "properties": {
            "required_approvals": { "type": "integer", "minimum": 0, "maximum": 10,
                                    "description": "approvals from people other than the requester; 0 means unprotected" },
            "requires_all_env_values": { "type": "boolean" } } })
        }
        "runtimes::runtime_put" => json!({ "type": "object", "required": ["kind", "url", "auth"],
            "additionalProperties": false, "properties": {
            "kind": { "type": "string", "enum": ["node-red", "langflow"] },
            "url": { "type": "string", "description": "the runtime's base URL, http or https, without credentials" },
            "auth": { "description": "sealed at rest, never returned", "oneOf": [
                { "type": "object", "required": ["type"], "additionalProperties": false,
                  "properties": { "type": { "const": "none" } } },
                { "type": "object", "required": ["type", "token"], "additionalProperties": false,
                  "properties": { "type": { "const": "bearer" }, "token": { "type": "string", "minLength": 1 } } },
                { "type": "object", "required": ["type", "username", "password"], "additionalProperties": false,
                  "properties": { "type": { "const": "basic" }, "username": { "type": "string", "minLength": 1 },
                                  "password": { "type": "string", "minLength": 1 } } },
                { "type": "object", "required": ["type", "key"], "additionalProperties": false,
                  "properties": { "type": { "const": "api_key" }, "key": { "type": "string", "minLength": 1 } } }
            ] } } }),
        "promotions::approve_post" | "promotions::reject_post" => {
            json!({ "type": "object", "additionalProperties": false, "properties": {
            "comment": { "type": "string", "maxLength": 2000,
                "description": "why, optionally: kept with the decision and in the audit log" } } })
        }
        "pipelines::promote_post" => {
            json!({ "type": "object", "additionalProperties": false, "properties": {
            "overwrite_drift": { "type": "boolean",
                "description": "into a connected target changed in its runtime since Stagehand last saw it: overwrite it anyway (audited)" },
            "snapshot": { "type": "string", "format": "uuid",
                "description": "promote this snapshot of the source instance instead of its current state" } } })
        }
        "pipelines::restore_post" => {
            json!({ "type": "object", "required": ["snapshot"], "additionalProperties": false, "properties": {
            "snapshot": { "type": "string", "format": "uuid",
                "description": "the snapshot of the stage's instance to restore it to" },
            "overwrite_drift": { "type": "boolean",
                "description": "into a connected instance changed in its runtime since Stagehand last saw it: overwrite it anyway (audited)" } } })
        }
        "instances::env_put" => json!({ "type": "object", "required": ["value"], "properties": {
            "value": { "type": ["string", "null"], "description": "null leaves the key awaiting a value" } } }),
        "pipelines::create_post" | "pipelines::patch" => name,
        "pipelines::add_stage_post" => {
            json!({ "type": "object", "required": ["instance"], "properties": {
            "instance": { "type": "string", "format": "uuid" },
            "position": { "type": "integer", "minimum": 0, "description": "0-based; omitted appends" } } })
        }
        "pipelines::reorder_put" => {
            json!({ "type": "object", "required": ["order"], "properties": {
            "order": { "type": "array", "items": { "type": "string", "format": "uuid" },
                       "description": "every stage of the pipeline exactly once" } } })
        }
        // A flow document is whatever JSON the flow is.
        _ => json!({}),
    }
}

/// The response schemas, as `serde` writes the store's records.
fn schemas() -> Value {
    let uuid = json!({ "type": "string", "format": "uuid" });
    let time = json!({ "type": "string", "format": "date-time" });
    let opt = |t: &Value| {
        let mut t = t.clone();
        t["type"] = json!([t["type"].clone(), "null"]);
        t
    };
    let string = json!({ "type": "string" });
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    let int = json!({ "type": "integer" });
    let object = |props: Value| {
        let required: Vec<String> = props
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        json!({ "type": "object", "required": required, "properties": props })
    };
    let protection = object(
        json!({ "required_approvals": int, "requires_all_env_values": { "type": "boolean" } }),
    );
    let optional = |mut schema: Value, names: &[&str]| {
        if let Some(required) = schema["required"].as_array_mut() {
            required.retain(|r| !names.iter().any(|n| r == n));
        }
        schema
    };
    let stage = object(json!({
        "id": uuid, "instance_id": uuid, "instance_name": string, "position": int,
        "protection": protection,
    }));
    let named_hash = object(json!({ "name": string, "hash": string }));
    json!({
        // `settings` (the values) only for a caller with instance.edit.
        "Instance": optional(object(json!({
            "id": uuid, "team_id": uuid, "name": string, "settings": { "type": "object" },
            "protection": protection, "setting_keys": strings, "settings_updated_at": time,
            "version": int, "created_at": time, "updated_at": time,
        })), &["settings"]),
        "Protection": protection,
        "FlowMeta": object(json!({ "name": string, "hash": string, "size_bytes": int, "updated_at": time })),
        "EnvVar": object(json!({ "key": string, "has_value": { "type": "boolean" }, "updated_at": time })),
        "Stage": stage,
        "Pipeline": object(json!({
            "id": uuid, "team_id": uuid, "name": string, "created_at": time,
            "stages": { "type": "array", "items": { "$ref": "#/components/schemas/Stage" } },
        })),
        "Plan": object(json!({
            "flows_added": { "type": "array", "items": named_hash },
            "flows_changed": { "type": "array", "items": object(json!({ "name": string, "from": string, "to": string })) },
            "flows_removed": { "type": "array", "items": named_hash },
            "flows_unchanged": strings, "keys_to_add": strings, "keys_only_in_target": strings,
            "target_keys_awaiting_value": strings,
        })),
        "Preview": object(json!({
            "source": { "$ref": "#/components/schemas/Stage" },
            "target": { "$ref": "#/components/schemas/Stage" },
            "source_version": int, "target_version": int,
            "plan": { "$ref": "#/components/schemas/Plan" },
        })),
        "Promotion": object(json!({
            "id": uuid, "team_id": uuid, "pipeline_id": uuid, "source_stage_id": uuid,
            "target_stage_id": uuid, "source_instance_id": uuid, "target_instance_id": uuid,
            "status": { "type": "string", "enum": ["pending_approval", "deploying", "applied", "failed", "rejected", "rolled_back"] },
            "source_snapshot_id": uuid, "backup_snapshot_id": opt(&uuid), "target_version": opt(&int),
            "requested_target_version": opt(&int),
            "plan": { "$ref": "#/components/schemas/Plan" },
            "requested_by_user_id": opt(&uuid), "requested_by": string,
            "idempotency_key": opt(&string), "rollback_of": opt(&uuid),
            "created_at": time, "applied_at": opt(&time),
            "rolled_back_at": opt(&time), "rolled_back_by": opt(&string),
            "runtime_revision": opt(&string), "runtime_error": opt(&string),
            "overwrite_drift": { "type": "boolean" }, "deploy_started_at": opt(&time),
        })),
        "Runtime": object(json!({
            "kind": { "type": "string", "enum": ["node-red", "langflow"] }, "url": string,
            "state": { "type": "string", "enum": ["unknown", "in_sync", "drifted", "unreachable", "auth_failed"] },
            "state_detail": opt(&string), "revision": opt(&string), "synced_at": opt(&time),
            "last_pull_at": opt(&time), "checked_at": opt(&time), "connected_at": time,
            "connected_by": string,
        })),
        "SnapshotMeta": object(json!({
            "id": uuid, "reason": { "type": "string", "enum": ["promotion_source", "promotion_backup", "rollback_backup", "runtime_pull"] },
            "content_hash": string, "created_at": time,
        })),
        "Snapshot": object(json!({
            "id": uuid, "team_id": uuid, "instance_id": uuid,
            "reason": { "type": "string", "enum": ["promotion_source", "promotion_backup", "rollback_backup", "runtime_pull"] },
            "content_hash": string,
            "flows": { "type": "object", "description": "flow name → content hash", "additionalProperties": string },
            "env_keys": strings, "created_at": time,
        })),
        "AuditEvent": object(json!({
            "id": uuid, "team_id": opt(&uuid), "actor_user_id": opt(&uuid), "actor": string,
            "source_ip": opt(&string), "kind": string, "subject_id": opt(&uuid),
            "details": {}, "created_at": time,
        })),
        "ChainReport": object(json!({
            "checked": int, "intact": { "type": "boolean" },
            "first_break": { "type": ["object", "null"] },
        })),
        "DeliveryMetrics": delivery_metrics(&object, &opt),
    })
}

/// The figures of `/metrics`: one scope (`pipeline` or `team`), the
/// period, and the five measures; durations in seconds, percentiles
/// interpolated from the histogram whose bucket counts come with them.
fn delivery_metrics(object: &dyn Fn(Value) -> Value, opt: &dyn Fn(&Value) -> Value) -> Value {
    let int = json!({ "type": "integer", "minimum": 0 });
    let number = json!({ "type": "number" });
    let date = json!({ "type": "string", "format": "date" });
    let durations = object(json!({
        "count": int, "median_seconds": opt(&number), "p90_seconds": opt(&number),
        "mean_seconds": opt(&number), "max_seconds": opt(&int),
        "buckets": { "type": "array", "items": int, "minItems": 15, "maxItems": 15,
            "description": "counts under 1 min, 5 min, 15 min, 30 min, 1 h, 2 h, 4 h, 8 h, 1 d, 2 d, 4 d, 7 d, 14 d, 30 d, and from 30 d on" },
    }));
    let mut approval_wait = durations.clone();
    approval_wait["properties"]["waiting_now"] = int.clone();
    if let Some(required) = approval_wait["required"].as_array_mut() {
        required.push(json!("waiting_now"));
    }
    let mut schema = object(json!({
        "since": date, "until": date, "days": int,
        "deployment_frequency": object(json!({ "deployments": int, "per_day": number, "per_week": number })),
        "lead_time": durations,
        "change_failure_rate": object(json!({
            "attempts": int, "failures": int, "rolled_back": int, "failed_deploys": int,
            "rate": opt(&number),
        })),
        "time_to_restore": durations,
        "approval_wait": approval_wait,
        "daily": { "type": "array", "items": object(json!({ "day": date, "deployments": int, "failures": int })) },
        "pipeline": { "type": "object", "required": ["id", "name", "last_stage"] },
        "team": { "type": "object", "required": ["id", "name", "pipelines"] },
    }));
    if let Some(required) = schema["required"].as_array_mut() {
        required.retain(|r| r != "pipeline" && r != "team");
    }
    schema
}

fn operation(route: &RouteSpec, permission: &str) -> Value {
    let mut parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| {
            if name == "team" {
                json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" },
                        "description": "the team's id or its name (names are unique); a token sees only its own team" })
            } else {
                json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })
            }
        })
        .collect();
    parameters.extend(query_parameters(route.path));
    if is_play(route) {
        parameters.push(
            json!({ "name": "Idempotency-Key", "in": "header", "required": false,
            "description": "a retry with the same key returns the first promotion",
            "schema": { "type": "string", "minLength": 1, "maxLength": 200 } }),
        );
        parameters.push(
            json!({ "name": "If-Match", "in": "header", "required": false,
            "description": "the target version the caller's preview saw, quoted: \"7\"",
            "schema": { "type": "string" } }),
        );
    }
    let (code, description) = success(route);
    let mut responses = Map::new();
    let body = json!({ "application/json": { "schema": response_schema(route.handler) } });
    responses.insert(
        code.into(),
        if code == "204" {
            json!({ "description": description })
        } else {
            json!({ "description": description, "content": body })
        },
    );
    if is_play(route) {
        responses.insert(
            "200".into(),
            json!({ "description": "A retry: the first promotion", "content": body }),
        );
    }
    if is_play(route) || route.path.ends_with("/rollback") {
        responses.insert(
            "202".into(),
            json!({ "description": "Into a protected instance: a request, `pending_approval`, applied once approved", "content": body }),
        );
    }
    for (status, why) in [
        ("400", "The request could not be read"),
        ("401", "No valid API token"),
        (
            "403",
            "The token lacks the permission (`forbidden`), or the instance is protected (`protected`)",
        ),
        ("404", "No such thing in the token's team"),
        ("405", "Method not allowed"),
        (
            "409",
            "A conflict with the current state; `drifted`: the connected target changed in its runtime",
        ),
        ("413", "The body is over the size limit"),
        ("415", "Not JSON"),
        ("422", "A value is invalid; `fields` names it"),
        (
            "502",
            "A connected runtime could not be reached (`unreachable`) or refused the credentials (`auth_failed`)",
        ),
        (
            "503",
            "The database is unavailable; nothing was done, retry later",
        ),
    ] {
        responses.insert(
            status.into(),
            json!({ "description": why, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } }),
        );
    }
    let mut op = json!({
        "operationId": route.handler.replace("api::", "").replace("::", "_"),
        "summary": route.handler.trim_start_matches("api::"),
        "description": format!("Needs `{permission}` in the token's team."),
        "parameters": parameters,
        "responses": responses,
        "security": [{ "token": [] }],
    });
    if takes_body(route) {
        op["requestBody"] = json!({ "required": true, "content": {
            "application/json": { "schema": request_schema(route.handler) } } });
    } else if ["/promote", "/approve", "/reject"]
        .iter()
        .any(|s| route.path.ends_with(s))
    {
        op["requestBody"] = json!({ "required": false, "content": {
            "application/json": { "schema": request_schema(route.handler) } } });
    }
    op
}

/// The whole document.
pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for route in ROUTES {
        let Access::Api(permission) = route.access else {
            continue;
        };
        let entry = paths
            .entry(route.path.trim_start_matches("/api/v1").to_owned())
            .or_insert_with(|| json!({}));
        entry[route.method] = operation(route, permission.as_str());
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Stagehand API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Drive Stagehand from CI/CD: flows, env keys, pipelines, play, promotions, the audit log.",
        },
        "servers": [{ "url": "/api/v1" }],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "token": { "type": "http", "scheme": "bearer", "description": "an API token (stagehand token create)" }
            },
            "schemas": schemas_with_error(),
        }
    })
}

fn schemas_with_error() -> Value {
    let mut all = schemas();
    all["Error"] = json!({
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "fields"],
                "properties": {
                    "code": { "type": "string" },
                    "message": { "type": "string" },
                    "fields": { "type": "object", "additionalProperties": { "type": "string" } },
                    "request_id": { "type": "string" }
                }
            }
        }
    });
    all
}

pub(crate) async fn openapi_get() -> Json<Value> {
    Json(document())
}
