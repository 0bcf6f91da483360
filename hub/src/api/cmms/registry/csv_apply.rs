//! Writing a checked import file: every created and updated record of a
//! [`Merge`] through the store, in one transaction, with an audit entry
//! per record (the same actions as the single-record routes) and one for
//! the file (`import.<kind>`, with the counts and the file's SHA-256).
//!
//! The file was checked against records read before the transaction.
//! Here the rows those records live in are locked (sites, parts) and read
//! again; if any changed meanwhile the import is refused (409
//! `version_conflict`) rather than overwrite the change. The store checks
//! its own rules on every write besides.
//!
//! Assets are written parents first: assets whose parent or site changes
//! are first detached (moved directly under their site, which is always
//! valid), then every created or updated asset is written in the order of
//! its level in the final hierarchy. Each intermediate state is then a
//! valid hierarchy, so the store's checks accept any file whose final
//! state is valid (moves that swap parent and child included). The new
//! assets of a level are created together ([`assets::create_many`]: one
//! check of the hierarchy per level, so a file of n new assets is written
//! in time linear in n).

use super::csv_import::Job;
use super::dto::{AssetView, FileKind, PartView, SiteView};
use super::{entry, json_of, now, refusal};
use crate::api::ApiError;
use crate::audit;
use crate::store::cmms::parts::{self, NewPart, StoredPart};
use crate::store::cmms::{assets, conn, sites};
use crate::store::Tx;
use dcmms_shared::cmms::csv::{ExistingPart, Merge, PartRecord, PointLink, SiteRecord};
use dcmms_shared::cmms::{validate_hierarchy, Asset, AssetId, ParentLink, SiteId};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

/// What writing a merge did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Applied {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

impl<T> From<&Merge<T>> for Applied {
    fn from(m: &Merge<T>) -> Self {
        Applied {
            created: m.created.len(),
            updated: m.updated.len(),
            unchanged: m.unchanged,
        }
    }
}

fn changed_meanwhile(what: String) -> ApiError {
    ApiError::conflict(
        "version_conflict",
        format!("{what} changed while the file was being checked; import it again"),
    )
}

/// Locks the sites' rows, in id order (the order every asset change
/// takes them in).
async fn lock_sites(tx: &mut Tx, sites: &BTreeSet<SiteId>) -> Result<(), ApiError> {
    for site in sites {
        sites::load(&mut conn(tx), site, true)
            .await
            .map_err(refusal)?;
    }
    Ok(())
}

/// The assets `ids` inside `tx`, as they are now.
async fn current_assets(tx: &mut Tx, ids: &[String]) -> Result<HashMap<AssetId, Asset>, ApiError> {
    Ok(assets::load_many(&mut conn(tx), ids)
        .await
        .map_err(refusal)?
        .into_iter()
        .map(|a| (a.id.clone(), a))
        .collect())
}

/// Checks that the stored assets the file was checked against are still
/// as they were, and that the ones to create are still absent.
async fn verify_assets(
    tx: &mut Tx,
    stored: &HashMap<&AssetId, &Asset>,
    ids: impl Iterator<Item = AssetId>,
) -> Result<(), ApiError> {
    let ids: Vec<String> = ids.map(|i| i.0).collect();
    let now = current_assets(tx, &ids).await?;
    for id in &ids {
        let id = AssetId(id.clone());
        if now.get(&id) != stored.get(&id).copied() {
            return Err(changed_meanwhile(format!("asset {id}")));
        }
    }
    Ok(())
}

/// Ends the import: the file's audit entry, then commit.
async fn finish(
    job: &Job<'_>,
    mut tx: Tx,
    rows: usize,
    applied: Applied,
    sites: &BTreeSet<SiteId>,
    started: Instant,
) -> Result<Applied, ApiError> {
    let action = match job.kind {
        FileKind::Sites => "import.sites",
        FileKind::Assets => "import.assets",
        FileKind::Points => "import.points",
        FileKind::Parts => "import.parts",
    };
    let site = match sites.len() {
        1 => sites.iter().next().cloned(),
        _ => None,
    };
    let after = json!({
        "file": job.kind.file_name(),
        "mode": match job.options.mode {
            dcmms_shared::cmms::csv::ImportMode::Upsert => "upsert",
            _ => "create_only",
        },
        "sha256": job.sha256,
        "bytes": job.bytes,
        "rows": rows,
        "created": applied.created,
        "updated": applied.updated,
        "unchanged": applied.unchanged,
        "sites": sites.iter().map(SiteId::as_str).collect::<Vec<_>>(),
    });
    audit::record(
        &mut tx,
        &entry(
            job.auth,
            action,
            "import",
            job.sha256.clone(),
            site,
            None,
            Some(after),
        ),
    )
    .await?;
    tx.commit().await?;
    tracing::info!(
        kind = job.kind.name(),
        written = applied.created + applied.updated,
        write_ms = started.elapsed().as_millis(),
        "import written"
    );
    Ok(applied)
}

pub(super) async fn sites(
    job: &Job<'_>,
    stored: &[SiteRecord],
    merge: Merge<SiteRecord>,
    rows: usize,
) -> Result<Applied, ApiError> {
    let applied = Applied::from(&merge);
    if job.dry_run {
        return Ok(applied);
    }
    let started = Instant::now();
    let touched: BTreeSet<SiteId> = merge
        .created
        .iter()
        .chain(&merge.updated)
        .map(|s| s.id.clone())
        .collect();
    let mut tx = job.state.store.transaction().await?;
    for site in &touched {
        let now_stored = sites::load(&mut conn(&mut tx), site, true)
            .await
            .map_err(refusal)?
            .map(|s| SiteRecord {
                id: s.id,
                name: s.name,
                timezone: s.timezone,
            });
        if now_stored.as_ref() != stored.iter().find(|s| &s.id == site) {
            return Err(changed_meanwhile(format!("site {site}")));
        }
    }
    for s in merge.created {
        let new = sites::NewSite {
            id: s.id,
            name: s.name,
            timezone: s.timezone,
        };
        let site = sites::create(&mut tx, new, now()).await.map_err(refusal)?;
        let view = SiteView::from(&site);
        let e = entry(
            job.auth,
            "site.create",
            "site",
            site.id.to_string(),
            Some(site.id.clone()),
            None,
            json_of(&view),
        );
        audit::record(&mut tx, &e).await?;
    }
    for s in merge.updated {
        let c = sites::update(&mut tx, &s.id, s.name, s.timezone)
            .await
            .map_err(refusal)?;
        let e = entry(
            job.auth,
            "site.update",
            "site",
            s.id.to_string(),
            Some(s.id.clone()),
            json_of(&SiteView::from(&c.before)),
            json_of(&SiteView::from(&c.after)),
        );
        audit::record(&mut tx, &e).await?;
    }
    finish(job, tx, rows, applied, &touched, started).await
}

pub(super) async fn assets(
    job: &Job<'_>,
    stored: &[Asset],
    merge: Merge<Asset>,
    rows: usize,
    touched: &BTreeSet<SiteId>,
) -> Result<Applied, ApiError> {
    let applied = Applied::from(&merge);
    if job.dry_run {
        return Ok(applied);
    }
    let started = Instant::now();
    let by_id: HashMap<&AssetId, &Asset> = stored.iter().map(|a| (&a.id, a)).collect();
    // Levels in the final hierarchy (the parser checked it is valid).
    let mut links: BTreeMap<AssetId, ParentLink> =
        stored.iter().map(|a| (a.id.clone(), a.link())).collect();
    for a in merge.created.iter().chain(&merge.updated) {
        links.insert(a.id.clone(), a.link());
    }
    let list: Vec<ParentLink> = links.into_values().collect();
    let levels = validate_hierarchy(&list).unwrap_or_default();
    let level = |a: &Asset| levels.get(&a.id).copied().unwrap_or(0);
    // Per level, parents first: the new assets (written together), then
    // the changed ones, in file order.
    let mut by_level: BTreeMap<u8, (Vec<Asset>, Vec<Asset>)> = BTreeMap::new();
    for a in merge.created {
        by_level.entry(level(&a)).or_default().0.push(a);
    }
    for a in merge.updated {
        by_level.entry(level(&a)).or_default().1.push(a);
    }

    let mut tx = job.state.store.transaction().await?;
    lock_sites(&mut tx, touched).await?;
    // Collected first: a future holding an iterator of closures over
    // borrowed assets across an await is not `Send`.
    let mut written: Vec<AssetId> = Vec::new();
    let mut moved: Vec<&Asset> = Vec::new();
    for (created, updated) in by_level.values() {
        written.extend(created.iter().chain(updated).map(|a| a.id.clone()));
        moved.extend(updated);
    }
    verify_assets(&mut tx, &by_id, written.into_iter()).await?;
    let at = now();
    for a in moved {
        let Some(old) = by_id.get(&a.id) else {
            continue;
        };
        if old.parent.is_some() && (old.parent != a.parent || old.site != a.site) {
            let detached = Asset {
                parent: None,
                ..(*old).clone()
            };
            assets::update(&mut tx, detached, at)
                .await
                .map_err(refusal)?;
        }
    }
    for (created, updated) in by_level.into_values() {
        // One hierarchy check for the whole level, not one per asset.
        for a in assets::create_many(&mut tx, created, at)
            .await
            .map_err(refusal)?
        {
            let e = entry(
                job.auth,
                "asset.create",
                "asset",
                a.id.to_string(),
                Some(a.site.clone()),
                None,
                json_of(&AssetView::from(&a)),
            );
            audit::record(&mut tx, &e).await?;
        }
        for a in updated {
            let site = a.site.clone();
            let id = a.id.to_string();
            let before = by_id.get(&a.id).map(|o| AssetView::from(*o));
            let changed = assets::update(&mut tx, a, at).await.map_err(refusal)?;
            let e = entry(
                job.auth,
                "asset.update",
                "asset",
                id,
                Some(site),
                before.as_ref().and_then(json_of),
                json_of(&AssetView::from(&changed.after)),
            );
            audit::record(&mut tx, &e).await?;
        }
    }
    finish(job, tx, rows, applied, touched, started).await
}

pub(super) async fn points(
    job: &Job<'_>,
    stored: &[Asset],
    merge: Merge<PointLink>,
    rows: usize,
    touched: &BTreeSet<SiteId>,
) -> Result<Applied, ApiError> {
    let applied = Applied::from(&merge);
    if job.dry_run {
        return Ok(applied);
    }
    let started = Instant::now();
    let by_id: HashMap<&AssetId, &Asset> = stored.iter().map(|a| (&a.id, a)).collect();
    let mut added: BTreeMap<AssetId, Vec<String>> = BTreeMap::new();
    for link in merge.created {
        added.entry(link.asset).or_default().push(link.point);
    }
    let mut tx = job.state.store.transaction().await?;
    lock_sites(&mut tx, touched).await?;
    verify_assets(&mut tx, &by_id, added.keys().cloned()).await?;
    let at = now();
    for (id, new_points) in added {
        let Some(old) = by_id.get(&id) else {
            return Err(changed_meanwhile(format!("asset {id}")));
        };
        let mut after = (*old).clone();
        after.points.extend(new_points);
        let changed = assets::update(&mut tx, after, at).await.map_err(refusal)?;
        let e = entry(
            job.auth,
            "asset.points_set",
            "asset",
            id.to_string(),
            Some(changed.after.site.clone()),
            json_of(&AssetView::from(&changed.before)),
            json_of(&AssetView::from(&changed.after)),
        );
        audit::record(&mut tx, &e).await?;
    }
    finish(job, tx, rows, applied, touched, started).await
}

/// A stock refusal of an imported count, naming the part.
fn stock_refusal(e: crate::store::CmmsError, p: &StoredPart) -> ApiError {
    match e {
        crate::store::CmmsError::Stock(s) => ApiError::conflict(
            s.code(),
            format!(
                "part {} at site {}: {s} (available: {})",
                p.stock.part,
                p.stock.site,
                p.stock.available()
            ),
        ),
        other => refusal(other),
    }
}

pub(super) async fn parts(
    job: &Job<'_>,
    stored: &[ExistingPart],
    merge: Merge<PartRecord>,
    rows: usize,
    named: &BTreeSet<SiteId>,
) -> Result<Applied, ApiError> {
    let by_key: HashMap<(&SiteId, &dcmms_shared::cmms::PartId), &ExistingPart> = stored
        .iter()
        .map(|e| ((&e.record.site, &e.record.part), e))
        .collect();
    // The store keeps a part's unit; a file may not change it.
    for r in &merge.updated {
        if let Some(old) = by_key.get(&(&r.site, &r.part)) {
            if old.record.unit != r.unit {
                return Err(ApiError::conflict(
                    "unit_change",
                    format!(
                        "part {} at site {} is stocked in {:?}, not {:?}; the stock unit of a \
                         stored part cannot be changed by an import",
                        r.part, r.site, old.record.unit, r.unit
                    ),
                ));
            }
        }
    }
    let applied = Applied::from(&merge);
    if job.dry_run {
        return Ok(applied);
    }
    let started = Instant::now();
    let mut tx = job.state.store.transaction().await?;
    let at = now();
    let mut touched = BTreeSet::new();
    for r in merge.created {
        touched.insert(r.site.clone());
        let mut part = parts::create(
            &mut tx,
            NewPart {
                site: r.site.clone(),
                part: r.part.clone(),
                name: r.name.clone(),
                unit: r.unit.clone(),
                unit_cost: r.unit_cost,
                reorder_level: r.reorder_level,
            },
            at,
        )
        .await
        .map_err(refusal)?;
        if r.on_hand > 0 {
            part = parts::receive(&mut tx, &r.site, &r.part, r.on_hand, at)
                .await
                .map_err(|e| stock_refusal(e, &part))?
                .after;
        }
        let e = entry(
            job.auth,
            "part.create",
            "part",
            format!("{}/{}", r.site, r.part),
            Some(r.site.clone()),
            None,
            json_of(&PartView::of(&part, true)),
        );
        audit::record(&mut tx, &e).await?;
    }
    // Rows are locked in key order, as every other stock change does.
    let mut updated = merge.updated;
    updated.sort_by(|a, b| (&a.site, &a.part).cmp(&(&b.site, &b.part)));
    for r in updated {
        touched.insert(r.site.clone());
        let key = format!("part {} at site {}", r.part, r.site);
        let before = parts::load(&mut conn(&mut tx), &r.site, &r.part, true)
            .await
            .map_err(refusal)?
            .ok_or_else(|| changed_meanwhile(key.clone()))?;
        let snapshot = by_key.get(&(&r.site, &r.part));
        let now_existing = ExistingPart::from_stock(&before.stock, before.name.clone());
        if snapshot.is_none_or(|s| **s != now_existing) {
            return Err(changed_meanwhile(key));
        }
        let mut after = before.clone();
        let s = &before.stock;
        if r.name != before.name || r.unit_cost != s.unit_cost || r.reorder_level != s.reorder_level
        {
            after = parts::set_details(
                &mut tx,
                &r.site,
                &r.part,
                r.name.clone(),
                r.unit_cost,
                r.reorder_level,
                at,
            )
            .await
            .map_err(refusal)?
            .after;
        }
        if r.on_hand != s.on_hand() {
            after = parts::adjust(&mut tx, &r.site, &r.part, r.on_hand, at)
                .await
                .map_err(|e| stock_refusal(e, &before))?
                .after;
        }
        let e = entry(
            job.auth,
            "part.update",
            "part",
            format!("{}/{}", r.site, r.part),
            Some(r.site.clone()),
            json_of(&PartView::of(&before, true)),
            json_of(&PartView::of(&after, true)),
        );
        audit::record(&mut tx, &e).await?;
    }
    let sites = if touched.is_empty() {
        named.clone()
    } else {
        touched
    };
    finish(job, tx, rows, applied, &sites, started).await
}
