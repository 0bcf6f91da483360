//! `POST /api/v1/import/{kind}`: onboarding from CSV files (`sites.csv`,
//! `assets.csv`, `points.csv`, `parts.csv`; formats in
//! `dcmms_shared::cmms::csv`).
//!
//! A request goes: the body must be `text/csv` (415) of at most
//! [`MAX_IMPORT_BYTES`] (413); the sites the file touches are read from
//! its columns and the caller's permission is checked at every one of
//! them before anything else is looked at (403 naming the first site
//! refused, so a report never tells about a site the caller may not
//! change); the stored records the file names are loaded; the file is
//! checked and merged by the format's parser on a blocking thread (a file
//! with any problem: 422 with the whole report, nothing written); then
//! every created and updated record is written by the store in ONE
//! transaction with its audit entries, plus one entry for the file
//! (`import.<kind>`). `dry_run=true` stops before writing and answers
//! what would have been done.
//!
//! Checking runs against records read before the transaction, so a long
//! parse never holds the database's write lock; the store checks its rules
//! again on every write, so a concurrent change makes the import fail
//! (409) rather than break a rule.

use super::csv_apply::{self, Applied};
use super::dto::FileKind;
use super::refusal;
use crate::api::error::{FileReport, FileRowError};
use crate::api::{ApiError, ApiQuery, AppState, ErrorBody};
use crate::auth::{holds_fleet, require, Authenticated};
use crate::store::cmms::sites::{self, Site};
use crate::store::cmms::{assets, parts};
use crate::store::{Db, Store};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::Json;
use dcmms_shared::cmms::csv::{
    self, column_values, ExistingPart, ImportContext, ImportMode, ImportOptions, ImportReport,
    SiteRecord,
};
use dcmms_shared::cmms::{Access, Asset, AssetId, Permission, SiteId, SiteScope};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest import file: 20 MiB.
pub const MAX_IMPORT_BYTES: usize = 20 << 20;

/// The import route, with its own body limit.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(import_file))
        .layer(DefaultBodyLimit::max(MAX_IMPORT_BYTES))
}

/// What an import does with records that already exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum ModeName {
    /// Every record of the file must be new (an existing one is an error
    /// on its row).
    #[default]
    CreateOnly,
    /// New records are created, existing ones updated with the file's
    /// fields. Nothing is ever deleted.
    Upsert,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ImportParams {
    /// Default `create_only`.
    #[param(inline)]
    mode: Option<ModeName>,
    /// `true`: check the file and count what would change; write nothing.
    dry_run: Option<bool>,
}

/// What an import did (or, for a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ImportSummary {
    /// Records written new.
    pub created: usize,
    /// Stored records changed.
    pub updated: usize,
    /// Rows identical to what is stored.
    pub unchanged: usize,
    /// Data rows of the file.
    pub rows: usize,
    /// Nothing was written.
    pub dry_run: bool,
}

/// A `text/csv` request body, at most [`MAX_IMPORT_BYTES`].
pub struct CsvBody(pub Bytes);

fn is_csv(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/csv"))
}

impl<S: Send + Sync> FromRequest<S> for CsvBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_csv(&req) {
            return Err(ApiError::UnsupportedMediaType(
                "expected a body with Content-Type: text/csv".to_owned(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| match e {
            BytesRejection::FailedToBufferBody(_)
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                ApiError::PayloadTooLarge
            }
            _ => ApiError::bad_request("the request body could not be read"),
        })?;
        Ok(CsvBody(bytes))
    }
}

/// Runs CPU-heavy work (reading a large file) off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)
}

/// The caller may take `permission` at every site, in order: the first
/// refused is named.
fn require_all<'a>(
    access: &Access,
    sites: impl IntoIterator<Item = &'a SiteId>,
    permission: Permission,
) -> Result<(), ApiError> {
    for site in sites {
        require(access, site, permission)?;
    }
    Ok(())
}

/// Site ids named in a column (values that are not site names are left to
/// the parser to report).
fn named_sites(values: BTreeSet<String>) -> BTreeSet<SiteId> {
    values
        .into_iter()
        .filter(|v| dcmms_shared::validate_name(v).is_ok())
        .map(SiteId)
        .collect()
}

/// Site ids per query: well below either database's limit of bound
/// parameters, however many sites a file names.
const SITES_PER_QUERY: usize = 500;

/// The stored sites among `ids`.
async fn stored_sites(store: &Store, ids: &BTreeSet<SiteId>) -> Result<Vec<Site>, ApiError> {
    let ids: Vec<SiteId> = ids.iter().cloned().collect();
    let mut out = Vec::new();
    for chunk in ids.chunks(SITES_PER_QUERY) {
        let scope = SiteScope::Only(chunk.iter().cloned().collect());
        out.extend(sites::list(store, &scope).await.map_err(refusal)?);
    }
    Ok(out)
}

/// The ids of the stored sites among `ids`.
async fn known_sites(store: &Store, ids: &BTreeSet<SiteId>) -> Result<BTreeSet<SiteId>, ApiError> {
    Ok(stored_sites(store, ids)
        .await?
        .into_iter()
        .map(|s| s.id)
        .collect())
}

/// Stored assets by id (missing ids are left out).
async fn assets_by_id(store: &Store, ids: &BTreeSet<String>) -> Result<Vec<Asset>, ApiError> {
    let ids: Vec<String> = ids.iter().cloned().collect();
    let mut lease = Db::from(store).lease().await.map_err(refusal)?;
    assets::load_many(&mut lease.conn(), &ids)
        .await
        .map_err(refusal)
}

/// Every stored asset of the sites in `sites`.
async fn assets_of(store: &Store, sites: &BTreeSet<SiteId>) -> Result<Vec<Asset>, ApiError> {
    let sites: Vec<SiteId> = sites.iter().cloned().collect();
    let mut out: Vec<Asset> = Vec::new();
    for chunk in sites.chunks(SITES_PER_QUERY) {
        let scope = SiteScope::Only(chunk.iter().cloned().collect());
        let mut after: Option<AssetId> = None;
        loop {
            let page = assets::list(store, &scope, after.as_ref(), 1000)
                .await
                .map_err(refusal)?;
            let done = page.len() < 1000;
            after = page.last().map(|a| a.id.clone());
            out.extend(page);
            if done {
                break;
            }
        }
    }
    Ok(out)
}

/// Replace a CSV register from a file.
#[utoipa::path(
    post, path = "/api/v1/import/{kind}", tag = "onboarding",
    params(
        ("kind" = inline(FileKind), Path, description = "What the file holds"),
        ImportParams,
    ),
    request_body(
        content = String, content_type = "text/csv",
        description = "The file: UTF-8 (a byte-order mark is allowed), comma-separated, \
                       header row first, at most 20 MiB and 100,000 rows. Columns: \
                       sites: id, name, timezone; assets: id, site, parent, name, kind, \
                       manufacturer, model, serial, installed_on, criticality, location; \
                       points: asset, point; parts: site, part, name, unit, unit_cost, \
                       reorder_level, on_hand."
    ),
    responses(
        (status = 200, description = "Imported (or checked, for a dry run): every record of the file, in one transaction", body = ImportSummary),
        (status = 400, description = "A query parameter is invalid", body = ErrorBody),
        (status = 403, description = "The caller lacks the permission at a site the file touches (the first one is named)", body = ErrorBody),
        (status = 404, description = "No such kind of file", body = ErrorBody),
        (status = 409, description = "A record changed while the file was imported, or a stored part's unit would change (`rule`)", body = ErrorBody),
        (status = 413, description = "The file is larger than 20 MiB", body = ErrorBody),
        (status = 415, description = "The body is not `text/csv`", body = ErrorBody),
        (status = 422, description = "The file has problems; `report` lists each with its line and column, and nothing was written", body = ErrorBody),
    ),
    security(("bearer" = [])),
)]
pub async fn import_file(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(kind): Path<String>,
    ApiQuery(p): ApiQuery<ImportParams>,
    CsvBody(body): CsvBody,
) -> Result<Json<ImportSummary>, ApiError> {
    let kind = FileKind::parse(&kind)?;
    let started = Instant::now();
    // A NUL character passes the formats' checks but no database text
    // column takes it: refused here, naming its line.
    if let Some(at) = body.iter().position(|b| *b == 0) {
        let line = body[..at].iter().filter(|b| **b == b'\n').count() + 1;
        return Err(ApiError::InvalidFile {
            message: format!(
                "{} has 1 problem(s); nothing was imported",
                kind.file_name()
            ),
            report: FileReport {
                rows: 0,
                errors: vec![FileRowError {
                    row: line,
                    column: None,
                    code: "malformed_csv".to_owned(),
                    message: format!("line {line} contains a NUL character"),
                }],
                errors_omitted: 0,
            },
        });
    }
    let mode = match p.mode.unwrap_or_default() {
        ModeName::CreateOnly => ImportMode::CreateOnly,
        ModeName::Upsert => ImportMode::Upsert,
    };
    let job = Job {
        state: &state,
        auth: &auth,
        kind,
        options: ImportOptions {
            mode,
            ..ImportOptions::default()
        },
        dry_run: p.dry_run.unwrap_or(false),
        bytes: body.len(),
        sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body)),
    };
    let summary = match kind {
        FileKind::Sites => job.sites(body).await,
        FileKind::Assets => job.assets(body).await,
        FileKind::Points => job.points(body).await,
        FileKind::Parts => job.parts(body).await,
    };
    let elapsed_ms = started.elapsed().as_millis();
    match &summary {
        Ok(s) => tracing::info!(
            kind = kind.name(),
            user = %auth.username,
            rows = s.rows,
            created = s.created,
            updated = s.updated,
            unchanged = s.unchanged,
            dry_run = s.dry_run,
            elapsed_ms,
            "import done"
        ),
        Err(e) => tracing::info!(
            kind = kind.name(),
            user = %auth.username,
            refused = %e,
            elapsed_ms,
            "import refused"
        ),
    }
    summary.map(Json)
}

/// One import request.
pub(super) struct Job<'a> {
    pub state: &'a AppState,
    pub auth: &'a Authenticated,
    pub kind: FileKind,
    pub options: ImportOptions,
    pub dry_run: bool,
    pub bytes: usize,
    pub sha256: String,
}

impl Job<'_> {
    /// A refused file: 422 with its report.
    fn refused(&self, report: ImportReport) -> ApiError {
        let listed = report.errors.len() + report.errors_omitted;
        ApiError::InvalidFile {
            message: format!(
                "{} has {listed} problem(s); nothing was imported",
                self.kind.file_name()
            ),
            report: FileReport::from(report),
        }
    }

    fn log_parsed(&self, rows: usize, started: Instant) {
        tracing::info!(
            kind = self.kind.name(),
            bytes = self.bytes,
            rows,
            parse_ms = started.elapsed().as_millis(),
            "import file checked"
        );
    }

    /// The summary of a merge, writing it unless this is a dry run.
    fn summary(&self, rows: usize, applied: Applied) -> ImportSummary {
        ImportSummary {
            created: applied.created,
            updated: applied.updated,
            unchanged: applied.unchanged,
            rows,
            dry_run: self.dry_run,
        }
    }

    async fn sites(&self, body: Bytes) -> Result<ImportSummary, ApiError> {
        let b = body.clone();
        let ids = blocking(move || column_values(&b, "id")).await?;
        let ids: BTreeSet<SiteId> = ids.into_iter().map(SiteId).collect();
        let stored: Vec<SiteRecord> = stored_sites(&self.state.store, &ids)
            .await?
            .into_iter()
            .map(|s| SiteRecord {
                id: s.id,
                name: s.name,
                timezone: s.timezone,
            })
            .collect();
        let access = &self.auth.access;
        for id in &ids {
            if stored.iter().any(|s| &s.id == id) {
                require(access, id, Permission::ManageFleet)?;
            } else if !holds_fleet(access, Permission::ManageFleet) {
                return Err(ApiError::forbidden(Permission::ManageFleet, Some(id)));
            }
        }
        let options = self.options;
        let started = Instant::now();
        let (parsed, stored) = blocking(move || {
            let ctx = ImportContext::new(&stored).with_options(options);
            let parsed = csv::parse_sites(&body, &ctx)
                .map(|records| (records.len(), csv::merge_sites(&stored, records)));
            (parsed, stored)
        })
        .await?;
        let (rows, merge) = parsed.map_err(|r| self.refused(r))?;
        self.log_parsed(rows, started);
        let applied = csv_apply::sites(self, &stored, merge, rows).await?;
        Ok(self.summary(rows, applied))
    }

    async fn assets(&self, body: Bytes) -> Result<ImportSummary, ApiError> {
        let b = body.clone();
        let (site_col, ids) =
            blocking(move || (column_values(&b, "site"), column_values(&b, "id"))).await?;
        let named = named_sites(site_col);
        let by_id = assets_by_id(&self.state.store, &ids).await?;
        let mut touched = named.clone();
        touched.extend(by_id.iter().map(|a| a.site.clone()));
        require_all(&self.auth.access, &touched, Permission::ManageAssets)?;
        let known = known_sites(&self.state.store, &named).await?;
        let mut stored: BTreeMap<AssetId, Asset> = assets_of(&self.state.store, &touched)
            .await?
            .into_iter()
            .map(|a| (a.id.clone(), a))
            .collect();
        for a in by_id {
            stored.entry(a.id.clone()).or_insert(a);
        }
        let stored: Vec<Asset> = stored.into_values().collect();
        let options = self.options;
        let started = Instant::now();
        let (parsed, stored) = blocking(move || {
            let ctx = ImportContext::new(&stored)
                .with_known_sites(&known)
                .with_options(options);
            let parsed = csv::parse_assets(&body, &ctx)
                .map(|records| (records.len(), csv::merge_assets(&stored, records)));
            (parsed, stored)
        })
        .await?;
        let (rows, merge) = parsed.map_err(|r| self.refused(r))?;
        self.log_parsed(rows, started);
        let applied = csv_apply::assets(self, &stored, merge, rows, &touched).await?;
        Ok(self.summary(rows, applied))
    }

    async fn points(&self, body: Bytes) -> Result<ImportSummary, ApiError> {
        let b = body.clone();
        let ids = blocking(move || column_values(&b, "asset")).await?;
        let stored = assets_by_id(&self.state.store, &ids).await?;
        let touched: BTreeSet<SiteId> = stored.iter().map(|a| a.site.clone()).collect();
        require_all(&self.auth.access, &touched, Permission::ManageAssets)?;
        let options = self.options;
        let started = Instant::now();
        let (parsed, stored) = blocking(move || {
            let ctx = ImportContext::new(&stored).with_options(options);
            let parsed = csv::parse_points(&body, &ctx)
                .map(|records| (records.len(), csv::merge_points(&stored, records)));
            (parsed, stored)
        })
        .await?;
        let (rows, merge) = parsed.map_err(|r| self.refused(r))?;
        self.log_parsed(rows, started);
        let applied = csv_apply::points(self, &stored, merge, rows, &touched).await?;
        Ok(self.summary(rows, applied))
    }

    async fn parts(&self, body: Bytes) -> Result<ImportSummary, ApiError> {
        let b = body.clone();
        let named = named_sites(blocking(move || column_values(&b, "site")).await?);
        require_all(&self.auth.access, &named, Permission::ManageStock)?;
        let known = known_sites(&self.state.store, &named).await?;
        let mut stored: Vec<ExistingPart> = Vec::new();
        for site in &known {
            for p in parts::list(&self.state.store, site)
                .await
                .map_err(refusal)?
            {
                stored.push(ExistingPart::from_stock(&p.stock, p.name));
            }
        }
        let options = self.options;
        let started = Instant::now();
        let (parsed, stored) = blocking(move || {
            let ctx = ImportContext::new(&stored)
                .with_known_sites(&known)
                .with_options(options);
            let parsed = csv::parse_parts(&body, &ctx)
                .map(|records| (records.len(), csv::merge_parts(&stored, records)));
            (parsed, stored)
        })
        .await?;
        let (rows, merge) = parsed.map_err(|r| self.refused(r))?;
        self.log_parsed(rows, started);
        let applied = csv_apply::parts(self, &stored, merge, rows, &named).await?;
        Ok(self.summary(rows, applied))
    }
}
