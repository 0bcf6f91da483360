//! Test harness for the API: a router on a fresh database (either driver),
//! users made directly in the store, and requests with or without a token.

use super::{app, AppState, NoRoute};
use crate::auth::{AuthSettings, Hasher};
use crate::metrics::HubMetrics;
use crate::store::{testing, NewUser, Store};
use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use dcmms_shared::cmms::role::UserKind;
use dcmms_shared::cmms::{Role, SiteId, UserId};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// What keeps a test database alive.
#[allow(dead_code)]
pub enum Guard {
    Dir(tempfile::TempDir),
    Pg(dcmms_e2e::pg::PgCluster),
}

pub struct TestApi {
    pub app: Router,
    pub store: Store,
    pub metrics: HubMetrics,
    pub hasher: Hasher,
    _guard: Guard,
}

/// A response, taken apart.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub json: Value,
    pub text: String,
    /// The router's fallback answered (no route matched).
    pub no_route: bool,
    pub www_authenticate: Option<String>,
}

/// The password every test user gets.
pub fn password_of(username: &str) -> String {
    format!("password of {username}")
}

impl TestApi {
    pub async fn sqlite() -> TestApi {
        let (store, dir) = testing::sqlite().await;
        TestApi::on(store, Guard::Dir(dir))
    }

    pub async fn postgres() -> TestApi {
        let (store, pg) = testing::postgres().await;
        TestApi::on(store, Guard::Pg(pg))
    }

    pub fn on(store: Store, guard: Guard) -> TestApi {
        let metrics = HubMetrics::new();
        let hasher = Hasher::for_tests();
        let app = app(AppState {
            store: store.clone(),
            metrics: metrics.clone(),
            auth: AuthSettings {
                token_ttl_ms: 12 * 3_600_000,
                hasher: hasher.clone(),
            },
        });
        TestApi {
            app,
            store,
            metrics,
            hasher,
            _guard: guard,
        }
    }

    /// Creates a user straight in the store (no audit entry), with
    /// [`password_of`] as password.
    pub async fn add_user(
        &self,
        username: &str,
        kind: UserKind,
        is_admin: bool,
        sites: &[(&str, Role)],
    ) -> UserId {
        let id = UserId(crate::auth::token::new_id().unwrap());
        let mut tx = self.store.transaction().await.unwrap();
        tx.insert_user(&NewUser {
            id: id.clone(),
            username: username.to_owned(),
            display_name: username.to_uppercase(),
            password_hash: self.hasher.hash(password_of(username)).await.unwrap(),
            kind,
            is_admin,
            hourly_rate_cents: 0,
            now_ms: crate::auth::now_ms(),
        })
        .await
        .unwrap();
        for (site, role) in sites {
            tx.set_site_role(&id, &SiteId::from(*site), *role, 1)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        id
    }

    /// Logs `username` in with [`password_of`]; returns the token.
    pub async fn login(&self, username: &str) -> String {
        self.login_with(username, &password_of(username)).await
    }

    pub async fn login_with(&self, username: &str, password: &str) -> String {
        let r = self
            .send(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(serde_json::json!({ "username": username, "password": password })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        r.json["token"].as_str().unwrap().to_owned()
    }

    /// A fleet administrator `root`, logged in.
    pub async fn admin(&self) -> String {
        self.add_user("root", UserKind::Staff, true, &[]).await;
        self.login("root").await
    }

    pub async fn send(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        self.raw(req.unwrap()).await
    }

    pub async fn raw(&self, req: Request<Body>) -> Resp {
        call_app(&self.app, req).await
    }

    pub async fn get(&self, uri: &str, token: &str) -> Resp {
        self.send(Method::GET, uri, Some(token), None).await
    }

    /// Audit entries (all of them, newest first), read from the store.
    pub async fn audit(&self) -> Vec<crate::audit::AuditRow> {
        crate::audit::list(
            &self.store,
            &crate::audit::AuditQuery {
                scope: crate::audit::AuditScope::All,
                entity_kind: None,
                entity_id: None,
                actor_id: None,
                site: None,
                from_ms: None,
                to_ms: None,
                before_id: None,
                fetch: 10_000,
            },
        )
        .await
        .unwrap()
    }
}

pub async fn call_app(app: &Router, req: Request<Body>) -> Resp {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let no_route = resp.extensions().get::<NoRoute>().is_some();
    let www_authenticate = resp
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        json,
        text,
        no_route,
        www_authenticate,
    }
}

/// The response is the API's error shape with this code.
pub fn assert_error(json: &Value, code: &str) {
    assert_eq!(json["error"]["code"], code, "{json}");
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{json}"
    );
    assert_eq!(json.as_object().unwrap().len(), 1, "{json}");
}

/// A 403 naming `permission` (and `site`, if any).
pub fn assert_forbidden(r: &Resp, permission: Option<&str>, site: Option<&str>) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_error(&r.json, "forbidden");
    match permission {
        Some(p) => assert_eq!(r.json["error"]["permission"], p, "{}", r.text),
        None => assert!(r.json["error"].get("permission").is_none(), "{}", r.text),
    }
    match site {
        Some(s) => assert_eq!(r.json["error"]["site"], s, "{}", r.text),
        None => assert!(r.json["error"].get("site").is_none(), "{}", r.text),
    }
}
