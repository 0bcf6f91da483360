//! Sites: the top of every asset hierarchy and the unit of access scoping.
//!
//! A site id is the `{site}` level of the gateways' MQTT topics, so it
//! obeys [`dcmms_shared::validate_name`]. Sites are never deleted here:
//! work orders, assets and stock refer to them.

use super::{both, conn, insert_error, ms, Changed, CmmsError, Conn, Db};
use crate::store::Tx;
use dcmms_shared::cmms::{SiteId, SiteScope};
use serde::{Deserialize, Serialize};
use sqlx::QueryBuilder;
use time::OffsetDateTime;

/// A site as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    pub id: SiteId,
    pub name: String,
    /// IANA time-zone label for display ("Europe/Madrid"); stored instants
    /// are UTC whatever it says.
    pub timezone: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// What a caller supplies to create a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSite {
    pub id: SiteId,
    pub name: String,
    pub timezone: String,
}

/// Longest site name and time-zone label, in characters.
const MAX_TEXT: usize = 200;

fn check(name: &str, timezone: &str) -> Result<(), CmmsError> {
    if name.trim().is_empty() || name.chars().count() > MAX_TEXT {
        return Err(CmmsError::invalid(
            "bad_site_name",
            format!("a site name has 1 to {MAX_TEXT} characters"),
        ));
    }
    if timezone.trim().is_empty() || timezone.chars().count() > MAX_TEXT {
        return Err(CmmsError::invalid(
            "bad_timezone",
            "a site needs a time-zone label such as Europe/Madrid",
        ));
    }
    Ok(())
}

/// Creates a site; [`CmmsError::Duplicate`] if the id is taken.
pub async fn create(tx: &mut Tx, new: NewSite, at: OffsetDateTime) -> Result<Site, CmmsError> {
    if let Err(e) = dcmms_shared::validate_name(new.id.as_str()) {
        return Err(CmmsError::invalid(
            "bad_site_id",
            format!("site id {:?}: {e}", new.id.as_str()),
        ));
    }
    check(&new.name, &new.timezone)?;
    let site = Site {
        id: new.id,
        name: new.name,
        timezone: new.timezone,
        created_at: at,
    };
    let sql = "INSERT INTO sites (id, name, timezone, created_ms) VALUES ($1, $2, $3, $4)";
    let mut c = conn(tx);
    both!(&mut c, Conn, x => {
        sqlx::query(sql)
            .bind(site.id.as_str())
            .bind(&site.name)
            .bind(&site.timezone)
            .bind(ms(at))
            .execute(&mut **x)
            .await
            .map_err(|e| insert_error(e, "site", site.id.as_str()))?;
    });
    Ok(site)
}

/// Renames a site or changes its time-zone label.
pub async fn update(
    tx: &mut Tx,
    id: &SiteId,
    name: String,
    timezone: String,
) -> Result<Changed<Site>, CmmsError> {
    check(&name, &timezone)?;
    let mut c = conn(tx);
    let before = load(&mut c, id, true)
        .await?
        .ok_or_else(|| CmmsError::not_found("site", id))?;
    let after = Site {
        name,
        timezone,
        ..before.clone()
    };
    both!(&mut c, Conn, x => {
        sqlx::query("UPDATE sites SET name = $2, timezone = $3 WHERE id = $1")
            .bind(id.as_str())
            .bind(&after.name)
            .bind(&after.timezone)
            .execute(&mut **x)
            .await?;
    });
    Ok(Changed { before, after })
}

type SiteRow = (String, String, String, i64);

fn site_of((id, name, timezone, created_ms): SiteRow) -> Result<Site, CmmsError> {
    let created_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(created_ms) * 1_000_000)
        .map_err(|_| CmmsError::corrupt(format!("site {id} created_ms {created_ms}")))?;
    Ok(Site {
        id: SiteId(id),
        name,
        timezone,
        created_at,
    })
}

/// Loads a site, locking its row on PostgreSQL when `lock` (hierarchy
/// changes of one site run one at a time).
pub(crate) async fn load(
    c: &mut Conn<'_>,
    id: &SiteId,
    lock: bool,
) -> Result<Option<Site>, CmmsError> {
    let sql = format!(
        "SELECT id, name, timezone, created_ms FROM sites WHERE id = $1{}",
        if lock { c.for_update() } else { "" }
    );
    let row: Option<SiteRow> = both!(c, Conn, x => {
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_optional(&mut **x)
            .await?
    });
    row.map(site_of).transpose()
}

pub async fn get<'a>(db: impl Into<Db<'a>>, id: &SiteId) -> Result<Site, CmmsError> {
    let mut lease = db.into().lease().await?;
    load(&mut lease.conn(), id, false)
        .await?
        .ok_or_else(|| CmmsError::not_found("site", id))
}

/// The sites in `scope`, by id.
pub async fn list<'a>(db: impl Into<Db<'a>>, scope: &SiteScope) -> Result<Vec<Site>, CmmsError> {
    if matches!(scope, SiteScope::Only(s) if s.is_empty()) {
        return Ok(Vec::new());
    }
    let mut lease = db.into().lease().await?;
    let mut c = lease.conn();
    let rows: Vec<SiteRow> = both!(&mut c, Conn, x => {
        let mut qb = QueryBuilder::new("SELECT id, name, timezone, created_ms FROM sites");
        if let SiteScope::Only(sites) = scope {
            qb.push(" WHERE id IN (");
            let mut list = qb.separated(", ");
            for s in sites {
                list.push_bind(s.as_str());
            }
            qb.push(")");
        }
        qb.push(" ORDER BY id");
        qb.build_query_as().fetch_all(&mut **x).await?
    });
    rows.into_iter().map(site_of).collect()
}
