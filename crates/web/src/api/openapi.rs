//! The API's OpenAPI 3.1 document, generated from the route table: every
//! `Access::Api` route with its path parameters, the permission it needs,
//! its query parameters, its success and error answers. Served at
//! `/api/v1/openapi.json`; `crates/web/openapi.json` is the committed copy
//! a test compares against.
//!
//! Request and response bodies are described as JSON objects without
//! their fields yet; the error body is described in full.

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
        "description": "rows per page, 1 to 500 (default 100)",
        "schema": { "type": "integer", "minimum": 1, "maximum": 500 } });
    let window = [
        string("since", "RFC 3339 time, inclusive"),
        string("until", "RFC 3339 time, exclusive"),
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
        "post" => !["/promote", "/approve", "/reject", "/rollback"]
            .iter()
            .any(|s| route.path.ends_with(s)),
        _ => false,
    }
}

fn success(route: &RouteSpec) -> (&'static str, &'static str) {
    match route.method {
        "delete" if !route.path.contains("/stages/") => ("204", "Done"),
        "put" if route.path.contains("/env/") => ("204", "Done"),
        "post" if route.path.ends_with("/promote") => (
            "201",
            "The promotion, applied or pending approval (200 for a retry with the same Idempotency-Key)",
        ),
        "post"
            if route.path.ends_with("/instances")
                || route.path.ends_with("/pipelines")
                || route.path.ends_with("/stages") =>
        {
            ("201", "Created")
        }
        _ => ("200", "OK"),
    }
}

fn operation(route: &RouteSpec, permission: &str) -> Value {
    let mut parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    parameters.extend(query_parameters(route.path));
    if route.path.ends_with("/promote") {
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
    let body = json!({ "application/json": { "schema": {} } });
    responses.insert(
        code.into(),
        if code == "204" {
            json!({ "description": description })
        } else {
            json!({ "description": description, "content": body })
        },
    );
    if route.path.ends_with("/promote") {
        responses.insert(
            "200".into(),
            json!({ "description": "A retry: the first promotion", "content": body }),
        );
    }
    for (status, why) in [
        ("400", "The request could not be read"),
        ("401", "No valid API token"),
        ("403", "The token's role lacks the permission"),
        ("404", "No such thing in the token's team"),
        ("405", "Method not allowed"),
        ("409", "A conflict with the current state"),
        ("413", "The body is over the size limit"),
        ("415", "Not JSON"),
        ("422", "A value is invalid; `fields` names it"),
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
        op["requestBody"] =
            json!({ "required": true, "content": { "application/json": { "schema": {} } } });
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
            "schemas": {
                "Error": {
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
                }
            }
        }
    })
}

pub(crate) async fn openapi_get() -> Json<Value> {
    Json(document())
}
