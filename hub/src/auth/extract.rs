//! The [`Authenticated`] extractor: the user behind a request's bearer token.
//!
//! A token is accepted when its hash is stored, it is not revoked, not
//! expired, and its user is not disabled; anything else is the same 401, so
//! a caller learns nothing about which check failed. The user's grants are
//! read on every request, so a changed role applies at once.

use crate::api::{ApiError, AppState};
use crate::audit::AuditActor;
use crate::auth::{now_ms, token};
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use dcmms_shared::cmms::Access;

/// `last_used` is written at most this often per token (it is a hint for
/// administrators, not worth a write per request).
const TOUCH_INTERVAL_MS: i64 = 60_000;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub access: Access,
    pub username: String,
    /// The presented token's id (to revoke it at logout).
    pub token_id: String,
}

impl Authenticated {
    /// The caller as the author of an audit entry.
    pub fn actor(&self) -> AuditActor {
        AuditActor::user(self.access.user.clone(), self.username.clone())
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(token::parse_bearer)
            .ok_or(ApiError::Unauthorized)?;
        let hash = token::sha256_hex(presented);
        let (tok, user) = state
            .store
            .token_session(&hash)
            .await?
            .ok_or(ApiError::Unauthorized)?;
        let now = now_ms();
        if now >= tok.expires_ms || user.user.disabled {
            return Err(ApiError::Unauthorized);
        }
        if tok
            .last_used_ms
            .is_none_or(|t| now.saturating_sub(t) >= TOUCH_INTERVAL_MS)
        {
            if let Err(e) = state.store.touch_token(&tok.id, now).await {
                // Not worth failing the request for.
                tracing::warn!(error = %e, "could not record token use");
            }
        }
        Ok(Authenticated {
            access: user.access(),
            username: user.user.username,
            token_id: tok.id,
        })
    }
}
