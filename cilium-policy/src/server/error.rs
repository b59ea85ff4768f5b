//! The one place an [`AgentError`] becomes an HTTP status and an [`ErrorReply`] body (the
//! seed's codes, §8).

use agent::model::ErrorReply;
use agent::AgentError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The seed's status for a label to delete that is not on the endpoint, and for a policy
/// source path that names nothing (`PUT /endpoint/{id}/labels`, `PUT /policy`).
const SEED_INVALID_ARGUMENT: u16 = 460;

/// An error reply: a status and its body.
#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub body: ErrorReply,
}

impl HttpError {
    /// A refusal by the transport itself (authentication, Host checks), before any agent
    /// operation runs.
    pub fn transport(status: StatusCode, error: impl Into<String>) -> Self {
        HttpError {
            status,
            body: ErrorReply {
                error: error.into(),
                diagnostics: Vec::new(),
            },
        }
    }
}

/// The status of each kind of agent error.
pub fn status_of(e: &AgentError) -> StatusCode {
    match e {
        AgentError::Invalid { .. } => StatusCode::BAD_REQUEST,
        AgentError::NotFound(_) => StatusCode::NOT_FOUND,
        AgentError::Conflict(_) => StatusCode::CONFLICT,
        AgentError::LabelNotFound(_) | AgentError::InvalidPath(_) => {
            StatusCode::from_u16(SEED_INVALID_ARGUMENT).unwrap_or(StatusCode::BAD_REQUEST)
        }
        // Refused by the datapath or failed below the agent: the change was not taken.
        AgentError::MapFull(_)
        | AgentError::Verifier(_)
        | AgentError::Kvstore(_)
        | AgentError::Store(_)
        | AgentError::Io { .. }
        | AgentError::Datapath(_)
        | AgentError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<AgentError> for HttpError {
    fn from(e: AgentError) -> Self {
        let status = status_of(&e);
        let diagnostics = e.diagnostics().to_vec();
        HttpError {
            status,
            body: ErrorReply {
                error: e.to_string(),
                diagnostics,
            },
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_status_and_keeps_its_diagnostics() {
        let e = HttpError::from(AgentError::Invalid {
            message: "bad".into(),
            diagnostics: vec!["a.yaml:1:2: error".into()],
        });
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.body.error, "bad");
        assert_eq!(e.body.diagnostics, ["a.yaml:1:2: error"]);
        let cases = [
            (AgentError::NotFound("x".into()), 404),
            (AgentError::Conflict("x".into()), 409),
            (AgentError::LabelNotFound("k=v".into()), 460),
            (AgentError::InvalidPath(String::new()), 460),
            (AgentError::MapFull("x".into()), 500),
            (AgentError::Verifier("x".into()), 500),
            (AgentError::Kvstore("x".into()), 500),
        ];
        for (e, code) in cases {
            assert_eq!(status_of(&e).as_u16(), code, "{e:?}");
        }
        assert_eq!(
            HttpError::from(AgentError::LabelNotFound("k=v".into()))
                .body
                .error,
            "label k=v not found"
        );
    }
}
