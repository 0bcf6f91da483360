//! `/api/v1/users`: user administration (fleet administrators only).
//!
//! Create, list, read and change users; grant and remove site roles. Every
//! change is audited in its own transaction with the user before and after
//! (never a password or hash). Disabling a user or resetting their password
//! revokes their tokens at once.

use super::auth::check_password;
use super::page::{self, Cursor};
use super::{ApiError, ApiJson, ApiQuery, AppState, ErrorBody, FieldError};
use crate::audit::{self, AuditEntry};
use crate::auth::{self, now_ms, require_fleet, token, Authenticated};
use crate::store::{NewUser, SortKey, Tx, UserFilter, UserUpdate, UserWithRoles, UsersPage};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use dcmms_shared::cmms::role::UserKind;
use dcmms_shared::cmms::{Permission, Role, SiteId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::telemetry::format_ms;

/// A role at a site (`dcmms_shared::cmms::Role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    Viewer,
    Technician,
    Supervisor,
    Admin,
}

impl From<Role> for RoleName {
    fn from(r: Role) -> Self {
        match r {
            Role::Viewer => RoleName::Viewer,
            Role::Technician => RoleName::Technician,
            Role::Supervisor => RoleName::Supervisor,
            Role::Admin => RoleName::Admin,
        }
    }
}

impl From<RoleName> for Role {
    fn from(r: RoleName) -> Self {
        match r {
            RoleName::Viewer => Role::Viewer,
            RoleName::Technician => Role::Technician,
            RoleName::Supervisor => Role::Supervisor,
            RoleName::Admin => Role::Admin,
        }
    }
}

/// Staff may be administrators; contractors see only their sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum KindName {
    #[default]
    Staff,
    Contractor,
}

impl From<UserKind> for KindName {
    fn from(k: UserKind) -> Self {
        match k {
            UserKind::Staff => KindName::Staff,
            UserKind::Contractor => KindName::Contractor,
        }
    }
}

impl From<KindName> for UserKind {
    fn from(k: KindName) -> Self {
        match k {
            KindName::Staff => UserKind::Staff,
            KindName::Contractor => UserKind::Contractor,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SiteRole {
    pub site: String,
    pub role: RoleName,
}

/// A user as the API shows it (and as audit entries record it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub kind: KindName,
    /// Administrator of the whole fleet.
    pub is_admin: bool,
    /// Labour cost per hour, in cents.
    pub hourly_rate_cents: i64,
    pub disabled: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Roles at given sites, by site name.
    pub sites: Vec<SiteRole>,
}

impl From<&UserWithRoles> for UserView {
    fn from(u: &UserWithRoles) -> Self {
        let r = &u.user;
        UserView {
            id: r.id.to_string(),
            username: r.username.clone(),
            display_name: r.display_name.clone(),
            kind: r.kind.into(),
            is_admin: r.is_admin,
            hourly_rate_cents: r.hourly_rate_cents,
            disabled: r.disabled,
            created_at: format_ms(r.created_ms),
            updated_at: format_ms(r.updated_ms),
            sites: u
                .sites
                .iter()
                .map(|(site, role)| SiteRole {
                    site: site.to_string(),
                    role: (*role).into(),
                })
                .collect(),
        }
    }
}

/// For audit entries.
pub(crate) fn view_json(u: &UserWithRoles) -> Option<serde_json::Value> {
    serde_json::to_value(UserView::from(u)).ok()
}

/// Most cents an hourly rate may be (a million per hour).
pub const MAX_RATE_CENTS: i64 = 100_000_000;
/// Most characters a display name may have.
pub const MAX_DISPLAY_NAME_CHARS: usize = 200;

// What the document says each field accepts, as JSON Schema patterns. The
// schema attributes below repeat them as literals (utoipa takes no
// constants); the tests hold the two, and the checks here, together.

/// `dcmms_shared::validate_name`: a site, device or point name.
pub const SITE_PATTERN: &str = "^[A-Za-z0-9._-]{1,64}$";
/// [`normalize_username`] before lower-casing.
pub const USERNAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";
/// [`check_display_name`]: no control character (Unicode `Cc`), and at
/// least one character that is not white space (Unicode `White_Space`).
pub const DISPLAY_NAME_PATTERN: &str = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$";

/// Checks and lower-cases a username: 1..=64 of `A-Z a-z 0-9 . _ -`,
/// starting with a letter or digit ([`USERNAME_PATTERN`]). Nothing is
/// trimmed: a name with spaces around it is refused, not repaired.
pub fn normalize_username(name: &str) -> Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(name.to_ascii_lowercase())
    } else {
        Err(
            "must be 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-', starting with a letter or digit"
                .into(),
        )
    }
}

/// Checks a display name ([`DISPLAY_NAME_PATTERN`], at most
/// [`MAX_DISPLAY_NAME_CHARS`]) and returns it without surrounding white
/// space, as it is stored.
pub(crate) fn check_display_name(name: &str) -> Result<String, String> {
    if name.chars().count() > MAX_DISPLAY_NAME_CHARS
        || name.chars().any(char::is_control)
        || name.chars().all(char::is_whitespace)
    {
        Err(format!(
            "must be 1 to {MAX_DISPLAY_NAME_CHARS} characters, not all white space, \
             without control characters"
        ))
    } else {
        Ok(name.trim().to_owned())
    }
}

fn check_rate(cents: i64) -> Result<i64, String> {
    if (0..=MAX_RATE_CENTS).contains(&cents) {
        Ok(cents)
    } else {
        Err(format!("must be between 0 and {MAX_RATE_CENTS}"))
    }
}

/// A site name ([`SITE_PATTERN`]), or 400.
pub(crate) fn parse_site(site: &str) -> Result<SiteId, ApiError> {
    dcmms_shared::validate_name(site)
        .map(|()| SiteId::from(site))
        .map_err(|_| {
            ApiError::bad_request("a site name is 1 to 64 of A-Z, a-z, 0-9, '.', '_', '-'")
        })
}

/// Body of `POST /api/v1/users`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    /// 1..=64 of `A-Z a-z 0-9 . _ -`, starting with a letter or digit;
    /// stored lower-cased.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
    )]
    pub username: String,
    /// 1..=200 characters, not all white space, no control characters;
    /// stored without surrounding white space. Defaults to the username.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub display_name: Option<String>,
    /// 12..=256 characters.
    #[schema(min_length = 12, max_length = 256)]
    pub password: String,
    #[serde(default)]
    pub kind: KindName,
    /// Fleet administrator (staff only: a contractor cannot be one, 409
    /// `contractor_cannot_be_admin`).
    #[serde(default)]
    pub is_admin: bool,
    /// Labour cost per hour, in cents.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100000000)]
    pub hourly_rate_cents: i64,
}

/// Body of `PATCH /api/v1/users/{id}`; absent fields stay as they are.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    /// As in `CreateUser`.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$"
    )]
    pub display_name: Option<String>,
    #[schema(minimum = 0, maximum = 100000000)]
    pub hourly_rate_cents: Option<i64>,
    /// A disabled user cannot log in; their tokens are revoked.
    pub disabled: Option<bool>,
    /// Password reset (12..=256 characters); revokes the user's tokens.
    #[schema(min_length = 12, max_length = 256)]
    pub password: Option<String>,
}

/// Body of `PUT /api/v1/users/{id}/sites/{site}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSiteRole {
    pub role: RoleName,
}

/// Order of `GET /api/v1/users`; `-` sorts descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema, Default)]
pub enum UserSort {
    #[default]
    #[serde(rename = "username")]
    Username,
    #[serde(rename = "-username")]
    UsernameDesc,
    #[serde(rename = "created_at")]
    CreatedAt,
    #[serde(rename = "-created_at")]
    CreatedAtDesc,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserListParams {
    /// 1..=1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next` of the previous page (same `sort`).
    cursor: Option<String>,
    #[param(inline)]
    sort: Option<UserSort>,
    #[param(inline)]
    kind: Option<KindName>,
    disabled: Option<bool>,
    /// Users holding a role at this site.
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    site: Option<String>,
    /// Usernames starting with this.
    #[param(pattern = "^[^\\x00]*$")]
    username_prefix: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    pub users: Vec<UserView>,
    /// Cursor of the next page; null on the last.
    pub next: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SiteRoleGrant {
    pub user_id: String,
    pub site: String,
    pub role: RoleName,
}

fn admin(auth: &Authenticated) -> Result<(), ApiError> {
    require_fleet(&auth.access, Permission::ManageUsers)
}

fn entry(
    auth: &Authenticated,
    action: &'static str,
    user: &UserId,
    site: Option<SiteId>,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> AuditEntry {
    AuditEntry {
        at_ms: now_ms(),
        actor: auth.actor(),
        action,
        entity_kind: "user",
        entity_id: user.to_string(),
        site,
        before,
        after,
    }
}

/// A user id from a path. Ids are made by the hub and hold no NUL (which
/// PostgreSQL text cannot hold): one with a NUL names no user.
fn user_id(id: String) -> Result<UserId, ApiError> {
    if id.contains('\0') {
        Err(ApiError::not_found("no user with this id"))
    } else {
        Ok(UserId(id))
    }
}

/// Reads a user inside `tx`, or 404.
async fn locked(tx: &mut Tx, id: &UserId) -> Result<UserWithRoles, ApiError> {
    tx.user_for_update(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user with id {id}")))
}

/// List users (administrators).
#[utoipa::path(
    get, path = "/api/v1/users", tag = "users",
    params(UserListParams),
    responses((status = 200, description = "A page of users", body = UserList)),
    security(("bearer" = [])),
)]
pub async fn list_users(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiQuery(p): ApiQuery<UserListParams>,
) -> Result<Json<UserList>, ApiError> {
    admin(&auth)?;
    let limit = page::limit(p.limit)?;
    let sort = p.sort.unwrap_or_default();
    let (key, descending, tag) = match sort {
        UserSort::Username => (SortKey::Username, false, "users:username"),
        UserSort::UsernameDesc => (SortKey::Username, true, "users:-username"),
        UserSort::CreatedAt => (SortKey::CreatedAt, false, "users:created_at"),
        UserSort::CreatedAtDesc => (SortKey::CreatedAt, true, "users:-created_at"),
    };
    let after = match &p.cursor {
        None => None,
        Some(c) => {
            let c = Cursor::decode(c, tag, 2)?;
            if key == SortKey::CreatedAt && c.key[0].parse::<i64>().is_err() {
                return Err(ApiError::bad_request("`cursor` is not valid"));
            }
            Some((c.key[0].clone(), c.key[1].clone()))
        }
    };
    let filter = UserFilter {
        kind: p.kind.map(Into::into),
        disabled: p.disabled,
        site: p.site.as_deref().map(parse_site).transpose()?,
        username_prefix: page::text_filter("username_prefix", p.username_prefix)?
            .map(|s| s.to_ascii_lowercase()),
    };
    let rows = state
        .store
        .users(
            &filter,
            &UsersPage {
                sort: key,
                descending,
                after,
                fetch: limit + 1,
            },
        )
        .await?;
    let (rows, next) = page::split_page(rows, limit, |u| {
        let k = match key {
            SortKey::Username => u.user.username.clone(),
            SortKey::CreatedAt => u.user.created_ms.to_string(),
        };
        Cursor::new(tag, vec![k, u.user.id.to_string()])
    });
    Ok(Json(UserList {
        users: rows.iter().map(UserView::from).collect(),
        next,
    }))
}

/// Create a user (administrators).
#[utoipa::path(
    post, path = "/api/v1/users", tag = "users",
    request_body = CreateUser,
    responses(
        (status = 201, description = "Created", body = UserView),
        (status = 409, description = "`rule`: `username_taken`, or `contractor_cannot_be_admin` (`is_admin` with `kind` `contractor`)", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn create_user(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiJson(body): ApiJson<CreateUser>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    admin(&auth)?;
    let mut problems = Vec::new();
    let username = normalize_username(&body.username)
        .map_err(|m| problems.push(FieldError::new("username", m)))
        .ok();
    let display_name = check_display_name(body.display_name.as_deref().unwrap_or(&body.username))
        .map_err(|m| problems.push(FieldError::new("display_name", m)))
        .ok();
    if let Err(m) = check_password(&body.password) {
        problems.push(FieldError::new("password", m));
    }
    if let Err(m) = check_rate(body.hourly_rate_cents) {
        problems.push(FieldError::new("hourly_rate_cents", m));
    }
    ApiError::invalid(problems)?;
    if body.is_admin && body.kind == KindName::Contractor {
        return Err(ApiError::conflict(
            "contractor_cannot_be_admin",
            "a contractor cannot be an administrator",
        ));
    }
    let (Some(username), Some(display_name)) = (username, display_name) else {
        return Err(ApiError::bad_request("invalid user"));
    };
    let new = NewUser {
        id: UserId(token::new_id()?),
        username,
        display_name,
        password_hash: state.auth.hasher.hash(body.password).await?,
        kind: body.kind.into(),
        is_admin: body.is_admin,
        hourly_rate_cents: body.hourly_rate_cents,
        now_ms: now_ms(),
    };
    let mut tx = state.store.transaction().await?;
    match tx.insert_user(&new).await {
        Err(e) if e.is_unique_violation() => {
            return Err(ApiError::conflict(
                "username_taken",
                format!("the username {} is taken", new.username),
            ))
        }
        r => r?,
    }
    let created = locked(&mut tx, &new.id).await?;
    audit::record(
        &mut tx,
        &entry(
            &auth,
            "user.create",
            &new.id,
            None,
            None,
            view_json(&created),
        ),
    )
    .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(UserView::from(&created))))
}

/// One user (administrators).
#[utoipa::path(
    get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path, description = "User id")),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 404, description = "No such user", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get_user(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
) -> Result<Json<UserView>, ApiError> {
    admin(&auth)?;
    let user = state
        .store
        .user(&user_id(id.clone())?)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user with id {id}")))?;
    Ok(Json(UserView::from(&user)))
}

/// Change a user's display name, rate, disabled flag or password
/// (administrators).
#[utoipa::path(
    patch, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path, description = "User id")),
    request_body = PatchUser,
    responses(
        (status = 200, description = "The user after the change", body = UserView),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 409, description = "`rule`: `last_admin` (the last enabled administrator cannot be disabled)", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn patch_user(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PatchUser>,
) -> Result<Json<UserView>, ApiError> {
    admin(&auth)?;
    let id = user_id(id)?;
    let mut problems = Vec::new();
    let display_name = match &body.display_name {
        None => None,
        Some(n) => check_display_name(n)
            .map_err(|m| problems.push(FieldError::new("display_name", m)))
            .ok(),
    };
    if let Some(Err(m)) = body.hourly_rate_cents.map(check_rate) {
        problems.push(FieldError::new("hourly_rate_cents", m));
    }
    if let Some(Err(m)) = body.password.as_deref().map(check_password) {
        problems.push(FieldError::new("password", m));
    }
    ApiError::invalid(problems)?;
    // Hash before the transaction: it is slow and needs no lock.
    let password_hash = match body.password {
        Some(p) => Some(state.auth.hasher.hash(p).await?),
        None => None,
    };
    let reset = password_hash.is_some();
    let change = UserUpdate {
        display_name,
        hourly_rate_cents: body.hourly_rate_cents,
        disabled: body.disabled,
        password_hash,
    };

    let mut tx = state.store.transaction().await?;
    let before = locked(&mut tx, &id).await?;
    let disabling = change.disabled == Some(true) && !before.user.disabled;
    if disabling && before.user.is_admin && tx.other_enabled_admins(&id).await? == 0 {
        return Err(ApiError::conflict(
            "last_admin",
            "the last enabled administrator cannot be disabled",
        ));
    }
    tx.update_user(&id, &change, now_ms()).await?;
    let after = locked(&mut tx, &id).await?;
    // `updated_at` alone (a password reset) is not a change worth an entry.
    let mut unchanged = UserView::from(&before);
    unchanged.updated_at = format_ms(after.user.updated_ms);
    if unchanged != UserView::from(&after) {
        let (b, a) = (view_json(&before), view_json(&after));
        audit::record(&mut tx, &entry(&auth, "user.update", &id, None, b, a)).await?;
    }
    if reset || disabling {
        let revoked = tx.revoke_user_tokens(&id, None).await?;
        if reset {
            audit::record(
                &mut tx,
                &entry(
                    &auth,
                    "user.password_reset",
                    &id,
                    None,
                    None,
                    Some(json!({ "tokens_revoked": revoked })),
                ),
            )
            .await?;
        } else if revoked > 0 {
            audit::record(
                &mut tx,
                &entry(
                    &auth,
                    "user.tokens_revoke",
                    &id,
                    None,
                    None,
                    Some(json!({ "tokens_revoked": revoked })),
                ),
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(Json(UserView::from(&after)))
}

/// Grant or change a user's role at a site (administrators).
#[utoipa::path(
    put, path = "/api/v1/users/{id}/sites/{site}", tag = "users",
    params(
        ("id" = String, Path, description = "User id"),
        ("site" = String, Path, description = "Site name", pattern = "^[A-Za-z0-9._-]{1,64}$"),
    ),
    request_body = SetSiteRole,
    responses(
        (status = 200, description = "The grant", body = SiteRoleGrant),
        (status = 400, description = "Not a valid site name, or the body is not valid JSON", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 422, description = "Unknown role", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn put_site_role(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((id, site)): Path<(String, String)>,
    ApiJson(body): ApiJson<SetSiteRole>,
) -> Result<Json<SiteRoleGrant>, ApiError> {
    admin(&auth)?;
    let site = parse_site(&site)?;
    let id = user_id(id)?;
    let role = Role::from(body.role);
    let mut tx = state.store.transaction().await?;
    let before = locked(&mut tx, &id).await?;
    let old = before.sites.get(&site).copied();
    if old != Some(role) {
        tx.set_site_role(&id, &site, role, now_ms()).await?;
        audit::record(
            &mut tx,
            &entry(
                &auth,
                "user.site_role_set",
                &id,
                Some(site.clone()),
                old.map(|r| json!({ "role": r.as_str() })),
                Some(json!({ "role": role.as_str() })),
            ),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Json(SiteRoleGrant {
        user_id: id.to_string(),
        site: site.to_string(),
        role: body.role,
    }))
}

/// Remove a user's role at a site (administrators).
#[utoipa::path(
    delete, path = "/api/v1/users/{id}/sites/{site}", tag = "users",
    params(
        ("id" = String, Path, description = "User id"),
        ("site" = String, Path, description = "Site name", pattern = "^[A-Za-z0-9._-]{1,64}$"),
    ),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Not a valid site name", body = ErrorBody),
        (status = 404, description = "No such user or no role at that site", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn delete_site_role(
    State(state): State<AppState>,
    auth: Authenticated,
    Path((id, site)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    admin(&auth)?;
    let site = parse_site(&site)?;
    let id = user_id(id)?;
    let mut tx = state.store.transaction().await?;
    let before = locked(&mut tx, &id).await?;
    let Some(old) = before.sites.get(&site).copied() else {
        return Err(ApiError::not_found(format!(
            "user {id} has no role at site {site}"
        )));
    };
    tx.remove_site_role(&id, &site).await?;
    audit::record(
        &mut tx,
        &entry(
            &auth,
            "user.site_role_remove",
            &id,
            Some(site),
            Some(json!({ "role": old.as_str() })),
            None,
        ),
    )
    .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether `auth` is a fleet administrator (for other modules).
pub(crate) fn is_admin(auth: &Authenticated) -> bool {
    auth::holds_fleet(&auth.access, Permission::ManageUsers)
}
