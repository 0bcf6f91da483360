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
            "display_name": " \t ",
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
        ["display_name", "hourly_rate_cents", "password", "username"]
    );
    // Valid fields, but a contractor administrator: a rule, so 409.
    let mut body = new_user("con.admin");
    body["kind"] = json!("contractor");
    body["is_admin"] = json!(true);
    let r = create(&api, &root, body).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_error(&r.json, "conflict");
    assert_eq!(r.json["error"]["rule"], "contractor_cannot_be_admin");

    // Read one; unknown id is 404.
    let r = api.get(&format!("/api/v1/users/{bea}"), &root).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["username"], "bea.tech");
    let r = api.get("/api/v1/users/no-such-id", &root).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(!r.no_route);
    assert_error(&r.json, "not_found");
    // An id with a NUL (which PostgreSQL text cannot hold) names no user.
    let nul = "/api/v1/users/a%00b";
    for (method, uri, body) in [
        (Method::GET, nul.to_owned(), None),
        (
            Method::PATCH,
            nul.to_owned(),
            Some(json!({ "disabled": true })),
        ),
        (
            Method::PUT,
            format!("{nul}/sites/north"),
            Some(json!({ "role": "viewer" })),
        ),
        (Method::DELETE, format!("{nul}/sites/north"), None),
    ] {
        let r = api.send(method.clone(), &uri, Some(&root), body).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {uri}: {}",
            r.text
        );
        assert_error(&r.json, "not_found");
    }

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
        "username_prefix=a%00",
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

/// What the document says of each user field is what the hub enforces:
/// values at each documented bound are accepted, one step past refused.
#[tokio::test]
async fn field_bounds_match_the_document() {
    use crate::api::auth::MAX_PASSWORD_CHARS;
    use crate::api::users::{MAX_DISPLAY_NAME_CHARS, MAX_RATE_CENTS};
    let api = TestApi::sqlite().await;
    let root = api.admin().await;
    let mut n = 0;
    let mut try_create = |field: &str, value: Value| {
        n += 1;
        let mut body = new_user(&format!("user{n}"));
        body[field] = value;
        body
    };
    let long_name = format!("a{}", "b".repeat(63));
    for (field, value, accepted) in [
        ("username", json!(long_name), true),
        ("username", json!(format!("{long_name}c")), false),
        ("username", json!("Upper.Case_9-x"), true),
        ("username", json!("9lives"), true),
        ("username", json!(""), false),
        ("username", json!(" padded"), false),
        ("username", json!("padded "), false),
        ("username", json!(".dot"), false),
        ("username", json!("_under"), false),
        ("username", json!("a b"), false),
        ("username", json!("ümlaut"), false),
        (
            "display_name",
            json!("x".repeat(MAX_DISPLAY_NAME_CHARS)),
            true,
        ),
        (
            "display_name",
            json!("é".repeat(MAX_DISPLAY_NAME_CHARS)),
            true,
        ),
        (
            "display_name",
            json!("x".repeat(MAX_DISPLAY_NAME_CHARS + 1)),
            false,
        ),
        ("display_name", json!("  Ada  "), true),
        ("display_name", json!("\u{3000}Ada"), true),
        ("display_name", json!(""), false),
        ("display_name", json!("   "), false),
        ("display_name", json!("\u{a0}\u{2003}\u{3000}"), false),
        ("display_name", json!("Ada\nLovelace"), false),
        ("display_name", json!("Ada\u{7f}"), false),
        ("display_name", json!("Ada\u{85}"), false),
        ("display_name", json!(null), true),
        ("password", json!("x".repeat(12)), true),
        ("password", json!("x".repeat(11)), false),
        ("password", json!("😀".repeat(MAX_PASSWORD_CHARS)), true),
        ("password", json!("x".repeat(MAX_PASSWORD_CHARS + 1)), false),
        ("hourly_rate_cents", json!(0), true),
        ("hourly_rate_cents", json!(MAX_RATE_CENTS), true),
        ("hourly_rate_cents", json!(MAX_RATE_CENTS + 1), false),
        ("hourly_rate_cents", json!(-1), false),
        ("hourly_rate_cents", json!(1.5), false),
        ("hourly_rate_cents", json!(5000.0), true),
        ("kind", json!(null), false),
        ("kind", json!(5), false),
        ("kind", json!(false), false),
        ("kind", json!([]), false),
        ("kind", json!("contractor"), true),
    ] {
        let body = try_create(field, value.clone());
        let r = create(&api, &root, body).await;
        let what = format!(
            "{field} = {}",
            value.to_string().chars().take(40).collect::<String>()
        );
        if accepted {
            assert_eq!(r.status, StatusCode::CREATED, "{what}: {}", r.text);
        } else {
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{what}: {}",
                r.text
            );
            assert_eq!(
                r.json["error"]["fields"][0]["field"], field,
                "{what}: {}",
                r.text
            );
        }
    }
    // Stored as normalised: lower-cased username, trimmed display name.
    let r = create(
        &api,
        &root,
        json!({ "username": "Mixed.Case", "display_name": "\u{3000} Ada L. ", "password": "long enough pw" }),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["username"], "mixed.case");
    assert_eq!(r.json["display_name"], "Ada L.");

    // The same rules on PATCH.
    let uri = format!("/api/v1/users/{}", r.json["id"].as_str().unwrap());
    for (body, accepted) in [
        (json!({ "display_name": "   " }), false),
        (json!({ "display_name": "Ada\u{1}" }), false),
        (
            json!({ "display_name": "y".repeat(MAX_DISPLAY_NAME_CHARS) }),
            true,
        ),
        (json!({ "hourly_rate_cents": MAX_RATE_CENTS + 1 }), false),
        (json!({ "hourly_rate_cents": MAX_RATE_CENTS }), true),
        (json!({ "password": "x".repeat(11) }), false),
        (
            json!({ "password": "x".repeat(MAX_PASSWORD_CHARS + 1) }),
            false,
        ),
        (json!({ "password": "ü".repeat(MAX_PASSWORD_CHARS) }), true),
        (json!({ "disabled": "yes" }), false),
        // Four nulls would be the four fields in order, to serde.
        (json!([null, null, null, null]), false),
    ] {
        let r = api
            .send(Method::PATCH, &uri, Some(&root), Some(body.clone()))
            .await;
        let expected = if accepted {
            StatusCode::OK
        } else {
            StatusCode::UNPROCESSABLE_ENTITY
        };
        let what: String = body.to_string().chars().take(60).collect();
        assert_eq!(r.status, expected, "{what}: {}", r.text);
    }
    // The longest password works for logging in; a longer one never does.
    let long = "ü".repeat(MAX_PASSWORD_CHARS);
    api.login_with("mixed.case", &long).await;
    let r = api
        .send(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({ "username": "mixed.case", "password": format!("{long}ü") })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
}

/// A site in a path or a query is a site name, or 400.
#[tokio::test]
async fn site_names_in_paths_and_queries() {
    let api = TestApi::sqlite().await;
    let root = api.admin().await;
    let bob = api.add_user("bob", UserKind::Staff, false, &[]).await;
    let longest = "s".repeat(64);
    let too_long = "s".repeat(65);
    for (site, valid) in [
        ("north", true),
        ("Site_A-1.b", true),
        (longest.as_str(), true),
        (too_long.as_str(), false),
        ("bad%20site", false),
        ("%C3%B6st", false),
        ("a%2Fb", false),
        ("a:b", false),
    ] {
        let status = |ok: StatusCode| if valid { ok } else { StatusCode::BAD_REQUEST };
        let uri = format!("/api/v1/users/{bob}/sites/{site}");
        let r = api
            .send(
                Method::PUT,
                &uri,
                Some(&root),
                Some(json!({ "role": "viewer" })),
            )
            .await;
        assert_eq!(r.status, status(StatusCode::OK), "PUT {site}: {}", r.text);
        let r = api.send(Method::DELETE, &uri, Some(&root), None).await;
        assert_eq!(
            r.status,
            status(StatusCode::NO_CONTENT),
            "DELETE {site}: {}",
            r.text
        );
        let r = api.get(&format!("/api/v1/users?site={site}"), &root).await;
        assert_eq!(
            r.status,
            status(StatusCode::OK),
            "GET ?site={site}: {}",
            r.text
        );
    }
}
