//! Assets and their hierarchy.
//!
//! An asset row holds every [`Asset`] field; its telemetry points live in
//! `asset_points` (one row per point, in order), indexed by point so that
//! "which assets measure point X" is one lookup. Creating or changing an
//! asset runs [`Asset::validate`] and [`validate_hierarchy`] over every link
//! of the site(s) involved, with the change applied, inside the caller's
//! transaction and with the site rows locked, so two concurrent moves can
//! never build a cycle between them. Assets are never deleted here.

use super::{both, conn, enum_from_str, enum_str, insert_error, ms, sites, Changed, CmmsError};
use super::{date_str, parse_date, Conn, Db};
use crate::store::Tx;
use dcmms_shared::cmms::{
    validate_hierarchy, Asset, AssetId, AssetKind, Criticality, ParentLink, SiteId, SiteScope,
};
use sqlx::QueryBuilder;
use std::collections::{BTreeMap, BTreeSet};
use time::OffsetDateTime;

const COLUMNS: &str = "id, site, parent, name, kind, kind_other, manufacturer, model, serial, \
                       installed_on, criticality, location";

type AssetRow = (
    String,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
);

/// `kind` and `kind_other` columns of an asset kind.
fn kind_columns(kind: &AssetKind) -> Result<(String, Option<String>), CmmsError> {
    match kind {
        AssetKind::Other(text) => Ok(("other".to_owned(), Some(text.clone()))),
        k => Ok((enum_str(k)?, None)),
    }
}

fn asset_of(row: AssetRow, points: Vec<String>) -> Result<Asset, CmmsError> {
    let (
        id,
        site,
        parent,
        name,
        kind,
        kind_other,
        manufacturer,
        model,
        serial,
        installed,
        crit,
        location,
    ) = row;
    let kind = match (kind.as_str(), kind_other) {
        ("other", Some(text)) => AssetKind::Other(text),
        (k, _) => enum_from_str("asset kind", k)?,
    };
    Ok(Asset {
        id: AssetId(id),
        site: SiteId(site),
        parent: parent.map(AssetId),
        name,
        kind,
        manufacturer,
        model,
        serial,
        installed_on: installed.as_deref().map(parse_date).transpose()?,
        criticality: enum_from_str::<Criticality>("criticality", &crit)?,
        location,
        points,
    })
}

/// Loads assets by id (missing ids are left out), in id order.
pub(crate) async fn load_many(c: &mut Conn<'_>, ids: &[String]) -> Result<Vec<Asset>, CmmsError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let rows: Vec<AssetRow> = both!(c, Conn, x => {
            let mut qb = QueryBuilder::new(format!("SELECT {COLUMNS} FROM assets WHERE id IN ("));
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind(id.as_str());
            }
            qb.push(") ORDER BY id");
            qb.build_query_as().fetch_all(&mut **x).await?
        });
        let point_rows: Vec<(String, String)> = both!(c, Conn, x => {
            let mut qb = QueryBuilder::new("SELECT asset, point FROM asset_points WHERE asset IN (");
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind(id.as_str());
            }
            qb.push(") ORDER BY asset, position");
            qb.build_query_as().fetch_all(&mut **x).await?
        });
        let mut points: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (asset, point) in point_rows {
            points.entry(asset).or_default().push(point);
        }
        for row in rows {
            let p = points.remove(&row.0).unwrap_or_default();
            out.push(asset_of(row, p)?);
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

pub(crate) async fn load(c: &mut Conn<'_>, id: &AssetId) -> Result<Option<Asset>, CmmsError> {
    Ok(load_many(c, std::slice::from_ref(&id.0)).await?.pop())
}

/// Locks the sites (in id order, so concurrent changes cannot deadlock) and
/// checks the hierarchy of their assets with `change` applied in place of
/// the stored link of the same id.
async fn check_hierarchy(
    c: &mut Conn<'_>,
    change: &Asset,
    old_site: Option<&SiteId>,
) -> Result<(), CmmsError> {
    let sites: BTreeSet<&SiteId> = std::iter::once(&change.site).chain(old_site).collect();
    for site in &sites {
        if sites::load(c, site, true).await?.is_none() {
            return Err(CmmsError::not_found("site", site));
        }
    }
    let mut links: Vec<ParentLink> = Vec::new();
    for site in &sites {
        let rows: Vec<(String, String, Option<String>)> = both!(c, Conn, x => {
            sqlx::query_as("SELECT id, site, parent FROM assets WHERE site = $1")
                .bind(site.as_str())
                .fetch_all(&mut **x)
                .await?
        });
        links.extend(
            rows.into_iter()
                .filter(|(id, _, _)| id != change.id.as_str())
                .map(|(id, site, parent)| ParentLink {
                    id: AssetId(id),
                    site: SiteId(site),
                    parent: parent.map(AssetId),
                }),
        );
    }
    links.push(change.link());
    // A parent at a site not loaded is reported as unknown; say which site
    // it is at instead when it exists.
    if let Some(parent) = &change.parent {
        if !links.iter().any(|l| &l.id == parent) {
            if let Some(p) = load(c, parent).await? {
                return Err(dcmms_shared::cmms::HierarchyError::CrossSite {
                    asset: change.id.clone(),
                    site: change.site.clone(),
                    parent: parent.clone(),
                    parent_site: p.site,
                }
                .into());
            }
        }
    }
    validate_hierarchy(&links)?;
    Ok(())
}

async fn write_points(c: &mut Conn<'_>, asset: &Asset) -> Result<(), CmmsError> {
    both!(c, Conn, x => {
        sqlx::query("DELETE FROM asset_points WHERE asset = $1")
            .bind(asset.id.as_str())
            .execute(&mut **x)
            .await?;
        if !asset.points.is_empty() {
            let mut qb = QueryBuilder::new("INSERT INTO asset_points (asset, position, point) ");
            qb.push_values(asset.points.iter().enumerate(), |mut b, (i, p)| {
                b.push_bind(asset.id.as_str()).push_bind(i as i64).push_bind(p.as_str());
            });
            qb.build().execute(&mut **x).await?;
        }
    });
    Ok(())
}

/// Creates an asset after checking its fields and the hierarchy.
pub async fn create(tx: &mut Tx, asset: Asset, at: OffsetDateTime) -> Result<Asset, CmmsError> {
    asset.validate()?;
    let mut c = conn(tx);
    if load(&mut c, &asset.id).await?.is_some() {
        return Err(CmmsError::Duplicate {
            entity: "asset",
            id: asset.id.0.clone(),
        });
    }
    check_hierarchy(&mut c, &asset, None).await?;
    let (kind, kind_other) = kind_columns(&asset.kind)?;
    let sql = format!(
        "INSERT INTO assets ({COLUMNS}, created_ms, updated_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)"
    );
    both!(&mut c, Conn, x => {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(asset.id.as_str())
            .bind(asset.site.as_str())
            .bind(asset.parent.as_ref().map(AssetId::as_str))
            .bind(&asset.name)
            .bind(&kind)
            .bind(&kind_other)
            .bind(&asset.manufacturer)
            .bind(&asset.model)
            .bind(&asset.serial)
            .bind(asset.installed_on.map(date_str))
            .bind(enum_str(&asset.criticality)?)
            .bind(&asset.location)
            .bind(ms(at))
            .execute(&mut **x)
            .await
            .map_err(|e| insert_error(e, "asset", asset.id.as_str()))?;
    });
    write_points(&mut c, &asset).await?;
    Ok(asset)
}

/// Replaces an asset's fields (its id stays). A change of parent or site
/// is checked against the hierarchy of both sites.
pub async fn update(
    tx: &mut Tx,
    asset: Asset,
    at: OffsetDateTime,
) -> Result<Changed<Asset>, CmmsError> {
    asset.validate()?;
    let mut c = conn(tx);
    let before = load(&mut c, &asset.id)
        .await?
        .ok_or_else(|| CmmsError::not_found("asset", &asset.id))?;
    if before.site != asset.site || before.parent != asset.parent {
        check_hierarchy(&mut c, &asset, Some(&before.site)).await?;
    }
    let (kind, kind_other) = kind_columns(&asset.kind)?;
    let sql = "UPDATE assets SET site = $2, parent = $3, name = $4, kind = $5, kind_other = $6, \
               manufacturer = $7, model = $8, serial = $9, installed_on = $10, criticality = $11, \
               location = $12, updated_ms = $13 WHERE id = $1";
    both!(&mut c, Conn, x => {
        sqlx::query(sql)
            .bind(asset.id.as_str())
            .bind(asset.site.as_str())
            .bind(asset.parent.as_ref().map(AssetId::as_str))
            .bind(&asset.name)
            .bind(&kind)
            .bind(&kind_other)
            .bind(&asset.manufacturer)
            .bind(&asset.model)
            .bind(&asset.serial)
            .bind(asset.installed_on.map(date_str))
            .bind(enum_str(&asset.criticality)?)
            .bind(&asset.location)
            .bind(ms(at))
            .execute(&mut **x)
            .await?;
    });
    if before.points != asset.points {
        write_points(&mut c, &asset).await?;
    }
    Ok(Changed {
        before,
        after: asset,
    })
}

/// Moves an asset under another parent (`None`: directly under its site).
pub async fn move_to(
    tx: &mut Tx,
    id: &AssetId,
    parent: Option<AssetId>,
    at: OffsetDateTime,
) -> Result<Changed<Asset>, CmmsError> {
    let current = load(&mut conn(tx), id)
        .await?
        .ok_or_else(|| CmmsError::not_found("asset", id))?;
    update(tx, Asset { parent, ..current }, at).await
}

pub async fn get<'a>(db: impl Into<Db<'a>>, id: &AssetId) -> Result<Asset, CmmsError> {
    let mut lease = db.into().lease().await?;
    load(&mut lease.conn(), id)
        .await?
        .ok_or_else(|| CmmsError::not_found("asset", id))
}

/// Assets in `scope` with an id after `after`, in id order, at most
/// `limit` (1..=1000): page through all assets, e.g. for an export.
pub async fn list<'a>(
    db: impl Into<Db<'a>>,
    scope: &SiteScope,
    after: Option<&AssetId>,
    limit: u32,
) -> Result<Vec<Asset>, CmmsError> {
    if matches!(scope, SiteScope::Only(s) if s.is_empty()) {
        return Ok(Vec::new());
    }
    let limit = i64::from(limit.clamp(1, 1000));
    let mut lease = db.into().lease().await?;
    let mut c = lease.conn();
    let ids: Vec<String> = both!(&mut c, Conn, x => {
        let mut qb = QueryBuilder::new("SELECT id FROM assets WHERE TRUE");
        if let SiteScope::Only(sites) = scope {
            qb.push(" AND site IN (");
            let mut list = qb.separated(", ");
            for s in sites {
                list.push_bind(s.as_str());
            }
            qb.push(")");
        }
        if let Some(after) = after {
            qb.push(" AND id > ").push_bind(after.as_str());
        }
        qb.push(" ORDER BY id LIMIT ").push_bind(limit);
        qb.build_query_scalar().fetch_all(&mut **x).await?
    });
    load_many(&mut c, &ids).await
}

/// Direct children of an asset, in id order.
pub async fn children<'a>(db: impl Into<Db<'a>>, id: &AssetId) -> Result<Vec<Asset>, CmmsError> {
    let mut lease = db.into().lease().await?;
    let mut c = lease.conn();
    let ids: Vec<String> = both!(&mut c, Conn, x => {
        sqlx::query_scalar("SELECT id FROM assets WHERE parent = $1 ORDER BY id")
            .bind(id.as_str())
            .fetch_all(&mut **x)
            .await?
    });
    load_many(&mut c, &ids).await
}

/// The assets that measure telemetry point `point` (`site/device/point`).
pub async fn linked_to_point<'a>(
    db: impl Into<Db<'a>>,
    point: &str,
) -> Result<Vec<Asset>, CmmsError> {
    let mut lease = db.into().lease().await?;
    let mut c = lease.conn();
    let ids: Vec<String> = both!(&mut c, Conn, x => {
        sqlx::query_scalar("SELECT DISTINCT asset FROM asset_points WHERE point = $1 ORDER BY asset")
            .bind(point)
            .fetch_all(&mut **x)
            .await?
    });
    load_many(&mut c, &ids).await
}
