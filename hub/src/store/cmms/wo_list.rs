//! Listing work orders: filters, sort orders and keyset pagination.
//!
//! The query filters and sorts on the indexed columns only and reads the
//! documents of the rows it returns. Pages are keyset pages: the cursor
//! carries the sort key and id of the last row returned, and the next page
//! starts strictly after it in `(key, id)` order. Rows inserted or removed
//! between pages therefore never make a page repeat or skip a row that
//! stayed in place; a row whose sort key changes between pages (an update,
//! when sorting by `updated_at`) may be seen twice or not at all.
//!
//! Indexes (see the migration): one per sort key, fleet-wide `(key, id)` and
//! per site `(site, key, id)`, so that a scoped or unscoped page is a range
//! scan stopping after `limit` rows; `(asset, created_ms)` for that filter,
//! which selects few rows; `(state, due_key, id)` for backlog views by due
//! date. An assignee filter pages through the assignee table instead, which
//! carries copies of the site, state and sort keys and one
//! `(user_id, key, work_order)` index per sort key. The page is chosen by an
//! inner query over those columns; only its rows' documents are read. A title search is a scan (of the index in sort order, stopping
//! once the page is full): combine it with other filters on large fleets.

use super::work_orders::{StoredWorkOrder, NO_DUE};
use super::{both, date_str, from_doc, CmmsError, Conn, Db};
use dcmms_shared::cmms::{AssetId, Priority, SiteScope, State, UserId, WorkType};
use serde::{Deserialize, Serialize};
use time::Date;

/// Largest page.
pub const MAX_LIMIT: u32 = 1000;
/// Page size when the caller names none.
pub const DEFAULT_LIMIT: u32 = 50;

/// Which work orders to list. Empty lists and `None` do not filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkOrderFilter {
    /// The sites the caller may see (always applied).
    pub sites: SiteScope,
    pub asset: Option<AssetId>,
    pub states: Vec<State>,
    pub assignee: Option<UserId>,
    /// Due on or after (work orders without a due date are left out).
    pub due_from: Option<Date>,
    /// Due on or before (work orders without a due date are left out).
    pub due_to: Option<Date>,
    pub work_types: Vec<WorkType>,
    pub priorities: Vec<Priority>,
    /// Case-insensitive substring of the title (a scan: combine it with
    /// other filters on large fleets).
    pub title_contains: Option<String>,
}

impl WorkOrderFilter {
    /// Everything the scope lets the caller see.
    pub fn new(sites: SiteScope) -> Self {
        WorkOrderFilter {
            sites,
            asset: None,
            states: Vec::new(),
            assignee: None,
            due_from: None,
            due_to: None,
            work_types: Vec::new(),
            priorities: Vec::new(),
            title_contains: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortField {
    #[default]
    CreatedAt,
    /// Work orders without a due date come last ascending, first descending.
    Due,
    /// P1 first ascending.
    Priority,
    UpdatedAt,
}

impl SortField {
    fn column(self) -> &'static str {
        match self {
            SortField::CreatedAt => "created_ms",
            SortField::Due => "due_key",
            SortField::Priority => "priority",
            SortField::UpdatedAt => "updated_ms",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            SortField::CreatedAt => "c",
            SortField::Due => "d",
            SortField::Priority => "p",
            SortField::UpdatedAt => "u",
        }
    }

    fn is_integer(self) -> bool {
        matches!(self, SortField::CreatedAt | SortField::UpdatedAt)
    }
}

/// Sort order; ties are broken by id in the same direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Sort {
    pub field: SortField,
    pub descending: bool,
}

/// One page and the cursor of the next (`None`: this was the last page).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkOrderPage {
    pub items: Vec<StoredWorkOrder>,
    pub next_cursor: Option<String>,
}

/// A bound value of the generated query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

/// Position after which a page starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct After {
    key: Arg,
    id: String,
}

const CURSOR_VERSION: &str = "1";

fn encode_cursor(sort: Sort, key: &str, id: &str) -> String {
    let dir = if sort.descending { "d" } else { "a" };
    hex::encode(format!(
        "{CURSOR_VERSION}|{}|{dir}|{key}|{id}",
        sort.field.tag()
    ))
}

fn bad_cursor() -> CmmsError {
    CmmsError::invalid(
        "invalid_cursor",
        "the cursor is not one this listing returned",
    )
}

/// Decodes a cursor; it must come from a listing with the same sort.
pub(crate) fn decode_cursor(sort: Sort, cursor: &str) -> Result<After, CmmsError> {
    let bytes = hex::decode(cursor).map_err(|_| bad_cursor())?;
    let text = String::from_utf8(bytes).map_err(|_| bad_cursor())?;
    let mut parts = text.splitn(5, '|');
    let (Some(v), Some(field), Some(dir), Some(key), Some(id)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(bad_cursor());
    };
    let dir_ok = dir == if sort.descending { "d" } else { "a" };
    if v != CURSOR_VERSION || field != sort.field.tag() || !dir_ok {
        return Err(bad_cursor());
    }
    let key = if sort.field.is_integer() {
        Arg::Int(key.parse().map_err(|_| bad_cursor())?)
    } else {
        Arg::Text(key.to_owned())
    };
    Ok(After {
        key,
        id: id.to_owned(),
    })
}

/// Builds the listing query: `SELECT doc, version, key-as-text`.
/// `pg`: PostgreSQL (documents are JSONB there).
pub(crate) fn list_query(
    filter: &WorkOrderFilter,
    sort: Sort,
    after: Option<&After>,
    fetch: i64,
    pg: bool,
) -> Result<(String, Vec<Arg>), CmmsError> {
    let mut args: Vec<Arg> = Vec::new();
    let mut arg = |a: Arg| {
        args.push(a);
        format!("${}", args.len())
    };
    let list = |arg: &mut dyn FnMut(Arg) -> String, items: Vec<String>| {
        items
            .into_iter()
            .map(|s| arg(Arg::Text(s)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    // The inner query picks the page from the indexed columns only; the
    // outer one reads the documents of those rows alone, so that a sort
    // never carries documents along. With an assignee, the page comes from
    // the assignee table's copies of the site, state and sort keys (`t`),
    // joined to the work orders only for the other filters.
    let (t, id) = if filter.assignee.is_some() {
        ("a", "a.work_order")
    } else {
        ("w", "w.id")
    };
    let col = format!("{t}.{}", sort.field.column());
    let mut sql = match &filter.assignee {
        None => format!("SELECT w.id AS id, {col} AS k FROM work_orders w WHERE TRUE"),
        Some(user) => {
            let join = filter.asset.is_some()
                || !filter.work_types.is_empty()
                || filter
                    .title_contains
                    .as_deref()
                    .is_some_and(|t| !t.is_empty());
            let join = if join {
                " JOIN work_orders w ON w.id = a.work_order"
            } else {
                ""
            };
            let user = arg(Arg::Text(user.0.clone()));
            format!(
                "SELECT a.work_order AS id, {col} AS k FROM work_order_assignees a{join} \
                 WHERE a.user_id = {user}"
            )
        }
    };
    if let SiteScope::Only(sites) = &filter.sites {
        let ids = list(&mut arg, sites.iter().map(|s| s.0.clone()).collect());
        sql += &format!(" AND {t}.site IN ({ids})");
    }
    if let Some(asset) = &filter.asset {
        sql += &format!(" AND w.asset = {}", arg(Arg::Text(asset.0.clone())));
    }
    if !filter.states.is_empty() {
        let items = filter
            .states
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        sql += &format!(" AND {t}.state IN ({})", list(&mut arg, items));
    }
    // On the sort key, so that a due range is an index range; `due_key`
    // equals `due` where there is one.
    if let Some(from) = filter.due_from {
        sql += &format!(" AND {t}.due_key >= {}", arg(Arg::Text(date_str(from))));
    }
    if let Some(to) = filter.due_to {
        sql += &format!(" AND {t}.due_key <= {}", arg(Arg::Text(date_str(to))));
    }
    if filter.due_from.is_some() || filter.due_to.is_some() {
        sql += &format!(" AND {t}.due_key <> '{NO_DUE}'");
    }
    if !filter.work_types.is_empty() {
        let items = filter
            .work_types
            .iter()
            .map(super::enum_str)
            .collect::<Result<Vec<_>, _>>()?;
        sql += &format!(" AND w.work_type IN ({})", list(&mut arg, items));
    }
    if !filter.priorities.is_empty() {
        let items = filter
            .priorities
            .iter()
            .map(super::enum_str)
            .collect::<Result<Vec<_>, _>>()?;
        sql += &format!(" AND {t}.priority IN ({})", list(&mut arg, items));
    }
    if let Some(text) = filter.title_contains.as_deref().filter(|t| !t.is_empty()) {
        let escaped = text
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        sql += &format!(
            " AND LOWER(w.title) LIKE {} ESCAPE '\\'",
            arg(Arg::Text(format!("%{escaped}%")))
        );
    }
    let (cmp, dir) = if sort.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(after) = after {
        let key = arg(after.key.clone());
        let after_id = arg(Arg::Text(after.id.clone()));
        sql += &format!(" AND ({col}, {id}) {cmp} ({key}, {after_id})");
    }
    let limit = arg(Arg::Int(fetch));
    sql += &format!(" ORDER BY {col} {dir}, {id} {dir} LIMIT {limit}");
    let doc = if pg { "w.doc::text" } else { "w.doc" };
    let sql = format!(
        "SELECT {doc}, w.version, CAST(p.k AS TEXT) FROM ({sql}) p \
         JOIN work_orders w ON w.id = p.id ORDER BY p.k {dir}, p.id {dir}"
    );
    Ok((sql, args))
}

/// One page of work orders matching `filter` in `sort` order, starting
/// after `cursor` (from the previous page's `next_cursor`, with the same
/// sort). `limit`: 1..=[`MAX_LIMIT`], default [`DEFAULT_LIMIT`].
pub async fn list<'a>(
    db: impl Into<Db<'a>>,
    filter: &WorkOrderFilter,
    sort: Sort,
    cursor: Option<&str>,
    limit: Option<u32>,
) -> Result<WorkOrderPage, CmmsError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT) as usize;
    let after = cursor.map(|c| decode_cursor(sort, c)).transpose()?;
    if matches!(&filter.sites, SiteScope::Only(s) if s.is_empty()) {
        return Ok(WorkOrderPage {
            items: Vec::new(),
            next_cursor: None,
        });
    }
    let mut lease = db.into().lease().await?;
    let mut c = lease.conn();
    let (sql, args) = list_query(filter, sort, after.as_ref(), limit as i64 + 1, c.is_pg())?;
    let mut rows: Vec<(String, i64, String)> = both!(&mut c, Conn, x => {
        let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
        for a in &args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
            };
        }
        q.fetch_all(&mut **x).await?
    });
    let more = rows.len() > limit;
    rows.truncate(limit);
    let last_key = if more {
        rows.last().map(|(_, _, key)| key.clone())
    } else {
        None
    };
    let items = rows
        .into_iter()
        .map(|(doc, version, _)| {
            Ok(StoredWorkOrder {
                work_order: from_doc("work order", &doc)?,
                version,
            })
        })
        .collect::<Result<Vec<_>, CmmsError>>()?;
    let next_cursor = last_key
        .zip(items.last())
        .map(|(key, last)| encode_cursor(sort, &key, last.work_order.id.as_str()));
    Ok(WorkOrderPage { items, next_cursor })
}
