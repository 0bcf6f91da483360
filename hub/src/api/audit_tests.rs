//! `GET /api/v1/audit` through the router: who sees which entries,
//! filters, paging, and that no route changes the log.

use super::testing::{assert_error, assert_forbidden, TestApi};
use axum::http::{Method, StatusCode};
use dcmms_shared::cmms::role::UserKind;
use dcmms_shared::cmms::Role;
use serde_json::{json, Value};

fn actions(json: &Value) -> Vec<(String, Option<String>)> {
    json["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["site"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

async fn scoped_listing(api: TestApi) {
    let root = api.admin().await;
    let sup = api.add_user("sup", UserKind::Staff, false, &[]).await;
    let tech = api.add_user("tech", UserKind::Staff, false, &[]).await;
    api.add_user(
        "acme",
        UserKind::Contractor,
        false,
        &[("north", Role::Supervisor)],
    )
    .await;
    for (user, site, role) in [
        (&sup, "north", "supervisor"),
        (&tech, "north", "technician"),
        (&tech, "south", "viewer"),
    ] {
        let r = api
            .send(
                Method::PUT,
                &format!("/api/v1/users/{user}/sites/{site}"),
                Some(&root),
                Some(json!({ "role": role })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    }
    let r = api
        .send(
            Method::POST,
            "/api/v1/users",
            Some(&root),
            Some(json!({ "username": "newbie", "password": "a long password" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // Administrators see everything, newest first.
    let r = api.get("/api/v1/audit", &root).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let all = actions(&r.json);
    assert_eq!(all[0], ("user.create".to_owned(), None));
    assert!(all.contains(&("user.site_role_set".to_owned(), Some("south".to_owned()))));
    assert!(all.iter().any(|(a, _)| a == "api_token.create"));

    // A supervisor sees their site's entries only; the contractor too.
    let sup_token = api.login("sup").await;
    let r = api.get("/api/v1/audit", &sup_token).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let seen = actions(&r.json);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen.iter().all(|(_, s)| s.as_deref() == Some("north")),
        "{seen:?}"
    );
    let acme = api.login("acme").await;
    let r = api.get("/api/v1/audit?site=north", &acme).await;
    assert_eq!(actions(&r.json), seen);
    let r = api.get("/api/v1/audit?site=south", &sup_token).await;
    assert_forbidden(&r, None, Some("south"));
    let tech_token = api.login("tech").await;
    let r = api.get("/api/v1/audit", &tech_token).await;
    assert_forbidden(&r, None, None);
    let r = api.get("/api/v1/audit?site=north", &tech_token).await;
    assert_forbidden(&r, None, Some("north"));

    // Filters.
    let r = api
        .get(
            &format!("/api/v1/audit?entity_kind=user&entity_id={tech}"),
            &root,
        )
        .await;
    let tech_entries = actions(&r.json);
    assert_eq!(tech_entries.len(), 2, "{tech_entries:?}");
    let root_id = api.get("/api/v1/auth/me", &root).await.json["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = api
        .get(&format!("/api/v1/audit?actor={root_id}"), &root)
        .await;
    let by_root = r.json["entries"].as_array().unwrap();
    assert!(by_root.iter().all(|e| e["actor_name"] == "root"));
    assert_eq!(
        by_root.len(),
        all.iter().filter(|(a, _)| a != "api_token.create").count() + 1
    );
    let r = api
        .get(
            "/api/v1/audit?from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z",
            &root,
        )
        .await;
    assert!(actions(&r.json).is_empty());
    for bad in [
        "from=yesterday",
        "to=2026-01-01",
        "limit=0",
        "limit=1001",
        "cursor=abc",
        "what=1",
        "site=a%20b",
        "entity_kind=%00",
        "entity_id=a%00b",
        "actor=%00",
    ] {
        let r = api.get(&format!("/api/v1/audit?{bad}"), &root).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        assert_error(&r.json, "bad_request");
    }

    // Paging by cursor returns everything once, in order.
    let mut paged = Vec::new();
    let mut uri = "/api/v1/audit?limit=2".to_owned();
    loop {
        let r = api.get(&uri, &root).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        paged.extend(actions(&r.json));
        match r.json["next"].as_str() {
            Some(c) => uri = format!("/api/v1/audit?limit=2&cursor={c}"),
            None => break,
        }
    }
    let r = api.get("/api/v1/audit", &root).await;
    assert_eq!(paged, actions(&r.json));
}

#[tokio::test]
async fn scoped_listing_on_sqlite() {
    scoped_listing(TestApi::sqlite().await).await;
}

#[tokio::test]
async fn scoped_listing_on_postgres() {
    scoped_listing(TestApi::postgres().await).await;
}

/// The API offers no way to change or remove an entry.
#[tokio::test]
async fn no_route_modifies_the_log() {
    let api = TestApi::sqlite().await;
    let root = api.admin().await;
    let before = api.audit().await;
    assert!(!before.is_empty());
    let id = before[0].id;
    for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
        let r = api
            .send(
                method.clone(),
                "/api/v1/audit",
                Some(&root),
                Some(json!({})),
            )
            .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_error(&r.json, "method_not_allowed");
        let r = api
            .send(
                method.clone(),
                &format!("/api/v1/audit/{id}"),
                Some(&root),
                None,
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method}");
        assert!(r.no_route);
    }
    assert_eq!(api.audit().await, before);
}
