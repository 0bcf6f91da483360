//! User administration through the router: validation, conflicts,
//! paging, role grants, refusals, and the audit entry of every write.

use super::testing::{assert_error, assert_forbidden, password_of, TestApi};
use crate::metrics::Refusal;
use axum::http::{Method, StatusCode};
use dcmms_shared::cmms::role::UserKind;
use dcmms_shared::cmms::Role;
use serde_json::{json, Value};

fn new_user(username: &str) -> Value {
    json!({ "username": username, "password": password_of(username) })
}

async fn create(api: &TestApi, token: &str, body: Value) -> super::testing::Resp {
    api.send(Method::POST, "/api/v1/users", Some(token), Some(body))
        .await
}

async fn administration(api: TestApi) {
    let root = api.admin().await;

    // Create: normalised, audited without secrets.
    let r = create(
        &api,
        &root,
        json!({
            "username": "Bea.Tech",
            "display_name": "  Bea  ",
            "password": "bea's long password",
            "kind": "contractor",
            "hourly_rate_cents": 4500,
        }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let bea = r.json["id"].as_str().unwrap().to_owned();
    assert_eq!(r.json["username"], "bea.tech");
    assert_eq!(r.json["display_name"], "Bea");
    assert_eq!(r.json["kind"], "contractor");
    assert_eq!(r.json["hourly_rate_cents"], 4500);
    assert_eq!(r.json["disabled"], false);
    assert!(r.json.get("password").is_none() && r.json.get("password_hash").is_none());
    let audit = api.audit().await;
    let e = &audit[0];
    assert_eq!(
        (
            e.action.as_str(),
            e.entity_kind.as_str(),
            e.entity_id.as_str()
        ),
        ("user.create", "user", bea.as_str())
    );
    assert_eq!(e.actor_name, "root");
    assert!(e.before.is_none());
    assert_eq!(e.after.as_ref().unwrap()["username"], "bea.tech");
    let dump = format!("{audit:?}");
    assert!(
        !dump.contains("long password") && !dump.contains("argon2"),
        "{dump}"
    );

    // Taken username: 409 with its rule.
    let r = create(&api, &root, new_user("BEA.tech")).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_error(&r.json, "conflict");
    assert_eq!(r.json["error"]["rule"], "username_taken");

    // Every invalid field is named.
    let r = create(
        &api,
        &root,
        json!({
            "username": "-bad name",
            "password": "short",
            "kind": "contractor",
            "is_admin": true,
            "hourly_rate_cents": -1,
        }),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let mut fields: Vec<&str> = r.json["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        ["hourly_rate_cents", "is_admin", "password", "username"]
    );

    // Read one; unknown id is 404.
    let r = api.get(&format!("/api/v1/users/{bea}"), &root).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["username"], "bea.tech");
    let r = api.get("/api/v1/users/no-such-id", &root).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(!r.no_route);
    assert_error(&r.json, "not_found");

    // Grant, change, remove a site role; each audited with the site.
    let bea_token = api.login_with("bea.tech", "bea's long password").await;
    let grant = format!("/api/v1/users/{bea}/sites/wind-2");
    let put = |role: &str| {
        api.send(
            Method::PUT,
            &grant,
            Some(&root),
            Some(json!({ "role": role })),
        )
    };
    let r = put("technician").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        r.json,
        json!({ "user_id": bea, "site": "wind-2", "role": "technician" })
    );
    let me = api.get("/api/v1/auth/me", &bea_token).await;
    assert_eq!(
        me.json["sites"],
        json!([{ "site": "wind-2", "role": "technician" }])
    );
    assert_eq!(put("supervisor").await.status, StatusCode::OK);
    let entries_before = api.audit().await.len();
    assert_eq!(put("supervisor").await.status, StatusCode::OK);
    assert_eq!(
        api.audit().await.len(),
        entries_before,
        "no change, no entry"
    );
    let r = put("overlord").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.json["error"]["fields"][0]["field"], "role");
    let r = api
        .send(
            Method::PUT,
            &format!("/api/v1/users/{bea}/sites/bad%20site"),
            Some(&root),
            Some(json!({ "role": "viewer" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    let audit = api.audit().await;
    let e = &audit[0];
    assert_eq!(e.action, "user.site_role_set");
    assert_eq!(e.site.as_deref(), Some("wind-2"));
    assert_eq!(e.before, Some(json!({ "role": "technician" })));
    assert_eq!(e.after, Some(json!({ "role": "supervisor" })));
    let del = format!("/api/v1/users/{bea}/sites/wind-2");
    let r = api.send(Method::DELETE, &del, Some(&root), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = api.send(Method::DELETE, &del, Some(&root), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let e = &api.audit().await[0];
    assert_eq!(e.action, "user.site_role_remove");
    assert_eq!(e.before, Some(json!({ "role": "supervisor" })));
    assert!(e.after.is_none());

    // Patch: fields, before and after in the audit.
    let uri = format!("/api/v1/users/{bea}");
    let r = api
        .send(
            Method::PATCH,
            &uri,
            Some(&root),
            Some(json!({ "display_name": "Bea T.", "hourly_rate_cents": 5000 })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["display_name"], "Bea T.");
    let e = &api.audit().await[0];
    assert_eq!(e.action, "user.update");
    assert_eq!(e.before.as_ref().unwrap()["hourly_rate_cents"], 4500);
    assert_eq!(e.after.as_ref().unwrap()["hourly_rate_cents"], 5000);
    assert_eq!(e.after.as_ref().unwrap()["display_name"], "Bea T.");
    let r = api
        .send(
            Method::PATCH,
            &uri,
            Some(&root),
            Some(json!({ "is_admin": true })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = api
        .send(
            Method::PATCH,
            &uri,
            Some(&root),
            Some(json!({ "password": "short" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let r = api
        .send(
            Method::PATCH,
            "/api/v1/users/nobody",
            Some(&root),
            Some(json!({ "disabled": true })),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);

    // Password reset: the old password and the user's tokens stop working.
    let r = api
        .send(
            Method::PATCH,
            &uri,
            Some(&root),
            Some(json!({ "password": "reset by the admin" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(
        api.get("/api/v1/auth/me", &bea_token).await.status,
        StatusCode::UNAUTHORIZED
    );
    let e = &api.audit().await[0];
    assert_eq!(e.action, "user.password_reset");
    assert_eq!(e.after, Some(json!({ "tokens_revoked": 1 })));
    let bea_token = api.login_with("bea.tech", "reset by the admin").await;

    // Disable: tokens revoked, login refused; audited before/after.
    let r = api
        .send(
            Method::PATCH,
            &uri,
            Some(&root),
            Some(json!({ "disabled": true })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["disabled"], true);
    assert_eq!(
        api.get("/api/v1/auth/me", &bea_token).await.status,
        StatusCode::UNAUTHORIZED
    );
    let audit = api.audit().await;
    assert_eq!(audit[0].action, "user.tokens_revoke");
    assert_eq!(audit[1].action, "user.update");
    assert_eq!(audit[1].before.as_ref().unwrap()["disabled"], false);
    assert_eq!(audit[1].after.as_ref().unwrap()["disabled"], true);

    // The last enabled administrator cannot be disabled.
    let me = api.get("/api/v1/auth/me", &root).await;
    let root_id = me.json["id"].as_str().unwrap().to_owned();
    let r = api
        .send(
            Method::PATCH,
            &format!("/api/v1/users/{root_id}"),
            Some(&root),
            Some(json!({ "disabled": true })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(r.json["error"]["rule"], "last_admin");
}

#[tokio::test]
async fn administration_on_sqlite() {
    administration(TestApi::sqlite().await).await;
}

#[tokio::test]
async fn administration_on_postgres() {
    administration(TestApi::postgres().await).await;
}

async fn usernames(api: &TestApi, token: &str, query: &str) -> (Vec<String>, Option<String>) {
    let r = api.get(&format!("/api/v1/users?{query}"), token).await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text);
    let names = r.json["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect();
    (names, r.json["next"].as_str().map(str::to_owned))
}

async fn listing(api: TestApi) {
    let root = api.admin().await;
    for (name, kind) in [
        ("dan", UserKind::Staff),
        ("abe", UserKind::Contractor),
        ("cy", UserKind::Staff),
        ("bo", UserKind::Contractor),
        ("eve", UserKind::Staff),
    ] {
        let sites: &[(&str, Role)] = if name == "cy" || name == "bo" {
            &[("north", Role::Viewer)]
        } else {
            &[]
        };
        api.add_user(name, kind, false, sites).await;
        // Distinct creation times for the created_at order.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let mut all = Vec::new();
    let mut query = "limit=2".to_owned();
    loop {
        let (names, next) = usernames(&api, &root, &query).await;
        assert!(names.len() <= 2);
        all.extend(names);
        match next {
            Some(c) => query = format!("limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(all, ["abe", "bo", "cy", "dan", "eve", "root"]);

    let (page1, next) = usernames(&api, &root, "limit=3&sort=-created_at").await;
    assert_eq!(page1, ["eve", "bo", "cy"]);
    let next = next.unwrap();
    let (page2, end) = usernames(
        &api,
        &root,
        &format!("limit=3&sort=-created_at&cursor={next}"),
    )
    .await;
    assert_eq!(page2, ["abe", "dan", "root"]);
    assert!(end.is_none());
    // A cursor belongs to its order.
    let r = api
        .get(
            &format!("/api/v1/users?limit=3&sort=username&cursor={next}"),
            &root,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert_error(&r.json, "bad_request");

    let (names, _) = usernames(&api, &root, "kind=contractor").await;
    assert_eq!(names, ["abe", "bo"]);
    let (names, _) = usernames(&api, &root, "site=north&sort=-username").await;
    assert_eq!(names, ["cy", "bo"]);
    let (names, _) = usernames(&api, &root, "username_prefix=D").await;
    assert_eq!(names, ["dan"]);
    let (names, _) = usernames(&api, &root, "username_prefix=%25").await;
    assert!(names.is_empty(), "LIKE wildcards are literal");
    let (names, _) = usernames(&api, &root, "disabled=false&limit=1000").await;
    assert_eq!(names.len(), 6);
    for bad in [
        "limit=0",
        "limit=1001",
        "limit=x",
        "sort=age",
        "kind=boss",
        "colour=red",
        "cursor=zz",
    ] {
        let r = api.get(&format!("/api/v1/users?{bad}"), &root).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        assert_error(&r.json, "bad_request");
    }
}

#[tokio::test]
async fn listing_on_sqlite() {
    listing(TestApi::sqlite().await).await;
}

#[tokio::test]
async fn listing_on_postgres() {
    listing(TestApi::postgres().await).await;
}

/// Every user route refuses non-administrators (403 naming
/// `manage_users`) and anonymous callers (401), and changes nothing.
#[tokio::test]
async fn only_fleet_administrators_manage_users() {
    let api = TestApi::sqlite().await;
    let root = api.admin().await;
    let target = api.add_user("tom", UserKind::Staff, false, &[]).await;
    api.add_user("sup", UserKind::Staff, false, &[("north", Role::Admin)])
        .await;
    api.add_user(
        "con",
        UserKind::Contractor,
        false,
        &[("north", Role::Supervisor)],
    )
    .await;
    let sup = api.login("sup").await;
    let con = api.login("con").await;
    let entries = api.audit().await.len();
    let user = format!("/api/v1/users/{target}");
    let site = format!("/api/v1/users/{target}/sites/north");
    let routes: Vec<(Method, &str, Option<Value>)> = vec![
        (Method::GET, "/api/v1/users", None),
        (Method::POST, "/api/v1/users", Some(new_user("newbie"))),
        (Method::GET, &user, None),
        (Method::PATCH, &user, Some(json!({ "disabled": true }))),
        (Method::PUT, &site, Some(json!({ "role": "admin" }))),
        (Method::DELETE, &site, None),
    ];
    let forbidden_before = api.metrics.refused_total(Refusal::Forbidden);
    for (method, uri, body) in &routes {
        for token in [&sup, &con] {
            let r = api
                .send(method.clone(), uri, Some(token), body.clone())
                .await;
            assert_forbidden(&r, Some("manage_users"), None);
        }
        let r = api.send(method.clone(), uri, None, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
    }
    assert_eq!(
        api.metrics.refused_total(Refusal::Forbidden) - forbidden_before,
        (routes.len() * 2) as f64
    );
    assert_eq!(api.audit().await.len(), entries);
    let r = api.get(&user, &root).await;
    assert_eq!(r.json["disabled"], false);
    assert_eq!(r.json["sites"], json!([]));
}
