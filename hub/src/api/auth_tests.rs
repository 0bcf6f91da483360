//! Login, tokens, logout and password changes through the router.

use super::testing::{assert_error, password_of, TestApi};
use crate::auth::{now_ms, token};
use crate::metrics::Refusal;
use axum::http::{Method, StatusCode};
use dcmms_shared::cmms::role::UserKind;
use dcmms_shared::cmms::Role;
use serde_json::json;

async fn login_as(api: &TestApi, username: &str, password: &str) -> super::testing::Resp {
    api.send(
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({ "username": username, "password": password })),
    )
    .await
}

async fn login_and_tokens(api: TestApi) {
    let ana = api
        .add_user(
            "ana",
            UserKind::Staff,
            false,
            &[("north", Role::Technician)],
        )
        .await;
    let before = now_ms();
    let r = login_as(&api, "ANA", &password_of("ana")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let token = r.json["token"].as_str().unwrap().to_owned();
    assert!(
        token::parse_bearer(&format!("Bearer {token}")).is_some(),
        "{token}"
    );
    assert_eq!(r.json["token_type"], "Bearer");
    assert_eq!(r.json["user"]["username"], "ana");
    assert_eq!(
        r.json["user"]["sites"],
        json!([{ "site": "north", "role": "technician" }])
    );
    let expires =
        crate::api::telemetry::parse_time("x", r.json["expires_at"].as_str().unwrap()).unwrap();
    let ttl = expires - before;
    assert!(
        (12 * 3_600_000 - 5_000..=12 * 3_600_000 + 5_000).contains(&ttl),
        "{ttl}"
    );
    assert!(!r.text.contains("argon2"), "{}", r.text);

    let me = api.get("/api/v1/auth/me", &token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json["id"], ana.as_str());

    // The token is stored only as its hash, and its creation is audited.
    let audit = api.audit().await;
    let created = audit
        .iter()
        .find(|e| e.action == "api_token.create")
        .unwrap();
    assert_eq!(created.actor_id.as_deref(), Some(ana.as_str()));
    assert_eq!(created.entity_kind, "api_token");
    let dump = format!("{audit:?}");
    assert!(!dump.contains(&token) && !dump.contains(&token::sha256_hex(&token)));
    let found = api
        .store
        .token_session(&token::sha256_hex(&token))
        .await
        .unwrap();
    assert_eq!(found.unwrap().0.id, created.entity_id);

    // Logout revokes exactly the presented token.
    let other = api.login("ana").await;
    let r = api
        .send(Method::POST, "/api/v1/auth/logout", Some(&token), None)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    let r = api.get("/api/v1/auth/me", &token).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_error(&r.json, "unauthorized");
    assert_eq!(
        api.get("/api/v1/auth/me", &other).await.status,
        StatusCode::OK
    );
    let revoked = api.audit().await;
    let entry = revoked
        .iter()
        .find(|e| e.action == "api_token.revoke")
        .unwrap();
    assert_eq!(entry.entity_id, created.entity_id);
    assert_eq!(entry.after.as_ref().unwrap()["revoked"], true);

    // An expired token.
    let issued = token::issue().unwrap();
    let mut tx = api.store.transaction().await.unwrap();
    tx.insert_token(&issued.id, &ana, &issued.sha256, 1, now_ms() - 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let r = api.get("/api/v1/auth/me", &issued.secret).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.www_authenticate.as_deref(), Some("Bearer"));
}

#[tokio::test]
async fn login_and_tokens_on_sqlite() {
    login_and_tokens(TestApi::sqlite().await).await;
}

#[tokio::test]
async fn login_and_tokens_on_postgres() {
    login_and_tokens(TestApi::postgres().await).await;
}

/// Unknown user, wrong password, disabled account: one answer, counted.
#[tokio::test]
async fn failed_logins_look_alike() {
    let api = TestApi::sqlite().await;
    api.add_user("ana", UserKind::Staff, false, &[]).await;
    let off = api.add_user("old", UserKind::Staff, false, &[]).await;
    let mut tx = api.store.transaction().await.unwrap();
    tx.update_user(
        &off,
        &crate::store::UserUpdate {
            disabled: Some(true),
            ..Default::default()
        },
        1,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let entries_before = api.audit().await.len();

    let mut bodies = Vec::new();
    for (user, pw) in [
        ("ana", "wrong password!".to_owned()),
        ("nobody", password_of("nobody")),
        ("old", password_of("old")),
        ("not a name", "whatever".to_owned()),
        ("ana", "x".repeat(5000)),
    ] {
        let r = login_as(&api, user, &pw).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{user}: {}", r.text);
        assert_error(&r.json, "unauthorized");
        bodies.push(r.text);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    assert_eq!(api.metrics.logins_total("failed"), 5.0);
    assert_eq!(api.metrics.logins_total("ok"), 0.0);
    assert_eq!(
        api.audit().await.len(),
        entries_before,
        "failed logins change nothing"
    );
    api.login("ana").await;
    assert_eq!(api.metrics.logins_total("ok"), 1.0);
}

/// Requests without a usable token are one 401, counted.
#[tokio::test]
async fn bad_tokens_are_refused_and_counted() {
    let api = TestApi::sqlite().await;
    let ana = api.add_user("ana", UserKind::Staff, false, &[]).await;
    let token = api.login("ana").await;
    let forged = token::issue().unwrap().secret;
    for header in [
        None,
        Some("Bearer".to_owned()),
        Some(format!("Basic {token}")),
        Some(format!("Bearer {forged}")),
        Some("Bearer dcmms_123".to_owned()),
    ] {
        let mut req = axum::http::Request::get("/api/v1/gateways");
        if let Some(h) = &header {
            req = req.header(axum::http::header::AUTHORIZATION, h);
        }
        let r = api.raw(req.body(axum::body::Body::empty()).unwrap()).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{header:?}");
        assert_error(&r.json, "unauthorized");
        assert_eq!(r.www_authenticate.as_deref(), Some("Bearer"));
    }
    assert_eq!(api.metrics.refused_total(Refusal::Unauthorized), 5.0);

    // A disabled user's live token stops working at once.
    let mut tx = api.store.transaction().await.unwrap();
    tx.update_user(
        &ana,
        &crate::store::UserUpdate {
            disabled: Some(true),
            ..Default::default()
        },
        1,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        api.get("/api/v1/gateways", &token).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn changing_ones_own_password() {
    let api = TestApi::sqlite().await;
    let ana = api.add_user("ana", UserKind::Contractor, false, &[]).await;
    let token = api.login("ana").await;
    let other = api.login("ana").await;
    let change = |current: &str, new: &str| json!({ "current": current, "new": new });
    let r = api
        .send(
            Method::POST,
            "/api/v1/users/me/password",
            Some(&token),
            Some(change("not it at all", "a brand new secret")),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.json["error"]["fields"][0]["field"], "current");
    let r = api
        .send(
            Method::POST,
            "/api/v1/users/me/password",
            Some(&token),
            Some(change(&password_of("ana"), "short")),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    assert_eq!(r.json["error"]["fields"][0]["field"], "new");

    let r = api
        .send(
            Method::POST,
            "/api/v1/users/me/password",
            Some(&token),
            Some(change(&password_of("ana"), "a brand new secret")),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    // This session stays, the others end; the old password is gone.
    assert_eq!(
        api.get("/api/v1/auth/me", &token).await.status,
        StatusCode::OK
    );
    assert_eq!(
        api.get("/api/v1/auth/me", &other).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_as(&api, "ana", &password_of("ana")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_as(&api, "ana", "a brand new secret").await.status,
        StatusCode::OK
    );
    let audit = api.audit().await;
    let e = audit
        .iter()
        .find(|e| e.action == "user.password_change")
        .unwrap();
    assert_eq!(e.entity_id, ana.as_str());
    assert_eq!(e.after.as_ref().unwrap()["tokens_revoked"], 1);
    let dump = format!("{audit:?}");
    assert!(
        !dump.contains("brand new") && !dump.contains("argon2"),
        "{dump}"
    );
}
