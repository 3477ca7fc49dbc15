//! The app's OpenAPI 3.1 document, generated from its declarations: every HTTP function is
//! an operation (its name the `operationId`, its route the path under `/api/`, its route
//! parameters the path parameters), errors are RFC 9457 problems, and the bearer token is
//! the security scheme unless the declaration says otherwise. What a declaration adds
//! ([`FunctionDecl::api`]) is merged in. Served at `GET /api/openapi.json`.

use serde_json::{Map, Value, json};

use crate::declare::{FunctionDecl, Trigger};

/// The route of the document itself (under `/api/`).
pub const ROUTE: &str = "openapi.json";
/// The name of the function that serves it.
pub const FUNCTION: &str = "OpenApi";

/// Merges `patch` into `target`: objects member by member, anything else replaced.
pub fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p,
    }
}

/// `{name}`, `{name:int}`, `{name?}`, `{*name}` → the parameter's name.
fn parameter(segment: &str) -> Option<&str> {
    let inner = segment.strip_prefix('{')?.strip_suffix('}')?;
    let inner = inner.trim_start_matches('*');
    let inner = inner.split(':').next()?;
    Some(inner.trim_end_matches('?'))
}

/// The OpenAPI path of a route template: `/api/` + the template with parameters as
/// `{name}`.
pub fn path_of(route: &str) -> String {
    let segments: Vec<String> = route
        .trim_matches('/')
        .split('/')
        .map(|s| match parameter(s) {
            Some(name) => format!("{{{name}}}"),
            None => s.to_owned(),
        })
        .collect();
    format!("/api/{}", segments.join("/"))
}

/// The axum path of a route template: `/api/` + the template, parameters as `{name}` (a
/// catch-all as `{*name}`; constraints dropped).
pub fn axum_path(route: &str) -> String {
    let segments: Vec<String> = route
        .trim_matches('/')
        .split('/')
        .map(|s| match parameter(s) {
            Some(name) if s.starts_with("{*") => format!("{{*{name}}}"),
            Some(name) => format!("{{{name}}}"),
            None => s.to_owned(),
        })
        .collect();
    format!("/api/{}", segments.join("/"))
}

/// The document of an app's HTTP functions.
pub fn document(slug: &str, version: &str, functions: &[FunctionDecl]) -> Value {
    let mut paths = Map::new();
    for f in functions {
        let Trigger::Http { route, methods, .. } = &f.trigger else {
            continue;
        };
        let parameters: Vec<Value> = route
            .trim_matches('/')
            .split('/')
            .filter_map(parameter)
            .map(|name| {
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
            })
            .collect();
        let item = paths.entry(path_of(route)).or_insert_with(|| json!({}));
        for method in methods {
            let mut operation = json!({
                "operationId": f.name,
                "tags": [slug],
                "responses": {
                    "2XX": {
                        "description": "Success",
                        "content": {"application/json": {"schema": {}}},
                    },
                    "4XX": {"$ref": "#/components/responses/Problem"},
                    "5XX": {"$ref": "#/components/responses/Problem"},
                },
            });
            if !parameters.is_empty() {
                operation["parameters"] = Value::Array(parameters.clone());
            }
            if matches!(method.as_str(), "post" | "put" | "patch") {
                operation["requestBody"] = json!({
                    "required": true,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                });
            }
            if !f.api.is_null() {
                merge(&mut operation, f.api.clone());
            }
            item[method.as_str()] = operation;
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": format!("Integration Platform: {slug}"),
            "version": version,
            "description": format!(
                "The {slug} app's HTTP API. Paths are relative to the app's root \
                 (locally `http://127.0.0.1:7071/{slug}`). Errors are RFC 9457 problems with a \
                 stable `code`."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Problem": {
                    "type": "object",
                    "description": "RFC 9457 problem details",
                    "required": ["type", "title", "status", "code", "detail"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "code": {"type": "string", "description": "stable, machine-readable"},
                        "detail": {"type": "string"},
                        "pointer": {
                            "type": "string",
                            "description": "the JSON pointer of the field at fault (RFC 6901)",
                        },
                    },
                },
            },
            "responses": {
                "Problem": {
                    "description": "An error",
                    "content": {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"},
                        },
                    },
                },
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
        "security": [{"bearer": []}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_become_paths_with_parameters() {
        assert_eq!(
            path_of("integrations/runs/{runId}"),
            "/api/integrations/runs/{runId}"
        );
        assert_eq!(path_of("items/{id:int}/{rest?}"), "/api/items/{id}/{rest}");
        assert_eq!(path_of("files/{*path}"), "/api/files/{path}");
        assert_eq!(axum_path("files/{*path}"), "/api/files/{*path}");
        assert_eq!(axum_path("items/{id:int}"), "/api/items/{id}");
        let decls = [
            FunctionDecl::http("GetRun", "integrations/runs/{runId}", &["get"]),
            FunctionDecl::http("StartRun", "integrations/runs", &["post"])
                .api(json!({"summary": "Start a run"})),
            FunctionDecl::http("Inbound", "webhooks/inbound/{sourceId}", &["post"]).public(),
            FunctionDecl::timer("Sweep", "0 0 * * * *"),
        ];
        let doc = document("sms", "1.0.0", &decls);
        assert_eq!(doc["openapi"], "3.1.0");
        let get = &doc["paths"]["/api/integrations/runs/{runId}"]["get"];
        assert_eq!(get["operationId"], "GetRun");
        assert_eq!(get["parameters"][0]["name"], "runId");
        assert!(get.get("requestBody").is_none());
        let start = &doc["paths"]["/api/integrations/runs"]["post"];
        assert_eq!(start["summary"], "Start a run");
        assert_eq!(start["requestBody"]["required"], true);
        assert_eq!(
            doc["paths"]["/api/webhooks/inbound/{sourceId}"]["post"]["security"],
            json!([])
        );
        assert_eq!(doc["paths"].as_object().unwrap().len(), 3, "no timer");
    }

    #[test]
    fn merge_is_deep() {
        let mut v = json!({"a": {"b": 1, "c": 2}});
        merge(&mut v, json!({"a": {"c": 3, "d": 4}, "e": 5}));
        assert_eq!(v, json!({"a": {"b": 1, "c": 3, "d": 4}, "e": 5}));
    }
}
