//! The one error shape of the API, and the body and query extractors that
//! answer in it.
//!
//! Every refusal is `{"error":{"code":..,"message":..}}` plus, where they
//! apply, `rule` (a conflict's machine-readable reason), `permission` and
//! `site` (what a 403 lacked), `fields` (per-field problems of a 422) and
//! `report` (every problem of a refused import file, also a 422).
//! Internal errors are logged with their cause and answered with a generic
//! message; no database or library text reaches the client.

use crate::auth::password::PasswordError;
use crate::auth::token::RandomError;
use crate::store::StoreError;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use dcmms_shared::cmms::{Permission, SiteId};
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::ToSchema;

/// Machine-readable error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    Invalid,
    Internal,
    Unavailable,
}

/// One problem with one field of a request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Dotted path of the field (`site_roles[0].role`); `.` for the body.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For people; do not parse it.
    pub message: String,
    /// 409: which rule refused the request (e.g. `username_taken`,
    /// `last_admin`, `contractor_cannot_be_admin`, `assignee_required`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// 403: the permission the user lacks.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "manage_users")]
    pub permission: Option<Permission>,
    /// 403: the site at which it is lacking (absent: fleet-wide).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub site: Option<SiteId>,
    /// 422: the fields at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldError>>,
    /// 422 of a CSV import: every problem of the file, by line and column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<FileReport>,
}

/// Why an import file was refused: nothing of it was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FileReport {
    /// Data rows read (the header and blank lines excluded).
    pub rows: usize,
    /// Problems in file order, at most 1,000.
    pub errors: Vec<FileRowError>,
    /// Problems found beyond `errors` and not listed.
    pub errors_omitted: usize,
}

/// One problem of an import file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FileRowError {
    /// 1-based line of the file where the record starts; the header is
    /// line 1.
    pub row: usize,
    /// The column at fault, by its name in the format; null for a problem
    /// with the whole row or file.
    pub column: Option<String>,
    /// Stable machine-readable code (`required`, `invalid_id`,
    /// `hierarchy_too_deep`, ...).
    pub code: String,
    pub message: String,
}

impl From<dcmms_shared::cmms::csv::ImportReport> for FileReport {
    fn from(r: dcmms_shared::cmms::csv::ImportReport) -> Self {
        FileReport {
            rows: r.rows,
            errors: r
                .errors
                .into_iter()
                .map(|e| FileRowError {
                    row: e.row,
                    column: e.column,
                    code: e.code,
                    message: e.message,
                })
                .collect(),
            errors_omitted: r.errors_omitted,
        }
    }
}

/// An API error; renders as [`ErrorBody`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    /// No bearer token, or one that is unknown, expired or revoked, or whose
    /// user is disabled: one answer for all.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// A failed login: the same answer whether the user exists or not.
    #[error("invalid username or password")]
    BadCredentials,
    #[error("{message}")]
    Forbidden {
        message: String,
        permission: Option<Permission>,
        site: Option<SiteId>,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("this method is not allowed on this endpoint")]
    MethodNotAllowed,
    #[error("{message}")]
    Conflict { rule: String, message: String },
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    Invalid {
        message: String,
        fields: Vec<FieldError>,
    },
    /// A refused import file (422, code `invalid`), with its report.
    #[error("{message}")]
    InvalidFile { message: String, report: FileReport },
    #[error("the database is unavailable")]
    Unavailable,
    /// Logged with its cause; the client sees a generic message.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(message.into())
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::NotFound(message.into())
    }

    /// 409 with the rule that refused the request.
    pub fn conflict(rule: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Conflict {
            rule: rule.into(),
            message: message.into(),
        }
    }

    /// 422 for one field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = FieldError::new(field, message);
        ApiError::Invalid {
            message: format!("`{}` {}", field.field, field.message),
            fields: vec![field],
        }
    }

    /// 422 for several fields (none: not an error).
    pub fn invalid(fields: Vec<FieldError>) -> Result<(), Self> {
        match fields.first() {
            None => Ok(()),
            Some(first) => Err(ApiError::Invalid {
                message: if fields.len() == 1 {
                    format!("`{}` {}", first.field, first.message)
                } else {
                    format!("{} fields are invalid", fields.len())
                },
                fields,
            }),
        }
    }

    /// 403 naming the permission lacked, and where.
    pub fn forbidden(permission: Permission, site: Option<&SiteId>) -> Self {
        let name = permission_name(permission);
        let message = match site {
            Some(s) => format!("this needs the `{name}` permission at site {s}"),
            None => format!("this needs the `{name}` permission fleet-wide"),
        };
        ApiError::Forbidden {
            message,
            permission: Some(permission),
            site: site.cloned(),
        }
    }

    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(e))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized | ApiError::BadCredentials => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Invalid { .. } | ApiError::InvalidFile { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            ApiError::BadRequest(_) => ErrorCode::BadRequest,
            ApiError::Unauthorized | ApiError::BadCredentials => ErrorCode::Unauthorized,
            ApiError::Forbidden { .. } => ErrorCode::Forbidden,
            ApiError::NotFound(_) => ErrorCode::NotFound,
            ApiError::MethodNotAllowed => ErrorCode::MethodNotAllowed,
            ApiError::Conflict { .. } => ErrorCode::Conflict,
            ApiError::PayloadTooLarge => ErrorCode::PayloadTooLarge,
            ApiError::UnsupportedMediaType(_) => ErrorCode::UnsupportedMediaType,
            ApiError::Invalid { .. } | ApiError::InvalidFile { .. } => ErrorCode::Invalid,
            ApiError::Unavailable => ErrorCode::Unavailable,
            ApiError::Internal(_) => ErrorCode::Internal,
        }
    }

    fn into_body(self) -> ErrorBody {
        let code = self.code();
        let message = self.to_string();
        let mut detail = ErrorDetail {
            code,
            message,
            rule: None,
            permission: None,
            site: None,
            fields: None,
            report: None,
        };
        match self {
            ApiError::Conflict { rule, .. } => detail.rule = Some(rule),
            ApiError::Forbidden {
                permission, site, ..
            } => {
                detail.permission = permission;
                detail.site = site;
            }
            ApiError::Invalid { fields, .. } => detail.fields = Some(fields),
            ApiError::InvalidFile { report, .. } => detail.report = Some(report),
            _ => {}
        }
        ErrorBody { error: detail }
    }
}

/// `snake_case` name of a permission, as in the JSON.
pub fn permission_name(p: Permission) -> String {
    match serde_json::to_value(p) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{p:?}"),
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl From<PasswordError> for ApiError {
    fn from(e: PasswordError) -> Self {
        ApiError::internal(e)
    }
}

impl From<RandomError> for ApiError {
    fn from(e: RandomError) -> Self {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = %e, source = ?e.source().map(|s| s.to_string()), "API request failed");
        }
        let unauthorized = status == StatusCode::UNAUTHORIZED;
        let mut resp = (status, Json(self.into_body())).into_response();
        if unauthorized {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// A JSON request body whose every rejection (wrong content type, bad
/// syntax, missing or mistyped fields, too large) answers in the API's
/// error shape.
///
/// The body is read in two steps, so that the status says whose fault it
/// is: first to a JSON value (not JSON or data after the value: 400; an
/// object with a key twice: 422 naming the key; a number without a
/// fractional part, such as `5.0`, counts as an integer), then to `T`
/// (a field missing, unknown, or of the wrong type or shape, including a
/// `null` or a number where a name from a list belongs: 422 with the path
/// of the field at fault).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiJson<T>(pub T);

fn is_json(content_type: Option<&HeaderValue>) -> bool {
    let Some(ct) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers().get(header::CONTENT_TYPE)) {
            return Err(ApiError::UnsupportedMediaType(
                "expected a body with Content-Type: application/json".to_owned(),
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
        json::read_body(&bytes).map(ApiJson)
    }
}

/// A query string whose rejection answers 400 in the API's error shape,
/// naming the parameter at fault (`` `limit`: invalid digit found in
/// string ``, `` `point` is required ``).
#[derive(Debug, Clone, Copy, Default)]
pub struct ApiQuery<T>(pub T);

/// The message of a refused query string.
fn query_message(e: &QueryRejection) -> String {
    // axum keeps the path-aware serde error as the rejection's source.
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(de) = err.downcast_ref::<serde_path_to_error::Error<serde::de::value::Error>>()
        {
            let path = de.path().to_string();
            let text = de.inner().to_string();
            if let Some(name) = text
                .strip_prefix("missing field `")
                .and_then(|rest| rest.split('`').next())
            {
                return format!("`{name}` is required");
            }
            return if path == "." || path == "?" {
                text
            } else {
                format!("`{path}`: {text}")
            };
        }
        source = err.source();
    }
    e.body_text()
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e: QueryRejection| ApiError::bad_request(query_message(&e)))
    }
}

#[path = "error_json.rs"]
mod json;

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
