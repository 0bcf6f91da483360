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
                // JSON bodies, or the CSV files of the import.
                let content = &op["requestBody"]["content"];
                assert!(
                    content["application/json"]["schema"].is_object()
                        || content["text/csv"]["schema"].is_object(),
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

/// Every bound and pattern the document gives a parameter or a body field
/// is the one the code enforces (the handlers' tests check the code
/// against the same constants at each bound).
#[test]
fn documented_bounds_are_the_enforced_ones() {
    use crate::api::auth::MAX_PASSWORD_CHARS;
    use crate::api::telemetry::{self, MAX_STEP_MS, POINT_PATTERN, STEP_PATTERN};
    use crate::api::users::{
        DISPLAY_NAME_PATTERN, MAX_DISPLAY_NAME_CHARS, MAX_RATE_CENTS, SITE_PATTERN,
        USERNAME_PATTERN,
    };
    use crate::auth::password::MIN_PASSWORD_CHARS;
    use serde_json::{json, Value};

    let doc = serde_json::to_value(document()).unwrap();
    let param = |method: &str, path: &str, name: &str| -> Value {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("{method} {path}: no parameter {name}"))
    };
    let prop = |schema: &str, name: &str| -> Value {
        doc["components"]["schemas"][schema]["properties"][name].clone()
    };

    let site_role = "/api/v1/users/{id}/sites/{site}";
    for method in ["put", "delete"] {
        let p = param(method, site_role, "site");
        assert_eq!(p["in"], "path");
        assert_eq!(p["schema"]["pattern"], SITE_PATTERN, "{method}");
        assert!(
            doc["paths"][site_role][method]["responses"]["400"].is_object(),
            "{method}: 400 undocumented"
        );
    }
    for path in ["/api/v1/users", "/api/v1/audit"] {
        assert_eq!(
            param("get", path, "site")["schema"]["pattern"],
            SITE_PATTERN
        );
    }
    for (path, name) in [
        ("/api/v1/users", "username_prefix"),
        ("/api/v1/audit", "entity_kind"),
        ("/api/v1/audit", "entity_id"),
        ("/api/v1/audit", "actor"),
    ] {
        assert_eq!(
            param("get", path, name)["schema"]["pattern"],
            crate::api::page::NO_NUL_PATTERN,
            "{path} {name}"
        );
    }

    for (path, max) in [
        ("/api/v1/users", crate::api::page::MAX_LIMIT),
        ("/api/v1/audit", crate::api::page::MAX_LIMIT),
        ("/api/v1/telemetry", telemetry::MAX_LIMIT),
    ] {
        let s = &param("get", path, "limit")["schema"];
        assert_eq!(
            (&s["minimum"], &s["maximum"]),
            (&json!(1), &json!(max)),
            "{path}"
        );
        assert_eq!(s["type"], "integer", "{path}");
    }

    let telemetry = "/api/v1/telemetry";
    let point = param("get", telemetry, "point");
    assert_eq!(point["required"], true);
    assert_eq!(point["schema"]["pattern"], POINT_PATTERN);
    for name in ["from", "to"] {
        let p = param("get", telemetry, name);
        assert_eq!(p["required"], true, "{name}");
        assert_eq!(p["schema"]["format"], "date-time", "{name}");
        let p = param("get", "/api/v1/audit", name);
        assert_eq!(p["schema"]["format"], "date-time", "audit {name}");
    }
    assert_eq!(
        param("get", telemetry, "step")["schema"]["pattern"],
        STEP_PATTERN
    );
    let bucket = &param("get", telemetry, "bucket_ms")["schema"];
    assert_eq!(
        (&bucket["minimum"], &bucket["maximum"]),
        (&json!(1), &json!(MAX_STEP_MS))
    );

    for schema in ["CreateUser", "PatchUser"] {
        let name = prop(schema, "display_name");
        assert_eq!(name["pattern"], DISPLAY_NAME_PATTERN, "{schema}");
        assert_eq!(
            (&name["minLength"], &name["maxLength"]),
            (&json!(1), &json!(MAX_DISPLAY_NAME_CHARS)),
            "{schema}"
        );
        let password = prop(schema, "password");
        assert_eq!(
            (&password["minLength"], &password["maxLength"]),
            (&json!(MIN_PASSWORD_CHARS), &json!(MAX_PASSWORD_CHARS)),
            "{schema}"
        );
        let rate = prop(schema, "hourly_rate_cents");
        assert_eq!(
            (&rate["minimum"], &rate["maximum"]),
            (&json!(0), &json!(MAX_RATE_CENTS)),
            "{schema}"
        );
    }
    assert_eq!(prop("CreateUser", "username")["pattern"], USERNAME_PATTERN);
    let new = prop("ChangePassword", "new");
    assert_eq!(
        (&new["minLength"], &new["maxLength"]),
        (&json!(MIN_PASSWORD_CHARS), &json!(MAX_PASSWORD_CHARS))
    );
    let conflict = doc["paths"]["/api/v1/users"]["post"]["responses"]["409"]["description"]
        .as_str()
        .unwrap();
    assert!(
        conflict.contains("contractor_cannot_be_admin"),
        "{conflict}"
    );
}
