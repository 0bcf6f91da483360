//! The audit log: who changed what, when, with the entity before and after.
//!
//! Every write the API makes records one [`AuditEntry`] with [`record`]
//! inside the same [`Tx`] as the change, so a change without its entry (or
//! an entry without its change) is never committed. The table is
//! append-only in the database itself (triggers refuse UPDATE, DELETE and,
//! on PostgreSQL, TRUNCATE); this module only inserts and reads. Entries
//! never hold secrets: no password, hash or token.

use crate::store::{both, Store, StoreError, Tx};
use dcmms_shared::cmms::{SiteId, UserId};
use serde_json::Value;
use sqlx::QueryBuilder;

/// Who made a change: a user, or the hub itself (no user id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditActor {
    pub id: Option<UserId>,
    pub name: String,
}

impl AuditActor {
    pub fn user(id: UserId, username: impl Into<String>) -> Self {
        AuditActor {
            id: Some(id),
            name: username.into(),
        }
    }

    /// The hub acting on its own (first-start administrator).
    pub fn system() -> Self {
        AuditActor {
            id: None,
            name: "system".to_owned(),
        }
    }
}

/// One change to record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub at_ms: i64,
    pub actor: AuditActor,
    /// `{entity}.{verb}`, e.g. `user.create`, `work_order.assign`.
    pub action: &'static str,
    /// `user`, `api_token`, `work_order`, ...
    pub entity_kind: &'static str,
    pub entity_id: String,
    /// The site the entity belongs to; `None` for fleet-wide entities.
    pub site: Option<SiteId>,
    /// The entity before the change (`None` for a creation).
    pub before: Option<Value>,
    /// The entity after the change (`None` for a removal).
    pub after: Option<Value>,
}

/// Appends `entry` inside `tx`; returns its id.
pub async fn record(tx: &mut Tx, entry: &AuditEntry) -> Result<i64, StoreError> {
    let sql = "INSERT INTO audit_log (at_ms, actor_id, actor_name, action, entity_kind, entity_id, \
               site, before_json, after_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id";
    let before = entry.before.as_ref().map(Value::to_string);
    let after = entry.after.as_ref().map(Value::to_string);
    let id: i64 = both!(tx, Tx, t => {
        sqlx::query_scalar(sql)
            .bind(entry.at_ms)
            .bind(entry.actor.id.as_ref().map(UserId::as_str))
            .bind(&entry.actor.name)
            .bind(entry.action)
            .bind(entry.entity_kind)
            .bind(&entry.entity_id)
            .bind(entry.site.as_ref().map(SiteId::as_str))
            .bind(before)
            .bind(after)
            .fetch_one(&mut **t)
            .await?
    });
    Ok(id)
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub id: i64,
    pub at_ms: i64,
    pub actor_id: Option<String>,
    pub actor_name: String,
    pub action: String,
    pub entity_kind: String,
    pub entity_id: String,
    pub site: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Which sites' entries a reader may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditScope {
    /// Every entry, fleet-wide ones included (administrators).
    All,
    /// Entries of these sites only; fleet-wide entries (no site) excluded.
    Sites(Vec<SiteId>),
}

/// Filters of the audit listing, newest first; every given one must match.
#[derive(Debug, Clone)]
pub struct AuditQuery {
    pub scope: AuditScope,
    pub entity_kind: Option<String>,
    pub entity_id: Option<String>,
    pub actor_id: Option<String>,
    pub site: Option<SiteId>,
    /// `from_ms <= at < to_ms`.
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Entries older than this id (the cursor of the previous page).
    pub before_id: Option<i64>,
    /// Rows to fetch.
    pub fetch: u32,
}

fn parse_json(id: i64, text: Option<String>) -> Option<Value> {
    let text = text?;
    match serde_json::from_str(&text) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(id, error = %e, "stored audit JSON does not parse");
            Some(Value::String(text))
        }
    }
}

/// Entries matching `q`, newest first.
pub async fn list(store: &Store, q: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
    if let AuditScope::Sites(sites) = &q.scope {
        if sites.is_empty() {
            return Ok(Vec::new());
        }
    }
    type Row = (
        i64,
        i64,
        Option<String>,
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let rows: Vec<Row> = both!(store, Store, p => {
        let mut qb = QueryBuilder::new(
            "SELECT id, at_ms, actor_id, actor_name, action, entity_kind, entity_id, site, \
             before_json, after_json FROM audit_log WHERE TRUE",
        );
        if let AuditScope::Sites(sites) = &q.scope {
            qb.push(" AND site IN (");
            let mut list = qb.separated(", ");
            for s in sites {
                list.push_bind(s.0.clone());
            }
            qb.push(")");
        }
        if let Some(v) = &q.entity_kind {
            qb.push(" AND entity_kind = ").push_bind(v.clone());
        }
        if let Some(v) = &q.entity_id {
            qb.push(" AND entity_id = ").push_bind(v.clone());
        }
        if let Some(v) = &q.actor_id {
            qb.push(" AND actor_id = ").push_bind(v.clone());
        }
        if let Some(v) = &q.site {
            qb.push(" AND site = ").push_bind(v.0.clone());
        }
        if let Some(v) = q.from_ms {
            qb.push(" AND at_ms >= ").push_bind(v);
        }
        if let Some(v) = q.to_ms {
            qb.push(" AND at_ms < ").push_bind(v);
        }
        if let Some(v) = q.before_id {
            qb.push(" AND id < ").push_bind(v);
        }
        qb.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(q.fetch));
        qb.build_query_as().fetch_all(p).await?
    });
    Ok(rows
        .into_iter()
        .map(
            |(
                id,
                at_ms,
                actor_id,
                actor_name,
                action,
                entity_kind,
                entity_id,
                site,
                before,
                after,
            )| {
                AuditRow {
                    id,
                    at_ms,
                    actor_id,
                    actor_name,
                    action,
                    entity_kind,
                    entity_id,
                    site,
                    before: parse_json(id, before),
                    after: parse_json(id, after),
                }
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing;

    fn entry(n: i64, site: Option<&str>) -> AuditEntry {
        AuditEntry {
            at_ms: 1_000 + n,
            actor: AuditActor::user(UserId::from("u1"), "ana"),
            action: "thing.update",
            entity_kind: "thing",
            entity_id: format!("t{n}"),
            site: site.map(SiteId::from),
            before: Some(serde_json::json!({ "n": n })),
            after: Some(serde_json::json!({ "n": n + 1 })),
        }
    }

    /// Entries commit with their transaction, read back newest first, and
    /// the database refuses to change or remove them, through the store's
    /// own connections.
    async fn append_only(store: Store) {
        let mut tx = store.transaction().await.unwrap();
        for n in 0..3 {
            record(&mut tx, &entry(n, Some("north"))).await.unwrap();
        }
        record(&mut tx, &entry(3, None)).await.unwrap();
        tx.commit().await.unwrap();

        // A rolled-back transaction leaves no entry.
        let mut tx = store.transaction().await.unwrap();
        record(&mut tx, &entry(99, None)).await.unwrap();
        drop(tx);

        let all = AuditQuery {
            scope: AuditScope::All,
            entity_kind: None,
            entity_id: None,
            actor_id: None,
            site: None,
            from_ms: None,
            to_ms: None,
            before_id: None,
            fetch: 100,
        };
        let rows = list(&store, &all).await.unwrap();
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].entity_id, "t3");
        assert_eq!(rows[3].before, Some(serde_json::json!({ "n": 0 })));
        assert_eq!(rows[3].actor_id.as_deref(), Some("u1"));
        let north = list(
            &store,
            &AuditQuery {
                scope: AuditScope::Sites(vec![SiteId::from("north")]),
                from_ms: Some(1_001),
                ..all.clone()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            north
                .iter()
                .map(|r| r.entity_id.as_str())
                .collect::<Vec<_>>(),
            ["t2", "t1"]
        );
        let page = list(
            &store,
            &AuditQuery {
                before_id: Some(rows[1].id),
                fetch: 1,
                ..all.clone()
            },
        )
        .await
        .unwrap();
        assert_eq!(page[0].entity_id, "t1");

        for sql in [
            "UPDATE audit_log SET action = 'forged'",
            "UPDATE audit_log SET after_json = NULL WHERE entity_id = 't1'",
            "DELETE FROM audit_log WHERE entity_id = 't0'",
            "DELETE FROM audit_log",
        ] {
            let err = both!(&store, Store, p => sqlx::query(sql).execute(p).await.map(|_| ()))
                .expect_err(sql);
            assert!(err.to_string().contains("append-only"), "{sql}: {err}");
            // Inside a transaction too.
            let mut tx = store.transaction().await.unwrap();
            let err = both!(&mut tx, Tx, t => sqlx::query(sql).execute(&mut **t).await.map(|_| ()))
                .expect_err(sql);
            assert!(err.to_string().contains("append-only"), "{sql}: {err}");
        }
        if let Store::Postgres(p) = &store {
            let err = sqlx::query("TRUNCATE audit_log")
                .execute(p)
                .await
                .expect_err("truncate");
            assert!(err.to_string().contains("append-only"), "{err}");
        }
        assert_eq!(list(&store, &all).await.unwrap(), rows);
    }

    #[tokio::test]
    async fn append_only_on_sqlite() {
        let (store, _dir) = testing::sqlite().await;
        append_only(store).await;
    }

    #[tokio::test]
    async fn append_only_on_postgres() {
        let (store, _pg) = testing::postgres().await;
        append_only(store).await;
    }
}
