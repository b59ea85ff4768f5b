//! The REST API (seed §8) under `/v1`: routes and handlers. Every handler runs the agent
//! operation on a blocking thread under the agent's lock, so concurrent clients are serialized.

use super::error::HttpError;
use agent::model::*;
use agent::state::Agent;
use agent::{AgentError, EndpointRef};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use std::collections::BTreeMap;

pub use agent::Shared;

pub fn router(agent: Shared) -> Router {
    Router::new()
        .route("/v1/healthz", get(healthz))
        .route("/v1/config", get(get_config).patch(patch_config))
        .route("/v1/endpoint", get(list_endpoints))
        .route(
            "/v1/endpoint/{id}",
            get(get_endpoint)
                .put(put_endpoint)
                .patch(patch_endpoint)
                .delete(delete_endpoint),
        )
        .route("/v1/endpoint/{id}/labels", get(get_labels).put(put_labels))
        .route("/v1/identity", get(list_identities))
        .route("/v1/identity/{id}", get(get_identity))
        .route(
            "/v1/policy",
            get(get_policy).put(put_policy).delete(delete_policy),
        )
        .route("/v1/policy/revisions", get(revisions))
        .route("/v1/policy/resolve", get(resolve))
        .route("/v1/monitor", get(super::monitor::stream))
        .with_state(agent)
}

/// Runs `f` with the agent locked, off the async runtime.
async fn with<T: Send + 'static>(
    agent: Shared,
    f: impl FnOnce(&mut Agent) -> Result<T, AgentError> + Send + 'static,
) -> Result<T, HttpError> {
    tokio::task::spawn_blocking(move || {
        let mut guard = agent
            .lock()
            .map_err(|_| AgentError::Internal("agent state lock poisoned".into()))?;
        f(&mut guard)
    })
    .await
    .map_err(|e| AgentError::Internal(format!("agent task failed: {e}")))?
    .map_err(HttpError::from)
}

async fn healthz(State(a): State<Shared>) -> Result<Json<Healthz>, HttpError> {
    with(a, |a| Ok(Json(a.healthz()))).await
}

async fn get_config(State(a): State<Shared>) -> Result<Json<serde_json::Value>, HttpError> {
    with(a, |a| Ok(Json(a.config_json()))).await
}

async fn patch_config(
    State(a): State<Shared>,
    Json(body): Json<BTreeMap<String, serde_json::Value>>,
) -> Result<Json<serde_json::Value>, HttpError> {
    with(a, move |a| {
        a.patch_config(&body)?;
        Ok(Json(a.config_json()))
    })
    .await
}

async fn list_endpoints(
    State(a): State<Shared>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Json<Vec<EndpointStatus>>, HttpError> {
    with(a, move |a| {
        let all = a.endpoints();
        // `?labels=k=v,k2=v2`: endpoints carrying all of these labels; none → 404 (seed §8).
        let Some(filter) = q.get("labels") else {
            return Ok(Json(all));
        };
        let want: Vec<&str> = filter.split(',').filter(|s| !s.is_empty()).collect();
        let hits: Vec<_> = all
            .into_iter()
            .filter(|e| {
                want.iter().all(|w| {
                    e.labels
                        .iter()
                        .any(|l| l == w || l.split_once(':').map(|x| x.1) == Some(w))
                })
            })
            .collect();
        if hits.is_empty() {
            return Err(AgentError::NotFound(format!(
                "no endpoint has labels {filter}"
            )));
        }
        Ok(Json(hits))
    })
    .await
}

async fn get_endpoint(
    State(a): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<EndpointStatus>, HttpError> {
    let r = EndpointRef::parse(&id)?;
    with(a, move |a| a.endpoint(&r).map(Json)).await
}

async fn put_endpoint(
    State(a): State<Shared>,
    Path(id): Path<String>,
    Json(spec): Json<EndpointSpec>,
) -> Result<(StatusCode, Json<RevisionReply>), HttpError> {
    let id = match EndpointRef::parse(&id)? {
        EndpointRef::Id(id) => id,
        EndpointRef::Container(c) => {
            return with(a, move |a| {
                a.put_cni_endpoint(&c, spec)
                    .map(|r| (StatusCode::CREATED, Json(r)))
            })
            .await
        }
        EndpointRef::Pod(_) => {
            return Err(AgentError::invalid(
                "endpoints are created by numeric id or container-id:ID",
            )
            .into())
        }
    };
    if spec.id != id {
        return Err(AgentError::invalid(format!(
            "body id {} does not match path id {id}",
            spec.id
        ))
        .into());
    }
    with(a, move |a| {
        a.put_endpoint(spec).map(|r| (StatusCode::CREATED, Json(r)))
    })
    .await
}

async fn patch_endpoint(
    State(a): State<Shared>,
    Path(id): Path<String>,
    Json(body): Json<serde_json::Value>,
) -> Result<Json<RevisionReply>, HttpError> {
    let r = EndpointRef::parse(&id)?;
    let patch: EndpointPatch = serde_json::from_value(body)
        .map_err(|e| AgentError::invalid(format!("invalid endpoint patch: {e}")))?;
    with(a, move |a| a.patch_endpoint(&r, patch).map(Json)).await
}

async fn delete_endpoint(
    State(a): State<Shared>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<RevisionReply>), HttpError> {
    let r = EndpointRef::parse(&id)?;
    with(a, move |a| {
        let (reply, clean) = a.delete_endpoint(&r)?;
        // 206: deleted, but cleaning up the datapath reported errors (seed §8).
        Ok((
            if clean {
                StatusCode::OK
            } else {
                StatusCode::PARTIAL_CONTENT
            },
            Json(reply),
        ))
    })
    .await
}

async fn get_labels(
    State(a): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<Vec<String>>, HttpError> {
    let r = EndpointRef::parse(&id)?;
    with(a, move |a| a.endpoint(&r).map(|e| Json(e.labels))).await
}

async fn put_labels(
    State(a): State<Shared>,
    Path(id): Path<String>,
    Json(patch): Json<LabelsPatch>,
) -> Result<Json<RevisionReply>, HttpError> {
    let r = EndpointRef::parse(&id)?;
    with(a, move |a| a.modify_labels(&r, patch).map(Json)).await
}

async fn list_identities(State(a): State<Shared>) -> Result<Json<Vec<IdentityReply>>, HttpError> {
    with(a, |a| Ok(Json(a.identities()))).await
}

async fn get_identity(
    State(a): State<Shared>,
    Path(id): Path<String>,
) -> Result<Json<IdentityReply>, HttpError> {
    let id: u32 = id
        .parse()
        .map_err(|_| AgentError::invalid(format!("invalid identity {id:?}")))?;
    with(a, move |a| a.identity(id).map(Json)).await
}

async fn get_policy(State(a): State<Shared>) -> Result<Json<PolicyReply>, HttpError> {
    with(a, |a| a.policy().map(Json)).await
}

async fn put_policy(
    State(a): State<Shared>,
    Json(req): Json<PolicyPut>,
) -> Result<Json<RevisionReply>, HttpError> {
    with(a, move |a| a.put_policy(req).map(Json)).await
}

async fn delete_policy(
    State(a): State<Shared>,
    Json(req): Json<PolicyDelete>,
) -> Result<Json<RevisionReply>, HttpError> {
    with(a, move |a| a.delete_policy(req).map(Json)).await
}

async fn revisions(State(a): State<Shared>) -> Result<Json<Vec<RevisionInfo>>, HttpError> {
    with(a, |a| Ok(Json(a.revisions()))).await
}

async fn resolve(
    State(a): State<Shared>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Json<serde_json::Value>, HttpError> {
    with(a, move |a| a.resolve(&q).map(Json)).await
}
