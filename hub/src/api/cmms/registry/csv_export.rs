//! `GET /api/v1/export/{kind}`: the registers the caller sees as CSV
//! files in the import formats, so an export can be edited and imported
//! back (with `mode=upsert`).
//!
//! The file is UTF-8 with a byte-order mark, which spreadsheet programs
//! need to read it as UTF-8 and which the import accepts. `parts.csv`
//! carries unit costs, so it holds the sites where the caller has
//! `view_costs`; the other files the sites the caller sees.

use super::costs::cost_scope;
use super::dto::FileKind;
use super::{refusal, site_param};
use crate::api::{ApiError, ApiQuery, AppState, ErrorBody};
use crate::auth::{require, Authenticated};
use crate::store::cmms::{assets, parts, sites};
use crate::store::Store;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use dcmms_shared::cmms::csv::{self, PartRecord, SiteRecord};
use dcmms_shared::cmms::{Asset, Permission, SiteScope};
use serde::Deserialize;
use std::collections::BTreeSet;
use utoipa::IntoParams;

/// The byte-order mark that starts every exported file.
pub const BOM: &str = "\u{feff}";

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// One site only (default: every site the caller sees).
    #[param(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    site: Option<String>,
}

/// Every asset of the sites in `scope`, by id.
async fn all_assets(store: &Store, scope: &SiteScope) -> Result<Vec<Asset>, ApiError> {
    let mut out: Vec<Asset> = Vec::new();
    loop {
        let after = out.last().map(|a| a.id.clone());
        let page = assets::list(store, scope, after.as_ref(), 1000)
            .await
            .map_err(refusal)?;
        let done = page.len() < 1000;
        out.extend(page);
        if done {
            return Ok(out);
        }
    }
}

/// Download a register as CSV.
#[utoipa::path(
    get, path = "/api/v1/export/{kind}", tag = "onboarding",
    params(("kind" = inline(FileKind), Path, description = "What to export"), ExportParams),
    responses(
        (status = 200, description = "The file, in the import format (UTF-8 with a byte-order mark)", body = String, content_type = "text/csv"),
        (status = 400, description = "Not a valid site id", body = ErrorBody),
        (status = 404, description = "No such kind of file", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn export_file(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(kind): Path<String>,
    ApiQuery(p): ApiQuery<ExportParams>,
) -> Result<Response, ApiError> {
    let kind = FileKind::parse(&kind)?;
    let needs = match kind {
        FileKind::Parts => Permission::ViewCosts,
        _ => Permission::View,
    };
    let scope = match &p.site {
        Some(s) => {
            let site = site_param(s)?;
            require(&auth.access, &site, needs)?;
            SiteScope::Only(BTreeSet::from([site]))
        }
        None if kind == FileKind::Parts => cost_scope(&auth.access),
        None => auth.access.visible_sites(),
    };
    let store = &state.store;
    let text = match kind {
        FileKind::Sites => {
            let records: Vec<SiteRecord> = sites::list(store, &scope)
                .await
                .map_err(refusal)?
                .into_iter()
                .map(|s| SiteRecord {
                    id: s.id,
                    name: s.name,
                    timezone: s.timezone,
                })
                .collect();
            csv::export_sites(&records)
        }
        FileKind::Assets => csv::export_assets(&all_assets(store, &scope).await?),
        FileKind::Points => csv::export_points(&all_assets(store, &scope).await?),
        FileKind::Parts => {
            let mut records: Vec<PartRecord> = Vec::new();
            for site in sites::list(store, &scope).await.map_err(refusal)? {
                for part in parts::list(store, &site.id).await.map_err(refusal)? {
                    records.push(PartRecord::from_stock(&part.stock, part.name));
                }
            }
            csv::export_parts(&records)
        }
    };
    let disposition = format!("attachment; filename=\"{}\"", kind.file_name());
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        format!("{BOM}{text}"),
    )
        .into_response())
}
