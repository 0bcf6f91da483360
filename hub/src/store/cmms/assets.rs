//! Assets and their hierarchy.
//!
//! An asset row holds every [`Asset`] field; its telemetry points live in
//! `asset_points` (one row per point, in order), indexed by point so that
//! "which assets measure point X" is one lookup. Creating or changing an
//! asset runs [`Asset::validate`] and [`validate_hierarchy`] over every link
//! of the site(s) involved, with the change applied, inside the caller's
//! transaction and with the site rows locked, so two concurrent moves can
//! never build a cycle between them. [`create_many`] does that once for a
//! whole batch of new assets (an import), so creating n assets at a site
//! is linear rather than quadratic. Assets are never deleted here.

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
        links.extend(
            site_links(c, site)
                .await?
                .into_iter()
                .filter(|l| l.id != change.id),
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
    });
    let rows: Vec<(&str, i64, &str)> = asset
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| (asset.id.as_str(), i as i64, p.as_str()))
        .collect();
    insert_points(c, &rows).await
}

/// Creates an asset after checking its fields and the hierarchy.
pub async fn create(tx: &mut Tx, asset: Asset, at: OffsetDateTime) -> Result<Asset, CmmsError> {
    let id = asset.id.clone();
    create_many(tx, vec![asset], at)
        .await?
        .pop()
        .ok_or_else(|| CmmsError::corrupt(format!("asset {id} was not created")))
}

/// Rows per multi-row INSERT: 13 values each, well within either
/// database's limit of bound parameters per statement.
const INSERT_ROWS: usize = 500;

/// Creates `new` assets in one go (an import): checks every asset's fields,
/// that no id is taken (nor given twice), and the hierarchy of the sites
/// involved with all of them added, ONCE; then inserts them parents first
/// in multi-row statements. The work grows with the assets of those sites
/// plus the new ones, where creating them one by one re-reads and
/// re-checks the whole site for each. Nothing is written when any check
/// fails; the assets are returned in the order given.
pub async fn create_many(
    tx: &mut Tx,
    new: Vec<Asset>,
    at: OffsetDateTime,
) -> Result<Vec<Asset>, CmmsError> {
    if new.is_empty() {
        return Ok(new);
    }
    let mut ids = BTreeSet::new();
    for a in &new {
        a.validate()?;
        if !ids.insert(a.id.as_str()) {
            return Err(CmmsError::Duplicate {
                entity: "asset",
                id: a.id.0.clone(),
            });
        }
    }
    let mut c = conn(tx);
    let ids: Vec<String> = ids.into_iter().map(str::to_owned).collect();
    if let Some(taken) = existing_ids(&mut c, &ids).await?.into_iter().next() {
        return Err(CmmsError::Duplicate {
            entity: "asset",
            id: taken,
        });
    }
    let levels = check_new_hierarchy(&mut c, &new).await?;
    let mut order: Vec<usize> = (0..new.len()).collect();
    order.sort_by_key(|&i| levels.get(&new[i].id).copied().unwrap_or(0));
    let mut rows = Vec::with_capacity(new.len());
    for &i in &order {
        let a = &new[i];
        let (kind, kind_other) = kind_columns(&a.kind)?;
        let criticality = enum_str(&a.criticality)?;
        rows.push((a, kind, kind_other, criticality));
    }
    let at_ms = ms(at);
    for chunk in rows.chunks(INSERT_ROWS) {
        both!(&mut c, Conn, x => {
            let mut qb = QueryBuilder::new(format!(
                "INSERT INTO assets ({COLUMNS}, created_ms, updated_ms) "
            ));
            qb.push_values(chunk, |mut b, (a, kind, kind_other, criticality)| {
                b.push_bind(a.id.as_str())
                    .push_bind(a.site.as_str())
                    .push_bind(a.parent.as_ref().map(AssetId::as_str))
                    .push_bind(a.name.as_str())
                    .push_bind(kind.as_str())
                    .push_bind(kind_other.as_deref())
                    .push_bind(a.manufacturer.as_deref())
                    .push_bind(a.model.as_deref())
                    .push_bind(a.serial.as_deref())
                    .push_bind(a.installed_on.map(date_str))
                    .push_bind(criticality.as_str())
                    .push_bind(a.location.as_deref())
                    .push_bind(at_ms)
                    .push_bind(at_ms);
            });
            qb.build()
                .execute(&mut **x)
                .await
                .map_err(|e| insert_error(e, "asset", chunk[0].0.id.as_str()))?;
        });
    }
    let points: Vec<(&str, i64, &str)> = new
        .iter()
        .flat_map(|a| {
            a.points
                .iter()
                .enumerate()
                .map(|(i, p)| (a.id.as_str(), i as i64, p.as_str()))
        })
        .collect();
    insert_points(&mut c, &points).await?;
    Ok(new)
}

/// The ids among `ids` that are taken.
async fn existing_ids(c: &mut Conn<'_>, ids: &[String]) -> Result<Vec<String>, CmmsError> {
    let mut out = Vec::new();
    for chunk in ids.chunks(INSERT_ROWS) {
        let found: Vec<String> = both!(c, Conn, x => {
            let mut qb = QueryBuilder::new("SELECT id FROM assets WHERE id IN (");
            let mut list = qb.separated(", ");
            for id in chunk {
                list.push_bind(id.as_str());
            }
            qb.push(") ORDER BY id");
            qb.build_query_scalar().fetch_all(&mut **x).await?
        });
        out.extend(found);
    }
    out.sort();
    Ok(out)
}

/// Locks the sites of `new` (in id order, as [`check_hierarchy`] does) and
/// checks their hierarchy with every new asset added; the level of each
/// asset.
async fn check_new_hierarchy(
    c: &mut Conn<'_>,
    new: &[Asset],
) -> Result<BTreeMap<AssetId, u8>, CmmsError> {
    let sites: BTreeSet<&SiteId> = new.iter().map(|a| &a.site).collect();
    let mut links: Vec<ParentLink> = Vec::new();
    for site in &sites {
        if sites::load(c, site, true).await?.is_none() {
            return Err(CmmsError::not_found("site", site));
        }
        links.extend(site_links(c, site).await?);
    }
    links.extend(new.iter().map(Asset::link));
    // A parent at a site not loaded is reported as unknown; say which site
    // it is at instead when it exists.
    let known: BTreeSet<&AssetId> = links.iter().map(|l| &l.id).collect();
    let elsewhere: Vec<String> = new
        .iter()
        .filter_map(|a| a.parent.as_ref())
        .filter(|p| !known.contains(p))
        .map(|p| p.0.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !elsewhere.is_empty() {
        let found: BTreeMap<AssetId, SiteId> = load_many(c, &elsewhere)
            .await?
            .into_iter()
            .map(|p| (p.id, p.site))
            .collect();
        for a in new {
            let Some(parent) = &a.parent else { continue };
            if let Some(parent_site) = found.get(parent) {
                return Err(dcmms_shared::cmms::HierarchyError::CrossSite {
                    asset: a.id.clone(),
                    site: a.site.clone(),
                    parent: parent.clone(),
                    parent_site: parent_site.clone(),
                }
                .into());
            }
        }
    }
    Ok(validate_hierarchy(&links)?)
}

/// The parent links of a site's stored assets.
async fn site_links(c: &mut Conn<'_>, site: &SiteId) -> Result<Vec<ParentLink>, CmmsError> {
    let rows: Vec<(String, String, Option<String>)> = both!(c, Conn, x => {
        sqlx::query_as("SELECT id, site, parent FROM assets WHERE site = $1")
            .bind(site.as_str())
            .fetch_all(&mut **x)
            .await?
    });
    Ok(rows
        .into_iter()
        .map(|(id, site, parent)| ParentLink {
            id: AssetId(id),
            site: SiteId(site),
            parent: parent.map(AssetId),
        })
        .collect())
}

/// Inserts `(asset, position, point)` rows.
async fn insert_points(c: &mut Conn<'_>, rows: &[(&str, i64, &str)]) -> Result<(), CmmsError> {
    for chunk in rows.chunks(INSERT_ROWS * 4) {
        both!(c, Conn, x => {
            let mut qb = QueryBuilder::new("INSERT INTO asset_points (asset, position, point) ");
            qb.push_values(chunk, |mut b, (asset, position, point)| {
                b.push_bind(*asset).push_bind(*position).push_bind(*point);
            });
            qb.build().execute(&mut **x).await?;
        });
    }
    Ok(())
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
