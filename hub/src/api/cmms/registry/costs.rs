//! `/api/v1/costs`: maintenance cost over a date range, per site, asset
//! and month, of the sites where the caller may see costs.
//!
//! The figures are `store::cmms::costs::rollup`'s: labour at the
//! technicians' hourly rates (`users.hourly_rate_cents`) plus parts at the
//! unit cost recorded on the work order, each line dated by when the work
//! was done or the part used; only lines dated inside the range count.
//! Every amount is given as a decimal string (`"12.34"`) and in integer
//! cents (`*_cents`). Labour and parts are split per site (one roll-up per
//! site); per asset and per month only the total is known.

use super::dto::{date_text, decimal};
use super::{refusal, site_param};
use crate::api::{ApiError, ApiQuery, AppState, ErrorBody};
use crate::auth::{holds_fleet, require, Authenticated};
use crate::store::cmms::costs::{self, CostRollup};
use crate::store::cmms::sites;
use axum::extract::State;
use axum::Json;
use dcmms_shared::cmms::{Access, Money, Permission, SiteId, SiteScope};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use time::Date;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CostParams {
    /// One site only (default: every site where the caller may see costs).
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    site: Option<String>,
    /// First day, `YYYY-MM-DD`, inclusive.
    #[param(format = Date, example = "2025-01-01")]
    from: String,
    /// Last day, `YYYY-MM-DD`, inclusive (before `from`: an empty range,
    /// no costs).
    #[param(format = Date, example = "2025-12-31")]
    to: String,
}

/// Labour, parts and their total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CostSplit {
    /// Decimal, two places (`"12.34"`).
    pub labour: String,
    pub labour_cents: i64,
    pub parts: String,
    pub parts_cents: i64,
    pub total: String,
    pub total_cents: i64,
}

impl CostSplit {
    fn of(labour: Money, parts: Money, total: Money) -> Self {
        CostSplit {
            labour: labour.to_string(),
            labour_cents: labour.minor(),
            parts: parts.to_string(),
            parts_cents: parts.minor(),
            total: total.to_string(),
            total_cents: total.minor(),
        }
    }
}

/// The cost of one site.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SiteCost {
    pub site: String,
    /// Work orders with at least one cost dated in the range.
    pub work_orders: usize,
    pub cost: CostSplit,
}

/// The total cost of one asset's work orders.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssetCost {
    pub asset: String,
    pub site: String,
    pub total: String,
    pub total_cents: i64,
}

/// The total cost of one calendar month (UTC).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MonthCost {
    /// `YYYY-MM`.
    #[schema(example = "2025-02")]
    pub month: String,
    pub total: String,
    pub total_cents: i64,
}

/// Cost roll-up of a date range.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CostReport {
    #[schema(format = Date)]
    pub from: String,
    #[schema(format = Date)]
    pub to: String,
    /// Work orders with at least one cost dated in the range.
    pub work_orders: usize,
    /// All sites together.
    pub cost: CostSplit,
    /// Sites with costs in the range, by id.
    pub by_site: Vec<SiteCost>,
    /// Assets with costs in the range, by site then asset id.
    pub by_asset: Vec<AssetCost>,
    /// Months with costs in the range, in order.
    pub by_month: Vec<MonthCost>,
}

fn parse_day(name: &str, text: &str) -> Result<Date, ApiError> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text, fmt)
        .map_err(|_| ApiError::bad_request(format!("`{name}` is not a date as YYYY-MM-DD")))
}

/// The sites where the caller may see costs.
pub(super) fn cost_scope(access: &Access) -> SiteScope {
    if holds_fleet(access, Permission::ViewCosts) {
        SiteScope::All
    } else {
        SiteScope::Only(
            access
                .site_roles
                .keys()
                .filter(|s| access.can(s, Permission::ViewCosts))
                .cloned()
                .collect(),
        )
    }
}

fn add(a: Money, b: Money) -> Result<Money, ApiError> {
    a.checked_add(b)
        .ok_or_else(|| ApiError::conflict("cost_overflow", "the total does not fit in 64 bits"))
}

/// Maintenance cost per site, asset and month.
#[utoipa::path(
    get, path = "/api/v1/costs", tag = "costs",
    params(CostParams),
    responses(
        (status = 200, description = "The roll-up", body = CostReport),
        (status = 400, description = "A date is missing or not a date, or `site` is not a site id", body = ErrorBody),
        (status = 404, description = "No such site", body = ErrorBody),
        (status = 409, description = "`rule`: `missing_rate` (labour of a technician without an hourly rate) or `cost_overflow`", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn get_costs(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiQuery(p): ApiQuery<CostParams>,
) -> Result<Json<CostReport>, ApiError> {
    let from = parse_day("from", &p.from)?;
    let to = parse_day("to", &p.to)?;
    let site_ids: Vec<SiteId> = match &p.site {
        Some(s) => {
            let site = site_param(s)?;
            require(&auth.access, &site, Permission::ViewCosts)?;
            sites::get(&state.store, &site).await.map_err(refusal)?;
            vec![site]
        }
        None => match cost_scope(&auth.access) {
            SiteScope::All => sites::list(&state.store, &SiteScope::All)
                .await
                .map_err(refusal)?
                .into_iter()
                .map(|s| s.id)
                .collect(),
            SiteScope::Only(s) => s.into_iter().collect(),
        },
    };
    let rates = costs::user_rates(&state.store).await.map_err(refusal)?;
    let (mut labour, mut parts) = (Money::ZERO, Money::ZERO);
    let mut work_orders = 0;
    let mut by_site = Vec::new();
    let mut by_asset = Vec::new();
    let mut months: std::collections::BTreeMap<_, Money> = Default::default();
    for site in site_ids {
        let scope = SiteScope::Only(BTreeSet::from([site.clone()]));
        let r: CostRollup = costs::rollup(&state.store, &scope, from, to, &rates)
            .await
            .map_err(refusal)?;
        if r.work_orders == 0 {
            continue;
        }
        labour = add(labour, r.labour)?;
        parts = add(parts, r.parts)?;
        work_orders += r.work_orders;
        by_site.push(SiteCost {
            site: site.to_string(),
            work_orders: r.work_orders,
            cost: CostSplit::of(r.labour, r.parts, r.total),
        });
        by_asset.extend(r.by_asset.into_iter().map(|(asset, m)| AssetCost {
            asset: asset.to_string(),
            site: site.to_string(),
            total: m.to_string(),
            total_cents: m.minor(),
        }));
        for (month, m) in r.by_month {
            let slot = months.entry(month).or_insert(Money::ZERO);
            *slot = add(*slot, m)?;
        }
    }
    let total = add(labour, parts)?;
    Ok(Json(CostReport {
        from: date_text(from),
        to: date_text(to),
        work_orders,
        cost: CostSplit::of(labour, parts, total),
        by_site,
        by_asset,
        by_month: months
            .into_iter()
            .map(|(month, m)| MonthCost {
                month: month.to_string(),
                total: decimal(m.minor()),
                total_cents: m.minor(),
            })
            .collect(),
    }))
}
