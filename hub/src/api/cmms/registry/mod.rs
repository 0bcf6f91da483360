//! Sites, assets, parts stock, costs, and CSV import/export.

use crate::api::AppState;
use utoipa_axum::router::OpenApiRouter;

/// The routes of this module, with their documentation.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}

/// Every (method, path) [`routes`] serves; the OpenAPI test checks it.
#[cfg(test)]
pub(crate) const SURFACE: &[(&str, &str)] = &[];
