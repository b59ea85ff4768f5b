//! API errors: an HTTP status (the seed's codes, §8) and an [`ErrorReply`] body.

use super::model::ErrorReply;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorReply,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorReply {
                error: error.into(),
                diagnostics: Vec::new(),
            },
        }
    }
    pub fn bad_request(error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error)
    }
    pub fn not_found(error: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, error)
    }
    pub fn conflict(error: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, error)
    }
    pub fn internal(error: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, error)
    }
    /// A status outside the standard set (the seed's 460 "label to be deleted not found",
    /// "invalid path").
    pub fn custom(code: u16, error: impl Into<String>) -> Self {
        Self::new(
            StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
            error,
        )
    }
    pub fn with_diagnostics(mut self, diagnostics: Vec<String>) -> Self {
        self.body.diagnostics = diagnostics;
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.body.error, self.status)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}
