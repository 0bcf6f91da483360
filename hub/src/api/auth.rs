//! `/api/v1/auth/*` and `/api/v1/users/me/password`: login, logout, the
//! caller's own account.
//!
//! A login answers one 401 for an unknown user, a wrong password and a
//! disabled account alike, after the same argon2 work, and counts it in
//! `dcmms_hub_logins_total{result="failed"}`. The token is in the answer
//! once; only its hash is stored. Token creation and revocation and
//! password changes are audited (never the token or the password).

use super::users::{normalize_username, UserView};
use super::{ApiError, ApiJson, AppState, ErrorBody, FieldError};
use crate::audit::{self, AuditEntry};
use crate::auth::{now_ms, password, token, Authenticated};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::telemetry::format_ms;

/// Body of `POST /api/v1/auth/login`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send it as `Authorization: Bearer <token>`. Shown only here.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub user: UserView,
}

/// Body of `POST /api/v1/users/me/password`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current: String,
    /// 12..=256 characters.
    #[schema(min_length = 12, max_length = 256)]
    pub new: String,
}

pub use crate::auth::password::MAX_PASSWORD_CHARS;

/// The password policy of the API: [`password::check_policy`] (12 to
/// [`MAX_PASSWORD_CHARS`] characters). The text is meant for the user.
pub(crate) fn check_password(candidate: &str) -> Result<(), String> {
    password::check_policy(candidate)
}

/// What a presented password is verified as: one longer than any the
/// policy lets through cannot match, and would cost more to hash, so it
/// becomes the empty string (which still gets the full verification work).
fn bounded(presented: String) -> String {
    if presented.chars().count() > MAX_PASSWORD_CHARS {
        String::new()
    } else {
        presented
    }
}

fn token_entry(
    auth_actor: crate::audit::AuditActor,
    action: &'static str,
    token_id: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> AuditEntry {
    AuditEntry {
        at_ms: now_ms(),
        actor: auth_actor,
        action,
        entity_kind: "api_token",
        entity_id: token_id.to_owned(),
        site: None,
        before,
        after,
    }
}

/// Exchange a username and password for a bearer token.
#[utoipa::path(
    post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Logged in", body = LoginResponse),
        (status = 401, description = "Unknown user, wrong password or disabled account (one answer for all)", body = ErrorBody),
    ),
)]
pub async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let creds = match normalize_username(&body.username) {
        Ok(u) => state.store.user_credentials(&u).await?,
        Err(_) => None,
    };
    let (user, hash) = match creds {
        Some((u, h)) => (Some(u), Some(h)),
        None => (None, None),
    };
    let matches = state
        .auth
        .hasher
        .verify(bounded(body.password), hash)
        .await?;
    let user = match user {
        Some(u) if matches && !u.disabled => u,
        _ => {
            state.metrics.login_failed();
            tracing::debug!("login refused");
            return Err(ApiError::BadCredentials);
        }
    };
    let issued = token::issue()?;
    let now = now_ms();
    let expires_ms = now.saturating_add(state.auth.token_ttl_ms);
    let mut tx = state.store.transaction().await?;
    tx.insert_token(&issued.id, &user.id, &issued.sha256, now, expires_ms)
        .await?;
    let actor = crate::audit::AuditActor::user(user.id.clone(), user.username.clone());
    audit::record(
        &mut tx,
        &token_entry(
            actor,
            "api_token.create",
            &issued.id,
            None,
            Some(json!({ "user_id": user.id, "expires_at": format_ms(expires_ms) })),
        ),
    )
    .await?;
    let with_roles = tx
        .user_for_update(&user.id)
        .await?
        .ok_or(ApiError::BadCredentials)?;
    tx.commit().await?;
    state.metrics.login_ok();
    tracing::info!(username = %user.username, "login");
    Ok(Json(LoginResponse {
        token: issued.secret,
        token_type: "Bearer".to_owned(),
        expires_at: format_ms(expires_ms),
        user: UserView::from(&with_roles),
    }))
}

/// Revoke the presented token.
#[utoipa::path(
    post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "The token no longer works")),
    security(("bearer" = [])),
)]
pub async fn logout(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<StatusCode, ApiError> {
    let mut tx = state.store.transaction().await?;
    if tx.revoke_token(&auth.token_id).await? {
        audit::record(
            &mut tx,
            &token_entry(
                auth.actor(),
                "api_token.revoke",
                &auth.token_id,
                Some(json!({ "user_id": auth.access.user, "revoked": false })),
                Some(json!({ "user_id": auth.access.user, "revoked": true })),
            ),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's account and site roles.
#[utoipa::path(
    get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, description = "The caller", body = UserView)),
    security(("bearer" = [])),
)]
pub async fn me(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<UserView>, ApiError> {
    let user = state
        .store
        .user(&auth.access.user)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    Ok(Json(UserView::from(&user)))
}

/// Change the caller's own password; their other tokens are revoked.
#[utoipa::path(
    post, path = "/api/v1/users/me/password", tag = "auth",
    request_body = ChangePassword,
    responses(
        (status = 204, description = "Changed"),
        (status = 422, description = "`current` does not match, or `new` is too weak", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn change_password(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiJson(body): ApiJson<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    check_password(&body.new).map_err(|m| ApiError::invalid_field("new", m))?;
    let id = auth.access.user.clone();
    let stored = state
        .store
        .user_credentials(&auth.username)
        .await?
        .map(|(_, hash)| hash);
    if !state
        .auth
        .hasher
        .verify(bounded(body.current), stored)
        .await?
    {
        return Err(ApiError::Invalid {
            message: "`current` is not your current password".to_owned(),
            fields: vec![FieldError::new("current", "is not your current password")],
        });
    }
    let hash = state.auth.hasher.hash(body.new).await?;
    let mut tx = state.store.transaction().await?;
    tx.update_user(
        &id,
        &crate::store::UserUpdate {
            password_hash: Some(hash),
            ..Default::default()
        },
        now_ms(),
    )
    .await?;
    let revoked = tx.revoke_user_tokens(&id, Some(&auth.token_id)).await?;
    audit::record(
        &mut tx,
        &AuditEntry {
            at_ms: now_ms(),
            actor: auth.actor(),
            action: "user.password_change",
            entity_kind: "user",
            entity_id: id.to_string(),
            site: None,
            before: None,
            after: Some(json!({ "tokens_revoked": revoked })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
