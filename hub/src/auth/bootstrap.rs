//! The first administrator: there is no default password.
//!
//! At start, when no administrator account exists, the hub creates `admin`
//! with the password from `DCMMS_ADMIN_PASSWORD` (12 to 256 characters,
//! or the hub refuses to start), or with a random one that the caller shows
//! once (the binary prints it to stderr in a marked block, never through
//! the log). Once an administrator exists, nothing here runs again.

use super::password::{check_policy, Hasher, PasswordError};
use super::token::{self, RandomError};
use crate::api::users::UserView;
use crate::audit::{self, AuditActor, AuditEntry};
use crate::store::{NewUser, Store, StoreError};
use dcmms_shared::cmms::role::UserKind;
use dcmms_shared::cmms::UserId;

pub const ADMIN_USERNAME: &str = "admin";
pub const ADMIN_PASSWORD_ENV: &str = "DCMMS_ADMIN_PASSWORD";

/// What [`ensure_admin`] did.
pub enum AdminBootstrap {
    /// An administrator already existed; nothing changed.
    Existing,
    /// `admin` was created; `generated` holds its password when the hub
    /// made it up (show it once, then drop it).
    Created { generated: Option<String> },
}

impl std::fmt::Debug for AdminBootstrap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminBootstrap::Existing => f.write_str("Existing"),
            AdminBootstrap::Created { generated } => f
                .debug_struct("Created")
                .field("generated", &generated.as_ref().map(|_| "<secret>"))
                .finish(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootstrapError {
    #[error("{ADMIN_PASSWORD_ENV} {0} (it becomes the password of user `{ADMIN_USERNAME}`)")]
    WeakPassword(String),
    #[error("no administrator exists and the username `{ADMIN_USERNAME}` belongs to another user")]
    UsernameTaken,
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Password(#[from] PasswordError),
    #[error("{0}")]
    Random(#[from] RandomError),
}

/// Creates the first administrator if there is none; `supplied` is the
/// value of [`ADMIN_PASSWORD_ENV`], if set.
pub async fn ensure_admin(
    store: &Store,
    hasher: &Hasher,
    supplied: Option<&str>,
) -> Result<AdminBootstrap, BootstrapError> {
    if store.has_admin().await? {
        if supplied.is_some() {
            tracing::info!("{ADMIN_PASSWORD_ENV} is ignored: an administrator account exists");
        }
        return Ok(AdminBootstrap::Existing);
    }
    let (password, generated) = match supplied {
        Some(p) => {
            check_policy(p).map_err(BootstrapError::WeakPassword)?;
            (p.to_owned(), None)
        }
        None => {
            let p = token::generate_password()?;
            (p.clone(), Some(p))
        }
    };
    let now = super::now_ms();
    let user = NewUser {
        id: UserId(token::new_id()?),
        username: ADMIN_USERNAME.to_owned(),
        display_name: "Administrator".to_owned(),
        password_hash: hasher.hash(password).await?,
        kind: UserKind::Staff,
        is_admin: true,
        hourly_rate_cents: 0,
        now_ms: now,
    };
    let mut tx = store.transaction().await?;
    if let Err(e) = tx.insert_user(&user).await {
        drop(tx);
        if e.is_unique_violation() {
            // Another hub on the same database may have just made one.
            if store.has_admin().await? {
                return Ok(AdminBootstrap::Existing);
            }
            return Err(BootstrapError::UsernameTaken);
        }
        return Err(e.into());
    }
    let created = tx
        .user_for_update(&user.id)
        .await?
        .ok_or_else(|| StoreError::Corrupt("new administrator not found".into()))?;
    audit::record(
        &mut tx,
        &AuditEntry {
            at_ms: now,
            actor: AuditActor::system(),
            action: "user.create",
            entity_kind: "user",
            entity_id: user.id.to_string(),
            site: None,
            before: None,
            after: serde_json::to_value(UserView::from(&created)).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    tracing::warn!(
        username = ADMIN_USERNAME,
        from_env = generated.is_none(),
        "created the first administrator account"
    );
    Ok(AdminBootstrap::Created { generated })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{AuditQuery, AuditScope};
    use crate::store::testing;

    async fn first_start(store: Store) {
        let hasher = Hasher::for_tests();
        // Too short: refused, nothing created.
        match ensure_admin(&store, &hasher, Some("eleven char")).await {
            Err(e @ BootstrapError::WeakPassword(_)) => {
                let text = e.to_string();
                assert!(
                    text.contains(ADMIN_PASSWORD_ENV) && text.contains("12"),
                    "{text}"
                );
                assert!(!text.contains("eleven char"), "{text}");
            }
            other => panic!("{other:?}"),
        }
        assert!(!store.has_admin().await.unwrap());

        // Generated: returned once, works, audited as the hub's own act.
        let AdminBootstrap::Created {
            generated: Some(password),
        } = ensure_admin(&store, &hasher, None).await.unwrap()
        else {
            panic!("expected a generated password");
        };
        let (user, hash) = store
            .user_credentials(ADMIN_USERNAME)
            .await
            .unwrap()
            .unwrap();
        assert!(user.is_admin && !user.disabled);
        assert!(hasher
            .verify(password.clone(), Some(hash.clone()))
            .await
            .unwrap());
        assert!(!hash.contains(&password));
        let entries = crate::audit::list(
            &store,
            &AuditQuery {
                scope: AuditScope::All,
                entity_kind: None,
                entity_id: None,
                actor_id: None,
                site: None,
                from_ms: None,
                to_ms: None,
                before_id: None,
                fetch: 10,
            },
        )
        .await
        .unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].action, "user.create");
        assert_eq!(entries[0].actor_id, None);
        assert_eq!(entries[0].actor_name, "system");
        assert_eq!(
            entries[0].after.as_ref().unwrap()["username"],
            ADMIN_USERNAME
        );

        // Later starts change nothing, whatever the environment says.
        for supplied in [None, Some("another long password"), Some("short")] {
            assert!(matches!(
                ensure_admin(&store, &hasher, supplied).await.unwrap(),
                AdminBootstrap::Existing
            ));
        }
        let (_, same) = store
            .user_credentials(ADMIN_USERNAME)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(same, hash);
    }

    #[tokio::test]
    async fn first_start_on_sqlite() {
        let (store, _dir) = testing::sqlite().await;
        first_start(store).await;
    }

    #[tokio::test]
    async fn first_start_on_postgres() {
        let (store, _pg) = testing::postgres().await;
        first_start(store).await;
    }

    #[tokio::test]
    async fn password_from_the_environment() {
        let (store, _dir) = testing::sqlite().await;
        let hasher = Hasher::for_tests();
        let created = ensure_admin(&store, &hasher, Some("from the environment"))
            .await
            .unwrap();
        assert!(matches!(
            created,
            AdminBootstrap::Created { generated: None }
        ));
        assert_eq!(format!("{created:?}"), "Created { generated: None }");
        let (_, hash) = store
            .user_credentials(ADMIN_USERNAME)
            .await
            .unwrap()
            .unwrap();
        assert!(hasher
            .verify("from the environment".into(), Some(hash))
            .await
            .unwrap());
    }

    /// A non-administrator already called `admin`: refuse rather than
    /// take over the account.
    #[tokio::test]
    async fn admin_name_taken_by_someone_else() {
        let (store, _dir) = testing::sqlite().await;
        let hasher = Hasher::for_tests();
        let mut tx = store.transaction().await.unwrap();
        tx.insert_user(&NewUser {
            id: UserId::from("u1"),
            username: ADMIN_USERNAME.to_owned(),
            display_name: "Not an admin".to_owned(),
            password_hash: hasher.hash("whatever it is".into()).await.unwrap(),
            kind: UserKind::Staff,
            is_admin: false,
            hourly_rate_cents: 0,
            now_ms: 1,
        })
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let err = ensure_admin(&store, &hasher, None).await.unwrap_err();
        assert!(matches!(err, BootstrapError::UsernameTaken), "{err}");
    }
}
