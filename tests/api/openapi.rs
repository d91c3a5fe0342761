//! `GET /openapi.json`: the internal API's OpenAPI 3.1 document, checked against the routes and
//! against what the handlers really answer.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, json, new_code, spawn_app};

/// Every route of the internal router, with its methods; `/v1` ones need the API key.
const ROUTES: &[(&str, &[&str])] = &[
    ("/v1/exchange", &["post"]),
    ("/v1/tokens", &["get"]),
    ("/v1/tokens/{id}", &["get", "delete"]),
    ("/v1/callbacks", &["get"]),
    ("/healthz", &["get"]),
    ("/readyz", &["get"]),
    ("/metrics", &["get"]),
    ("/openapi.json", &["get"]),
];

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

async fn document(app: &TestApp) -> Value {
    let response = app
        .http_get(&format!("{}/openapi.json", app.internal))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    json(response).await
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_lists_every_internal_route() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        doc["info"]["title"]
            .as_str()
            .unwrap()
            .contains("internal API")
    );

    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in ROUTES {
        let item = paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} is missing"));
        let documented: Vec<&str> = METHODS
            .iter()
            .copied()
            .filter(|method| item.get(*method).is_some())
            .collect();
        assert_eq!(&documented, methods, "{path}");
    }
    assert_eq!(paths.len(), ROUTES.len(), "{:?}", paths.keys());
}

#[tokio::test]
async fn every_v1_operation_needs_the_bearer_key_and_no_other_does() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    assert!(
        doc.get("security").is_none(),
        "no document-wide requirement"
    );

    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(operation) = item.get(*method) else {
                continue;
            };
            let security = operation.get("security");
            if path.starts_with("/v1/") {
                assert_eq!(security, Some(&json!([{"bearer": []}])), "{method} {path}");
                assert!(
                    operation["responses"].get("401").is_some(),
                    "{method} {path} documents its 401"
                );
            } else {
                assert!(security.is_none_or(|s| s == &json!([])), "{method} {path}");
            }
        }
    }
}

#[tokio::test]
async fn every_ref_points_to_a_schema_and_errors_are_problems() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "TokenRecord",
        "ExchangeRequest",
        "CallbackOutcome",
        "Problem",
        "Readiness",
    ] {
        assert!(schemas.contains_key(name), "{name}");
    }

    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 10);
    for reference in &refs {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{reference} is not a schema ref"));
        assert!(schemas.contains_key(name), "{reference} points nowhere");
    }

    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(operation) = item.get(*method) else {
                continue;
            };
            for (status, response) in operation["responses"].as_object().unwrap() {
                if (status.starts_with('4') || status.starts_with('5')) && path != "/readyz" {
                    assert_eq!(
                        response["content"]["application/problem+json"]["schema"]["$ref"],
                        "#/components/schemas/Problem",
                        "{method} {path} {status}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn the_document_is_not_served_on_the_public_listener() {
    let app = spawn_app().await;
    let response = app.http_get(&format!("{}/openapi.json", app.public)).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_schemas_describe_what_the_handlers_answer() {
    let app = spawn_app().await;
    app.mondiapay_issues_tokens(1).await;
    let doc = document(&app).await;

    let response = app.exchange_code(&new_code(), "ORDER-OAS").await;
    assert_eq!(response.status(), StatusCode::OK);
    let record = json(response).await;
    assert!(record.get("refresh_token").is_some());
    conforms(&doc, "TokenRecord", &record);
    let found = json(app.get("/v1/tokens?ref=ORDER-OAS").await).await;
    conforms(&doc, "TokenRecord", &found);

    app.callback_page("ref=ORDER-OAS&error=INSUFFICIENT_FUNDS&status=402")
        .await;
    let outcomes = json(app.get("/v1/callbacks?ref=ORDER-OAS").await).await;
    assert_eq!(outcomes.as_array().unwrap().len(), 1);
    conforms(&doc, "CallbackOutcome", &outcomes[0]);

    let missing = app.get("/v1/tokens/tok_nothing").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    conforms(&doc, "Problem", &json(missing).await);

    let ready = app.http_get(&format!("{}/readyz", app.internal)).await;
    assert_eq!(ready.status(), StatusCode::OK);
    conforms(&doc, "Readiness", &json(ready).await);
}

fn collect_refs(value: &Value, refs: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(reference)) => refs.push(reference.clone()),
                    _ => collect_refs(value, refs),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_refs(item, refs)),
        _ => {}
    }
}

/// Shallow check of an answer against a named schema: the required fields are there, no field
/// is undocumented, and each field has a documented type (and enum value).
fn conforms(doc: &Value, name: &str, value: &Value) {
    let schema = &doc["components"]["schemas"][name];
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("{name}: {value}"));
    for required in schema["required"].as_array().unwrap() {
        let required = required.as_str().unwrap();
        assert!(object.contains_key(required), "{name}.{required}: {value}");
    }
    for (field, field_value) in object {
        let property = schema["properties"]
            .get(field)
            .unwrap_or_else(|| panic!("{name}.{field} is not documented"));
        let types: Vec<&str> = match &property["type"] {
            Value::String(single) => vec![single.as_str()],
            Value::Array(many) => many.iter().map(|t| t.as_str().unwrap()).collect(),
            other => panic!("{name}.{field} has type {other}"),
        };
        let actual = match field_value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        assert!(
            types.contains(&actual),
            "{name}.{field} is {actual}, documented {types:?}"
        );
        if let Some(allowed) = property["enum"].as_array() {
            assert!(
                allowed.contains(field_value),
                "{name}.{field} = {field_value}"
            );
        }
    }
}
