//! Bulk loading of synthetic maintenance data, for benchmarks and demos.
//!
//! [`seed`] writes sites, a valid asset hierarchy and work orders in every
//! state into an empty CMMS schema, in batched transactions with multi-row
//! inserts (SQLite: `VALUES` lists below its bound-variable limit;
//! PostgreSQL: `UNNEST` of array binds). The data are deterministic (a
//! fixed pseudo-random sequence), built as domain structs and stored with
//! the same row derivation as the normal write path, so every listing,
//! filter and cost query works on them. Ids are fixed (`seed-001`,
//! `seed-a000001`; work orders take the next `WO-nnnnnn`), so seeding twice
//! into one database fails with a duplicate.

use super::work_orders::{IndexRow, ASSIGNEE_COLUMNS, COUNTER, ROW_COLUMNS};
use super::{both, conn, date_str, ms, next_counter, work_order_id, CmmsError, Conn};
use crate::store::{Store, Tx};
use dcmms_shared::cmms::state::StateEvent;
use dcmms_shared::cmms::work_order::LabourEntry;
use dcmms_shared::cmms::{
    validate_hierarchy, ActionKind, Actor, Asset, AssetKind, Criticality, NewWorkOrder, Priority,
    Role, State, TaskKind, TaskSpec, UserId, WorkOrder, WorkType,
};
use sqlx::QueryBuilder;
use std::time::{Duration, Instant};
use time::macros::datetime;
use time::OffsetDateTime;

/// Work orders per transaction.
const TX_ROWS: usize = 10_000;
/// Rows per SQLite multi-row insert (21 binds each, below 32766; 8 binds
/// each for assignees, three times as many rows).
const SQLITE_CHUNK: usize = 1_000;
/// Rows per SQLite asset insert (13 binds each).
const SQLITE_ASSET_CHUNK: usize = 2_000;
/// Rows per PostgreSQL UNNEST insert.
const PG_CHUNK: usize = 5_000;
/// Every this many assets of a site, one is an area the next ones hang under.
const AREA_EVERY: usize = 20;
/// Technicians the work orders are assigned to.
const TECHNICIANS: u64 = 40;

/// What [`seed`] wrote and how long it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedReport {
    pub sites: usize,
    pub assets: usize,
    pub work_orders: usize,
    pub elapsed: Duration,
}

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

fn site_id(s: usize) -> String {
    format!("seed-{s:03}")
}

fn asset_id(n: usize) -> String {
    format!("seed-a{n:06}")
}

/// Asset `n` of `sites` sites: round-robin over the sites; within a site,
/// every [`AREA_EVERY`]th asset is an area and the others hang under the
/// latest area (levels 2 and 3).
fn asset(n: usize, sites: usize) -> Asset {
    let site = n % sites;
    let k = n / sites;
    let id = asset_id(n);
    let site_name = site_id(site);
    let area = k.is_multiple_of(AREA_EVERY);
    Asset {
        parent: (!area).then(|| asset_id((k - k % AREA_EVERY) * sites + site).into()),
        name: if area {
            format!("Block {}", k / AREA_EVERY + 1)
        } else {
            format!("Inverter {k}")
        },
        kind: if area {
            AssetKind::Area
        } else {
            AssetKind::Inverter
        },
        manufacturer: (!area).then(|| "SMA".to_owned()),
        model: (!area).then(|| "Sunny Central 2500".to_owned()),
        serial: (!area).then(|| format!("SN{n:08}")),
        installed_on: None,
        criticality: if area {
            Criticality::High
        } else {
            Criticality::Medium
        },
        location: None,
        points: if area {
            Vec::new()
        } else {
            vec![format!("{site_name}/{id}/ac_power")]
        },
        id: id.into(),
        site: site_name.into(),
    }
}

/// Work order `i` (id `id`) on a random asset of its site, in a random
/// state with the assignees, history and labour that state implies.
fn work_order(
    i: usize,
    id: String,
    sites: usize,
    assets: usize,
    rng: &mut Rng,
) -> Result<WorkOrder, CmmsError> {
    const START: OffsetDateTime = datetime!(2025-01-01 00:00 UTC);
    let site = i % sites;
    let per_site = (assets - site).div_ceil(sites) as u64;
    let n = rng.below(per_site) as usize * sites + site;
    let created = START + time::Duration::minutes(i as i64 * 5);
    let priority = Priority::ALL[rng.below(4) as usize];
    let work_type = [
        WorkType::Corrective,
        WorkType::Preventive,
        WorkType::Predictive,
        WorkType::Inspection,
    ][rng.below(4) as usize];
    let new = NewWorkOrder {
        id: id.into(),
        site: site_id(site).into(),
        asset: asset_id(n).into(),
        work_type,
        priority,
        title: format!("{work_type:?} work on inverter {n}"),
        description: "Seeded work order.".to_owned(),
        due: (rng.below(10) < 7)
            .then(|| created.date() + time::Duration::days(rng.below(60) as i64)),
        sla_hours: None,
        checklist: vec![
            TaskSpec::new("visual", "Visual inspection", TaskKind::Check, true),
            TaskSpec::new(
                "temp",
                "Cabinet temperature",
                TaskKind::Reading {
                    unit: "degC".into(),
                    min: None,
                    max: Some(60.0),
                },
                false,
            ),
        ],
        pm_occurrence: None,
    };
    let actor = Actor::new("seed-supervisor", Role::Supervisor, new.site.clone());
    let mut wo = WorkOrder::create(new, &actor, created)?;
    wo.state = State::ALL[rng.below(State::ALL.len() as u64) as usize];
    if matches!(wo.state, State::Requested) {
        wo.requested_by = UserId(format!("tech-{:02}", rng.below(TECHNICIANS)));
    }
    let assigned = !matches!(
        wo.state,
        State::Requested | State::Open | State::Scheduled | State::Cancelled
    );
    if assigned {
        let tech = UserId(format!("tech-{:02}", rng.below(TECHNICIANS)));
        wo.assignees.insert(tech.clone());
        if rng.below(4) == 0 {
            wo.assignees
                .insert(UserId(format!("tech-{:02}", rng.below(TECHNICIANS))));
        }
        if wo.completed_at().is_none()
            && matches!(wo.state, State::Completed | State::Verified | State::Closed)
        {
            let done = created + time::Duration::hours(rng.below(96) as i64 + 1);
            wo.history.push(StateEvent {
                at: done,
                by: tech.clone(),
                action: ActionKind::Complete,
                from: State::InProgress,
                to: State::Completed,
                reason: None,
            });
            wo.labour.push(LabourEntry {
                technician: tech,
                date: done.date(),
                minutes: 30 + rng.below(210) as u32,
                note: None,
            });
        }
    }
    if wo.state == State::OnHold {
        wo.hold_reason = Some("waiting for parts".into());
    }
    Ok(wo)
}

async fn insert_sites(c: &mut Conn<'_>, sites: usize, at: i64) -> Result<(), CmmsError> {
    let ids: Vec<String> = (0..sites).map(site_id).collect();
    both!(c, Conn, x => {
        for chunk in ids.chunks(1000) {
            let mut qb = QueryBuilder::new("INSERT INTO sites (id, name, timezone, created_ms) ");
            qb.push_values(chunk, |mut b, id| {
                b.push_bind(id.as_str())
                    .push_bind(format!("Seeded site {id}"))
                    .push_bind("UTC")
                    .push_bind(at);
            });
            qb.build().execute(&mut **x).await?;
        }
    });
    Ok(())
}

async fn insert_assets(c: &mut Conn<'_>, assets: &[Asset], at: i64) -> Result<(), CmmsError> {
    let kinds: Vec<String> = assets
        .iter()
        .map(|a| super::enum_str(&a.kind))
        .collect::<Result<_, _>>()?;
    let crit: Vec<String> = assets
        .iter()
        .map(|a| super::enum_str(&a.criticality))
        .collect::<Result<_, _>>()?;
    let rows: Vec<(usize, &Asset)> = assets.iter().enumerate().collect();
    let points: Vec<(&str, i64, &str)> = assets
        .iter()
        .flat_map(|a| {
            a.points
                .iter()
                .enumerate()
                .map(|(i, p)| (a.id.as_str(), i as i64, p.as_str()))
        })
        .collect();
    both!(c, Conn, x => {
        for chunk in rows.chunks(SQLITE_ASSET_CHUNK) {
            let mut qb = QueryBuilder::new(
                "INSERT INTO assets (id, site, parent, name, kind, kind_other, manufacturer, model, \
                 serial, installed_on, criticality, location, created_ms, updated_ms) ",
            );
            qb.push_values(chunk, |mut b, (i, a)| {
                b.push_bind(a.id.as_str())
                    .push_bind(a.site.as_str())
                    .push_bind(a.parent.as_ref().map(|p| p.as_str()))
                    .push_bind(&a.name)
                    .push_bind(kinds[*i].as_str())
                    .push_bind(None::<String>)
                    .push_bind(&a.manufacturer)
                    .push_bind(&a.model)
                    .push_bind(&a.serial)
                    .push_bind(a.installed_on.map(date_str))
                    .push_bind(crit[*i].as_str())
                    .push_bind(&a.location)
                    .push_bind(at)
                    .push_bind(at);
            });
            qb.build().execute(&mut **x).await?;
        }
        for chunk in points.chunks(SQLITE_ASSET_CHUNK) {
            let mut qb = QueryBuilder::new("INSERT INTO asset_points (asset, position, point) ");
            qb.push_values(chunk, |mut b, (a, i, p)| {
                b.push_bind(*a).push_bind(*i).push_bind(*p);
            });
            qb.build().execute(&mut **x).await?;
        }
    });
    Ok(())
}

async fn insert_work_orders(c: &mut Conn<'_>, wos: &[WorkOrder]) -> Result<(), CmmsError> {
    let rows: Vec<IndexRow> = wos
        .iter()
        .map(|wo| IndexRow::of(wo, wo.history.last().map_or(wo.created_at, |e| e.at)))
        .collect::<Result<_, _>>()?;
    // (row of the work order, assignee)
    let assignees: Vec<(&IndexRow, &str)> = wos
        .iter()
        .zip(&rows)
        .flat_map(|(wo, row)| wo.assignees.iter().map(move |u| (row, u.as_str())))
        .collect();
    match c {
        Conn::Sqlite(x) => {
            for chunk in rows.chunks(SQLITE_CHUNK) {
                let mut qb =
                    QueryBuilder::new(format!("INSERT INTO work_orders ({ROW_COLUMNS}, version) "));
                qb.push_values(chunk, |mut b, r| {
                    b.push_bind(&r.id)
                        .push_bind(&r.site)
                        .push_bind(&r.asset)
                        .push_bind(&r.work_type)
                        .push_bind(&r.priority)
                        .push_bind(&r.state)
                        .push_bind(&r.title)
                        .push_bind(&r.requested_by)
                        .push_bind(r.created_ms)
                        .push_bind(r.updated_ms)
                        .push_bind(&r.due)
                        .push_bind(&r.due_key)
                        .push_bind(&r.scheduled_for)
                        .push_bind(r.sla_deadline_ms)
                        .push_bind(r.completed_ms)
                        .push_bind(&r.pm_plan)
                        .push_bind(r.pm_index)
                        .push_bind(&r.cost_from)
                        .push_bind(&r.cost_to)
                        .push_bind(&r.doc)
                        .push_bind(1i64);
                });
                qb.build().execute(&mut **x).await?;
            }
            for chunk in assignees.chunks(SQLITE_CHUNK * 3) {
                let mut qb = QueryBuilder::new(format!(
                    "INSERT INTO work_order_assignees ({ASSIGNEE_COLUMNS}) "
                ));
                qb.push_values(chunk, |mut b, (r, u)| {
                    b.push_bind(&r.id)
                        .push_bind(*u)
                        .push_bind(&r.site)
                        .push_bind(&r.state)
                        .push_bind(r.created_ms)
                        .push_bind(r.updated_ms)
                        .push_bind(&r.due_key)
                        .push_bind(&r.priority);
                });
                qb.build().execute(&mut **x).await?;
            }
        }
        Conn::Postgres(x) => {
            for chunk in rows.chunks(PG_CHUNK) {
                let text = |f: fn(&IndexRow) -> &String| {
                    chunk.iter().map(f).cloned().collect::<Vec<String>>()
                };
                let opt = |f: fn(&IndexRow) -> &Option<String>| {
                    chunk
                        .iter()
                        .map(f)
                        .cloned()
                        .collect::<Vec<Option<String>>>()
                };
                sqlx::query(
                    "INSERT INTO work_orders (id, site, asset, work_type, priority, state, title, \
                     requested_by, created_ms, updated_ms, due, due_key, scheduled_for, \
                     sla_deadline_ms, completed_ms, pm_plan, pm_index, cost_from, cost_to, doc, version) \
                     SELECT id, site, asset, work_type, priority, state, title, requested_by, \
                     created_ms, updated_ms, due, due_key, scheduled_for, sla_deadline_ms, \
                     completed_ms, pm_plan, pm_index, cost_from, cost_to, doc::jsonb, 1 \
                     FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                     $6::text[], $7::text[], $8::text[], $9::int8[], $10::int8[], $11::text[], \
                     $12::text[], $13::text[], $14::int8[], $15::int8[], $16::text[], $17::int8[], \
                     $18::text[], $19::text[], $20::text[]) AS u(id, site, asset, work_type, \
                     priority, state, title, requested_by, created_ms, updated_ms, due, due_key, \
                     scheduled_for, sla_deadline_ms, completed_ms, pm_plan, pm_index, cost_from, \
                     cost_to, doc)",
                )
                .bind(text(|r| &r.id))
                .bind(text(|r| &r.site))
                .bind(text(|r| &r.asset))
                .bind(text(|r| &r.work_type))
                .bind(text(|r| &r.priority))
                .bind(text(|r| &r.state))
                .bind(text(|r| &r.title))
                .bind(text(|r| &r.requested_by))
                .bind(chunk.iter().map(|r| r.created_ms).collect::<Vec<i64>>())
                .bind(chunk.iter().map(|r| r.updated_ms).collect::<Vec<i64>>())
                .bind(opt(|r| &r.due))
                .bind(text(|r| &r.due_key))
                .bind(opt(|r| &r.scheduled_for))
                .bind(chunk.iter().map(|r| r.sla_deadline_ms).collect::<Vec<i64>>())
                .bind(chunk.iter().map(|r| r.completed_ms).collect::<Vec<Option<i64>>>())
                .bind(opt(|r| &r.pm_plan))
                .bind(chunk.iter().map(|r| r.pm_index).collect::<Vec<Option<i64>>>())
                .bind(opt(|r| &r.cost_from))
                .bind(opt(|r| &r.cost_to))
                .bind(text(|r| &r.doc))
                .execute(&mut **x)
                .await?;
            }
            for chunk in assignees.chunks(PG_CHUNK) {
                let text = |f: fn(&IndexRow) -> &str| {
                    chunk.iter().map(|(r, _)| f(r)).collect::<Vec<&str>>()
                };
                let int =
                    |f: fn(&IndexRow) -> i64| chunk.iter().map(|(r, _)| f(r)).collect::<Vec<i64>>();
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO work_order_assignees ({ASSIGNEE_COLUMNS}) \
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
                     $5::int8[], $6::int8[], $7::text[], $8::text[])"
                )))
                .bind(text(|r| &r.id))
                .bind(chunk.iter().map(|(_, u)| *u).collect::<Vec<&str>>())
                .bind(text(|r| &r.site))
                .bind(text(|r| &r.state))
                .bind(int(|r| r.created_ms))
                .bind(int(|r| r.updated_ms))
                .bind(text(|r| &r.due_key))
                .bind(text(|r| &r.priority))
                .execute(&mut **x)
                .await?;
            }
        }
    }
    Ok(())
}

/// Seeds `sites` sites, `assets` assets spread over them (at least one per
/// site) and `work_orders` work orders; calls `progress` with the number of
/// work orders written after each committed batch.
pub async fn seed(
    store: &Store,
    sites: usize,
    assets: usize,
    work_orders: usize,
    progress: impl Fn(usize),
) -> Result<SeedReport, CmmsError> {
    let started = Instant::now();
    if sites == 0 || assets < sites {
        return Err(CmmsError::invalid(
            "bad_seed",
            "seeding needs at least one site and one asset per site",
        ));
    }
    let now = ms(OffsetDateTime::now_utc());
    let all_assets: Vec<Asset> = (0..assets).map(|n| asset(n, sites)).collect();
    let links: Vec<_> = all_assets.iter().map(Asset::link).collect();
    validate_hierarchy(&links)?;

    let mut tx: Tx = store.transaction().await?;
    {
        let mut c = conn(&mut tx);
        insert_sites(&mut c, sites, now).await?;
        insert_assets(&mut c, &all_assets, now).await?;
    }
    tx.commit().await?;
    drop(all_assets);

    let mut rng = Rng(0x5EED);
    let mut done = 0;
    while done < work_orders {
        let n = (work_orders - done).min(TX_ROWS);
        let mut tx = store.transaction().await?;
        let mut c = conn(&mut tx);
        let last = next_counter(&mut c, COUNTER, n as i64).await?;
        let first = last - n as i64 + 1;
        let batch = (0..n)
            .map(|k| {
                let id = work_order_id(first + k as i64).0;
                work_order(done + k, id, sites, assets, &mut rng)
            })
            .collect::<Result<Vec<_>, _>>()?;
        insert_work_orders(&mut c, &batch).await?;
        tx.commit().await?;
        done += n;
        progress(done);
    }
    // Fresh statistics, so the planners see the bulk-loaded tables as
    // they are (PostgreSQL's autovacuum would get there later).
    both!(store, Store, p => {
        sqlx::query("ANALYZE").execute(p).await?;
    });
    Ok(SeedReport {
        sites,
        assets,
        work_orders,
        elapsed: started.elapsed(),
    })
}
