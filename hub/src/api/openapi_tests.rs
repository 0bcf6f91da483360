//! The document and the router agree: every documented operation is
//! routed, nothing undocumented is, and every error response has the one
//! error schema.

use super::*;
use crate::api::testing::{assert_error, TestApi};
use axum::http::{Method, StatusCode};
use std::collections::BTreeSet;

/// The API's surface. Adding a route means adding it here and to
/// [`routes`]; the test fails if the two disagree.
const SURFACE: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/telemetry"),
    ("GET", "/api/v1/gateways"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/logout"),
    ("GET", "/api/v1/auth/me"),
    ("POST", "/api/v1/users/me/password"),
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("GET", "/api/v1/users/{id}"),
    ("PATCH", "/api/v1/users/{id}"),
    ("PUT", "/api/v1/users/{id}/sites/{site}"),
    ("DELETE", "/api/v1/users/{id}/sites/{site}"),
    ("GET", "/api/v1/audit"),
];

/// Public operations; every other one needs the bearer token.
const PUBLIC: &[&str] = &[
    "/health",
    "/metrics",
    "/api/v1/openapi.json",
    "/api/v1/auth/login",
];

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

fn documented(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method.to_lowercase()).is_some() {
                ops.insert((method.to_owned(), path.clone()));
            }
        }
    }
    ops
}

fn concrete(path: &str) -> String {
    path.replace("{id}", "some-id").replace("{site}", "north")
}

#[tokio::test]
async fn document_and_router_agree() {
    let api = TestApi::sqlite().await;
    let r = api
        .send(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let doc = r.json;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string());
    assert_eq!(
        doc["components"]["securitySchemes"][BEARER]["scheme"],
        "bearer"
    );

    let ops = documented(&doc);
    let expected: BTreeSet<(String, String)> = SURFACE
        .iter()
        .chain(crate::api::cmms::work::SURFACE)
        .chain(crate::api::cmms::registry::SURFACE)
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    assert_eq!(ops, expected);

    for (method, path) in &ops {
        let uri = concrete(path);
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        // Documented: routed (anything but the fallback and 405).
        let r = api.send(m.clone(), &uri, None, None).await;
        assert!(!r.no_route, "{method} {path} is documented but not routed");
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        if !PUBLIC.contains(&path.as_str()) {
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path}: {}",
                r.text
            );
        }
        // Other methods on a documented path: 405 in the error shape,
        // so no undocumented operation hides there.
        for other in METHODS {
            if ops.contains(&(other.to_owned(), path.clone())) {
                continue;
            }
            let r = api
                .send(
                    Method::from_bytes(other.as_bytes()).unwrap(),
                    &uri,
                    None,
                    None,
                )
                .await;
            assert_eq!(
                r.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{other} {path} answers but is not documented"
            );
            assert_error(&r.json, "method_not_allowed");
        }
    }

    // Paths not in the document reach the fallback only.
    for path in [
        "/",
        "/api",
        "/api/v1",
        "/api/v1/",
        "/api/v1/users/some-id/sites",
        "/api/v1/users/some-id/sites/north/extra",
        "/api/v1/auth",
        "/api/v1/audit/1",
        "/api/v1/gateways/gw-1",
        "/api/v2/users",
        "/openapi.json",
        "/health/",
    ] {
        for method in METHODS {
            let r = api
                .send(
                    Method::from_bytes(method.as_bytes()).unwrap(),
                    path,
                    None,
                    None,
                )
                .await;
            assert!(r.no_route, "{method} {path} is routed but not documented");
            assert_eq!(r.status, StatusCode::NOT_FOUND);
            assert_error(&r.json, "not_found");
        }
    }
}

#[test]
fn every_operation_documents_its_errors_and_security() {
    let doc = serde_json::to_value(document()).unwrap();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "ErrorBody",
        "ErrorDetail",
        "ErrorCode",
        "FieldError",
        "UserView",
    ] {
        assert!(schemas.contains_key(name), "schema {name} missing");
    }
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let what = format!("{method} {path}");
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{what}: no tag"
            );
            let secured = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get(BEARER).is_some()));
            assert_eq!(
                secured,
                !PUBLIC.contains(&path.as_str()),
                "{what}: security"
            );
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{what}: no success response"
            );
            let mut needed = vec!["500"];
            if secured {
                needed.extend(["401", "403"]);
            }
            if op.get("requestBody").is_some() {
                needed.extend(["400", "415", "422"]);
                assert!(
                    op["requestBody"]["content"]["application/json"]["schema"].is_object(),
                    "{what}: request schema"
                );
            }
            for status in needed {
                assert!(responses.contains_key(status), "{what}: no {status}");
            }
            for (status, resp) in responses {
                if status.starts_with('2') {
                    continue;
                }
                let schema = &resp["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(
                    schema, "#/components/schemas/ErrorBody",
                    "{what} {status}: not the error schema"
                );
            }
        }
    }
}
