//! Users, their per-site roles and their API tokens: every statement the
//! authentication and user-administration paths run.
//!
//! Reads take the pool; writes take an open [`Tx`] so that the caller can
//! add the audit entry that describes them to the same transaction. Only
//! hashes are stored: the argon2id PHC string of a password and the SHA-256
//! of a bearer token. Nothing here decides who may do what.

use super::{both, Store, StoreError, Tx};
use dcmms_shared::cmms::role::UserKind;
use dcmms_shared::cmms::{Access, Role, SiteId, UserId};
use sqlx::QueryBuilder;
use std::collections::BTreeMap;

/// A user as stored, without the password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub kind: UserKind,
    pub is_admin: bool,
    pub hourly_rate_cents: i64,
    pub disabled: bool,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// A user and the roles granted at given sites.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserWithRoles {
    pub user: UserRow,
    pub sites: BTreeMap<SiteId, Role>,
}

impl UserWithRoles {
    /// What the user may see and do: administrators hold the admin role
    /// fleet-wide, everyone else only their site roles.
    pub fn access(&self) -> Access {
        let u = &self.user;
        let mut access = match u.kind {
            UserKind::Contractor => Access::contractor(u.id.clone(), self.sites.clone()),
            UserKind::Staff => Access::staff(u.id.clone(), self.sites.clone()),
        };
        if u.is_admin && u.kind == UserKind::Staff {
            access.fleet_role = Some(Role::Admin);
        }
        access
    }
}

/// A user to insert.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub password_hash: String,
    pub kind: UserKind,
    pub is_admin: bool,
    pub hourly_rate_cents: i64,
    pub now_ms: i64,
}

/// Fields to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub display_name: Option<String>,
    pub hourly_rate_cents: Option<i64>,
    pub disabled: Option<bool>,
    pub password_hash: Option<String>,
}

/// A live or dead token, without its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: String,
    pub user_id: UserId,
    pub created_ms: i64,
    pub expires_ms: i64,
    pub last_used_ms: Option<i64>,
}

/// Order of the user list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Username,
    CreatedAt,
}

/// Filters of the user list; every given one must match.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub kind: Option<UserKind>,
    pub disabled: Option<bool>,
    /// Users holding a role at this site.
    pub site: Option<SiteId>,
    /// Username prefix (lower case).
    pub username_prefix: Option<String>,
}

/// Keyset page request: the sort key and id of the last row already seen.
#[derive(Debug, Clone)]
pub struct UsersPage {
    pub sort: SortKey,
    pub descending: bool,
    /// `(sort key as text, id)` of the last row of the previous page.
    pub after: Option<(String, String)>,
    /// Rows to fetch (the caller asks one more than it shows).
    pub fetch: u32,
}

pub fn kind_str(kind: UserKind) -> &'static str {
    match kind {
        UserKind::Staff => "staff",
        UserKind::Contractor => "contractor",
    }
}

pub fn parse_kind(s: &str) -> Option<UserKind> {
    match s {
        "staff" => Some(UserKind::Staff),
        "contractor" => Some(UserKind::Contractor),
        _ => None,
    }
}

pub fn parse_role(s: &str) -> Option<Role> {
    Role::ALL.into_iter().find(|r| r.as_str() == s)
}

const USER_COLUMNS: &str = "u.id, u.username, u.display_name, u.kind, u.is_admin, \
                            u.hourly_rate_cents, u.disabled, u.created_ms, u.updated_ms";

#[derive(sqlx::FromRow)]
struct UserDbRow {
    id: String,
    username: String,
    display_name: String,
    kind: String,
    is_admin: bool,
    hourly_rate_cents: i64,
    disabled: bool,
    created_ms: i64,
    updated_ms: i64,
}

impl TryFrom<UserDbRow> for UserRow {
    type Error = StoreError;
    fn try_from(r: UserDbRow) -> Result<Self, StoreError> {
        let kind = parse_kind(&r.kind)
            .ok_or_else(|| StoreError::Corrupt(format!("user {} has kind {:?}", r.id, r.kind)))?;
        Ok(UserRow {
            id: UserId(r.id),
            username: r.username,
            display_name: r.display_name,
            kind,
            is_admin: r.is_admin,
            hourly_rate_cents: r.hourly_rate_cents,
            disabled: r.disabled,
            created_ms: r.created_ms,
            updated_ms: r.updated_ms,
        })
    }
}

fn roles_from(
    rows: Vec<(String, String, String)>,
) -> Result<Vec<(UserId, SiteId, Role)>, StoreError> {
    rows.into_iter()
        .map(|(user, site, role)| {
            let r = parse_role(&role).ok_or_else(|| {
                StoreError::Corrupt(format!("user {user} has role {role:?} at {site}"))
            })?;
            Ok((UserId(user), SiteId(site), r))
        })
        .collect()
}

fn attach_roles(users: Vec<UserRow>, roles: Vec<(UserId, SiteId, Role)>) -> Vec<UserWithRoles> {
    let mut by_user: BTreeMap<UserId, BTreeMap<SiteId, Role>> = BTreeMap::new();
    for (user, site, role) in roles {
        by_user.entry(user).or_default().insert(site, role);
    }
    users
        .into_iter()
        .map(|user| UserWithRoles {
            sites: by_user.remove(&user.id).unwrap_or_default(),
            user,
        })
        .collect()
}

impl Store {
    /// One user with their site roles.
    pub async fn user(&self, id: &UserId) -> Result<Option<UserWithRoles>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1");
        let row: Option<UserDbRow> = both!(self, Store, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id.as_str()).fetch_optional(p).await?
        });
        let Some(row) = row else { return Ok(None) };
        let user = UserRow::try_from(row)?;
        let roles = self.roles_of(std::slice::from_ref(&user.id)).await?;
        Ok(attach_roles(vec![user], roles).pop())
    }

    /// A user and their password hash, for login (`username` as stored).
    pub async fn user_credentials(
        &self,
        username: &str,
    ) -> Result<Option<(UserRow, String)>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            user: UserDbRow,
            password_hash: String,
        }
        let sql =
            format!("SELECT {USER_COLUMNS}, u.password_hash FROM users u WHERE u.username = $1");
        let row: Option<Row> = both!(self, Store, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(username).fetch_optional(p).await?
        });
        row.map(|r| Ok((UserRow::try_from(r.user)?, r.password_hash)))
            .transpose()
    }

    async fn roles_of(&self, users: &[UserId]) -> Result<Vec<(UserId, SiteId, Role)>, StoreError> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, String, String)> = both!(self, Store, p => {
            let mut qb = QueryBuilder::new("SELECT user_id, site, role FROM user_site_roles WHERE user_id IN (");
            let mut list = qb.separated(", ");
            for u in users {
                list.push_bind(u.0.clone());
            }
            qb.push(") ORDER BY user_id, site");
            qb.build_query_as().fetch_all(p).await?
        });
        roles_from(rows)
    }

    /// A page of users, filtered and in keyset order.
    pub async fn users(
        &self,
        filter: &UserFilter,
        page: &UsersPage,
    ) -> Result<Vec<UserWithRoles>, StoreError> {
        let (column, cmp, order) = match (page.sort, page.descending) {
            (SortKey::Username, false) => ("u.username", ">", "u.username ASC, u.id ASC"),
            (SortKey::Username, true) => ("u.username", "<", "u.username DESC, u.id DESC"),
            (SortKey::CreatedAt, false) => ("u.created_ms", ">", "u.created_ms ASC, u.id ASC"),
            (SortKey::CreatedAt, true) => ("u.created_ms", "<", "u.created_ms DESC, u.id DESC"),
        };
        let after_created: Option<(i64, String)> = match (&page.after, page.sort) {
            (Some((key, id)), SortKey::CreatedAt) => Some((
                key.parse()
                    .map_err(|_| StoreError::Corrupt(format!("cursor key {key:?}")))?,
                id.clone(),
            )),
            _ => None,
        };
        let rows: Vec<UserDbRow> = both!(self, Store, p => {
            let mut qb = QueryBuilder::new(format!("SELECT {USER_COLUMNS} FROM users u WHERE TRUE"));
            if let Some(kind) = filter.kind {
                qb.push(" AND u.kind = ").push_bind(kind_str(kind));
            }
            if let Some(disabled) = filter.disabled {
                qb.push(" AND u.disabled = ").push_bind(disabled);
            }
            if let Some(site) = &filter.site {
                qb.push(" AND u.id IN (SELECT user_id FROM user_site_roles WHERE site = ")
                    .push_bind(site.0.clone())
                    .push(")");
            }
            if let Some(prefix) = &filter.username_prefix {
                let escaped = prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
                qb.push(" AND u.username LIKE ")
                    .push_bind(format!("{escaped}%"))
                    .push(" ESCAPE '\\'");
            }
            match (&page.after, &after_created) {
                (_, Some((key, id))) => {
                    qb.push(format!(" AND ({column}, u.id) {cmp} ("))
                        .push_bind(*key)
                        .push(", ")
                        .push_bind(id.clone())
                        .push(")");
                }
                (Some((key, id)), None) => {
                    qb.push(format!(" AND ({column}, u.id) {cmp} ("))
                        .push_bind(key.clone())
                        .push(", ")
                        .push_bind(id.clone())
                        .push(")");
                }
                (None, None) => {}
            }
            qb.push(format!(" ORDER BY {order} LIMIT "))
                .push_bind(i64::from(page.fetch));
            qb.build_query_as().fetch_all(p).await?
        });
        let users = rows
            .into_iter()
            .map(UserRow::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let ids: Vec<UserId> = users.iter().map(|u| u.id.clone()).collect();
        let roles = self.roles_of(&ids).await?;
        Ok(attach_roles(users, roles))
    }

    /// Whether any administrator account exists (enabled or not).
    pub async fn has_admin(&self) -> Result<bool, StoreError> {
        let n: i64 = both!(self, Store, p => {
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE is_admin")
                .fetch_one(p)
                .await?
        });
        Ok(n > 0)
    }

    /// The live token with this hash (not revoked; expiry is the caller's
    /// to check) and its user.
    pub async fn token_session(
        &self,
        token_sha256: &str,
    ) -> Result<Option<(TokenRow, UserWithRoles)>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            token_id: String,
            token_created_ms: i64,
            expires_ms: i64,
            last_used_ms: Option<i64>,
            #[sqlx(flatten)]
            user: UserDbRow,
        }
        let sql = format!(
            "SELECT t.id AS token_id, t.created_ms AS token_created_ms, t.expires_ms, t.last_used_ms, \
             {USER_COLUMNS} FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_sha256 = $1 AND NOT t.revoked"
        );
        let row: Option<Row> = both!(self, Store, p => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(token_sha256).fetch_optional(p).await?
        });
        let Some(row) = row else { return Ok(None) };
        let user = UserRow::try_from(row.user)?;
        let token = TokenRow {
            id: row.token_id,
            user_id: user.id.clone(),
            created_ms: row.token_created_ms,
            expires_ms: row.expires_ms,
            last_used_ms: row.last_used_ms,
        };
        let roles = self.roles_of(std::slice::from_ref(&user.id)).await?;
        let user = attach_roles(vec![user], roles)
            .pop()
            .ok_or_else(|| StoreError::Corrupt("user vanished".into()))?;
        Ok(Some((token, user)))
    }

    /// Records that a token was used (not audited: it changes nothing).
    pub async fn touch_token(&self, token_id: &str, now_ms: i64) -> Result<(), StoreError> {
        both!(self, Store, p => {
            sqlx::query("UPDATE api_tokens SET last_used_ms = $2 WHERE id = $1")
                .bind(token_id)
                .bind(now_ms)
                .execute(p)
                .await?;
        });
        Ok(())
    }
}

impl Tx {
    /// Reads a user inside the transaction (locking the row on PostgreSQL;
    /// SQLite's write transaction already excludes other writers), for the
    /// "before" of an audit entry.
    pub async fn user_for_update(
        &mut self,
        id: &UserId,
    ) -> Result<Option<UserWithRoles>, StoreError> {
        let sql = match self {
            Tx::Sqlite(_) => format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1"),
            Tx::Postgres(_) => {
                format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = $1 FOR UPDATE")
            }
        };
        let row: Option<UserDbRow> = both!(self, Tx, t => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id.as_str()).fetch_optional(&mut **t).await?
        });
        let Some(row) = row else { return Ok(None) };
        let user = UserRow::try_from(row)?;
        let rows: Vec<(String, String, String)> = both!(self, Tx, t => {
            sqlx::query_as("SELECT user_id, site, role FROM user_site_roles WHERE user_id = $1 ORDER BY site")
                .bind(id.as_str())
                .fetch_all(&mut **t)
                .await?
        });
        Ok(attach_roles(vec![user], roles_from(rows)?).pop())
    }

    pub async fn insert_user(&mut self, u: &NewUser) -> Result<(), StoreError> {
        let sql = "INSERT INTO users (id, username, display_name, password_hash, kind, is_admin, \
                   hourly_rate_cents, disabled, created_ms, updated_ms) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, FALSE, $8, $8)";
        both!(self, Tx, t => {
            sqlx::query(sql)
                .bind(u.id.as_str())
                .bind(&u.username)
                .bind(&u.display_name)
                .bind(&u.password_hash)
                .bind(kind_str(u.kind))
                .bind(u.is_admin)
                .bind(u.hourly_rate_cents)
                .bind(u.now_ms)
                .execute(&mut **t)
                .await?;
        });
        Ok(())
    }

    /// Applies the given fields; returns false when there is no such user.
    pub async fn update_user(
        &mut self,
        id: &UserId,
        change: &UserUpdate,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let sql = "UPDATE users SET \
                   display_name = COALESCE($2, display_name), \
                   hourly_rate_cents = COALESCE($3, hourly_rate_cents), \
                   disabled = COALESCE($4, disabled), \
                   password_hash = COALESCE($5, password_hash), \
                   updated_ms = $6 WHERE id = $1";
        let n = both!(self, Tx, t => {
            sqlx::query(sql)
                .bind(id.as_str())
                .bind(change.display_name.as_deref())
                .bind(change.hourly_rate_cents)
                .bind(change.disabled)
                .bind(change.password_hash.as_deref())
                .bind(now_ms)
                .execute(&mut **t)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Enabled administrators other than `except`.
    pub async fn other_enabled_admins(&mut self, except: &UserId) -> Result<i64, StoreError> {
        Ok(both!(self, Tx, t => {
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE is_admin AND NOT disabled AND id <> $1")
                .bind(except.as_str())
                .fetch_one(&mut **t)
                .await?
        }))
    }

    /// Grants (or changes) a user's role at a site.
    pub async fn set_site_role(
        &mut self,
        user: &UserId,
        site: &SiteId,
        role: Role,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO user_site_roles (user_id, site, role, granted_ms) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (user_id, site) DO UPDATE SET role = excluded.role, granted_ms = excluded.granted_ms";
        both!(self, Tx, t => {
            sqlx::query(sql)
                .bind(user.as_str())
                .bind(site.as_str())
                .bind(role.as_str())
                .bind(now_ms)
                .execute(&mut **t)
                .await?;
        });
        Ok(())
    }

    /// Removes a user's role at a site; returns false when there was none.
    pub async fn remove_site_role(
        &mut self,
        user: &UserId,
        site: &SiteId,
    ) -> Result<bool, StoreError> {
        let n = both!(self, Tx, t => {
            sqlx::query("DELETE FROM user_site_roles WHERE user_id = $1 AND site = $2")
                .bind(user.as_str())
                .bind(site.as_str())
                .execute(&mut **t)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    pub async fn insert_token(
        &mut self,
        id: &str,
        user: &UserId,
        token_sha256: &str,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<(), StoreError> {
        let sql = "INSERT INTO api_tokens (id, user_id, token_sha256, created_ms, expires_ms) \
                   VALUES ($1, $2, $3, $4, $5)";
        both!(self, Tx, t => {
            sqlx::query(sql)
                .bind(id)
                .bind(user.as_str())
                .bind(token_sha256)
                .bind(now_ms)
                .bind(expires_ms)
                .execute(&mut **t)
                .await?;
        });
        Ok(())
    }

    /// Revokes one token; returns false when it was already revoked.
    pub async fn revoke_token(&mut self, id: &str) -> Result<bool, StoreError> {
        let n = both!(self, Tx, t => {
            sqlx::query("UPDATE api_tokens SET revoked = TRUE WHERE id = $1 AND NOT revoked")
                .bind(id)
                .execute(&mut **t)
                .await?
                .rows_affected()
        });
        Ok(n == 1)
    }

    /// Revokes every live token of a user but `keep`; returns how many.
    pub async fn revoke_user_tokens(
        &mut self,
        user: &UserId,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let sql = "UPDATE api_tokens SET revoked = TRUE \
                   WHERE user_id = $1 AND NOT revoked AND ($2 IS NULL OR id <> $2)";
        Ok(both!(self, Tx, t => {
            sqlx::query(sql)
                .bind(user.as_str())
                .bind(keep)
                .execute(&mut **t)
                .await?
                .rows_affected()
        }))
    }
}
