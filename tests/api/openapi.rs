//! `GET /openapi.json`: the internal API's contract, generated from the router. Checked here
//! against the committed copy, against the routes the listener really serves, and against what
//! the handlers really answer.

use std::path::Path;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, json, new_code, spawn_app};

/// The HTTP methods an OpenAPI path item can hold. (`HEAD` is left out: axum answers it on
/// every `GET` route, as HTTP wants.)
const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "patch", "trace"];

/// What readers find at the repository's root; the test below keeps it equal to the generated one.
const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");

async fn served(app: &TestApp) -> String {
    let response = app
        .http_get(&format!("{}/openapi.json", app.internal))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.text().await.unwrap()
}

async fn document(app: &TestApp) -> Value {
    serde_json::from_str(&served(app).await).unwrap()
}

/// `(path, method)` of every operation the document lists.
fn operations(doc: &Value) -> Vec<(String, &'static str, &Value)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(operation) = item.get(*method) {
                found.push((path.clone(), *method, operation));
            }
        }
    }
    found
}

#[tokio::test]
async fn the_committed_copy_is_the_served_contract() {
    let app = spawn_app().await;
    let generated = served(&app).await;
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        // In CI the copy is checked, never rewritten: that would make this test pass by itself.
        assert!(
            std::env::var_os("CI").is_none(),
            "UPDATE_OPENAPI is for a developer's machine, not for CI"
        );
        std::fs::write(COMMITTED, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(Path::new(COMMITTED)).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi.json differs from the contract the router generates; regenerate it with \
         `UPDATE_OPENAPI=1 cargo test --test api openapi::the_committed_copy` and commit it"
    );
}

#[tokio::test]
async fn the_document_is_openapi_3_1_about_this_version() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        doc["info"]["license"]["identifier"],
        env!("CARGO_PKG_LICENSE")
    );
    assert!(
        doc["info"]["title"]
            .as_str()
            .unwrap()
            .contains("internal API")
    );
}

/// The router and the contract come from the same registrations; this checks it from outside:
/// each documented operation is routed (a `/v1` one asks for the key, which only a matched
/// route does; an operations route answers), with a documented status and media type and
/// `Cache-Control: no-store`; every other method on a documented path is refused with `405`;
/// and the public listener's pages are not served here.
#[tokio::test]
async fn the_listener_serves_exactly_the_documented_routes() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let anonymous = reqwest::Client::new();
    let documented = operations(&doc);
    assert!(documented.len() >= 9, "{documented:?}");
    for (path, method, operation) in &documented {
        let url = format!("{}{}", app.internal, path.replace("{id}", "tok_nothing"));
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = anonymous
            .request(method.clone(), &url)
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert_eq!(
            response.headers()["cache-control"],
            "no-store",
            "{method} {path}"
        );
        let documented = operation["responses"]
            .get(status.as_str())
            .unwrap_or_else(|| panic!("{method} {path} answered {status}, not documented"));
        let content_type = response.headers()["content-type"].to_str().unwrap();
        let media_types = documented["content"].as_object().unwrap();
        assert!(
            media_types
                .keys()
                .any(|media_type| content_type == media_type
                    || content_type.starts_with(&format!("{media_type};"))),
            "{method} {path} answered {status} as {content_type}, documented {media_types:?}"
        );
        if path.starts_with("/v1/") {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
        } else {
            assert!(status.is_success(), "{method} {path} answered {status}");
        }
    }

    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path.replace("{id}", "tok_nothing");
        for method in METHODS.iter().filter(|method| item.get(**method).is_none()) {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app.api(method.clone(), &concrete).send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is served but not documented"
            );
        }
    }

    // The public listener's routes (pages for browsers) are not part of this API.
    for path in ["/oauth/callback", "/v1", "/v1/tokens/tok_nothing/x"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
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

    for (path, method, operation) in operations(&doc) {
        let security = operation.get("security");
        if path.starts_with("/v1/") {
            assert_eq!(security, Some(&json!([{"bearer": []}])), "{method} {path}");
            let unauthorized = &operation["responses"]["401"];
            assert_eq!(
                unauthorized["headers"]["WWW-Authenticate"]["schema"]["type"], "string",
                "{method} {path} documents its 401"
            );
        } else {
            assert!(security.is_none_or(|s| s == &json!([])), "{method} {path}");
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

    for (path, method, operation) in operations(&doc) {
        for (status, response) in operation["responses"].as_object().unwrap() {
            if (status.starts_with('4') || status.starts_with('5')) && path != "/readyz" {
                assert_eq!(
                    response["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{method} {path} {status}"
                );
            }
            if status == "503" && path != "/readyz" {
                assert_eq!(
                    response["headers"]["Retry-After"]["schema"]["type"], "integer",
                    "{method} {path}"
                );
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
