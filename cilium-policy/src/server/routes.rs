//! The REST API (seed §8) under `/v1`: routes and handlers. Reads answer from the agent's last
//! published snapshot without waiting for a write in progress; writes are jobs for the agent's
//! one writer, which runs them in arrival order.

use super::error::HttpError;
use agent::model::*;
use agent::state::Agent;
use agent::{AgentError, EndpointRef, Handle};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use std::collections::BTreeMap;

pub fn router(agent: Handle) -> Router {
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
        .route("/v1/endpoint/{id}/datapath", get(check_datapath))
        .route("/v1/identity", get(list_identities))
        .route("/v1/identity/{id}", get(get_identity))
        .route(
            "/v1/policy",
            get(get_policy).put(put_policy).delete(delete_policy),
        )
        .route("/v1/policy/revisions", get(revisions))
        .route("/v1/policy/resolve", get(resolve))
        .route("/v1/monitor", get(super::monitor::stream))
        .route("/v1/metrics", get(super::metrics::scrape))
        .route("/v1/proxy", get(proxy_status))
        .route("/v1/debug/proxy/crash", axum::routing::post(proxy_crash))
        .with_state(agent)
}

/// Runs `f` on the agent's writer.
async fn write<T: Send + 'static>(
    agent: &Handle,
    f: impl FnOnce(&mut Agent) -> Result<T, AgentError> + Send + 'static,
) -> Result<T, HttpError> {
    Ok(agent.write(f).await?)
}

type Reply<T> = Result<Json<T>, HttpError>;

async fn healthz(State(a): State<Handle>) -> Reply<Healthz> {
    Ok(Json(a.snapshot().healthz.clone()))
}

async fn get_config(State(a): State<Handle>) -> Reply<serde_json::Value> {
    Ok(Json(a.snapshot().config.clone()))
}

async fn patch_config(
    State(a): State<Handle>,
    Json(body): Json<BTreeMap<String, serde_json::Value>>,
) -> Reply<serde_json::Value> {
    write(&a, move |a| a.patch_config(&body)).await?;
    Ok(Json(a.snapshot().config.clone()))
}

/// `?labels=k=v,k2=v2`: endpoints carrying all of these labels; none → 404 (seed §8).
async fn list_endpoints(
    State(a): State<Handle>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Reply<Vec<EndpointStatus>> {
    Ok(Json(
        a.snapshot()
            .endpoints(q.get("labels").map(String::as_str))?,
    ))
}

async fn get_endpoint(State(a): State<Handle>, Path(id): Path<String>) -> Reply<EndpointStatus> {
    Ok(Json(a.snapshot().endpoint(&EndpointRef::parse(&id)?)?))
}

/// Asked of the kernel through the writer, so that no change is half applied under the check.
async fn check_datapath(State(a): State<Handle>, Path(id): Path<String>) -> Reply<DatapathCheck> {
    let r = EndpointRef::parse(&id)?;
    Ok(Json(write(&a, move |a| a.check_datapath(&r)).await?))
}

async fn put_endpoint(
    State(a): State<Handle>,
    Path(id): Path<String>,
    Json(spec): Json<EndpointSpec>,
) -> Result<(StatusCode, Json<RevisionReply>), HttpError> {
    let reply = match EndpointRef::parse(&id)? {
        EndpointRef::Id(id) if spec.id != id => {
            return Err(AgentError::invalid(format!(
                "body id {} does not match path id {id}",
                spec.id
            ))
            .into())
        }
        EndpointRef::Id(_) => write(&a, move |a| a.put_endpoint(spec)).await?,
        EndpointRef::Container(c) => write(&a, move |a| a.put_cni_endpoint(&c, spec)).await?,
        EndpointRef::Pod(_) => {
            return Err(AgentError::invalid(
                "endpoints are created by numeric id or container-id:ID",
            )
            .into())
        }
    };
    Ok((StatusCode::CREATED, Json(reply)))
}

async fn patch_endpoint(
    State(a): State<Handle>,
    Path(id): Path<String>,
    Json(body): Json<serde_json::Value>,
) -> Reply<RevisionReply> {
    let r = EndpointRef::parse(&id)?;
    let patch: EndpointPatch = serde_json::from_value(body)
        .map_err(|e| AgentError::invalid(format!("invalid endpoint patch: {e}")))?;
    Ok(Json(write(&a, move |a| a.patch_endpoint(&r, patch)).await?))
}

async fn delete_endpoint(
    State(a): State<Handle>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<RevisionReply>), HttpError> {
    let r = EndpointRef::parse(&id)?;
    let (reply, clean) = write(&a, move |a| a.delete_endpoint(&r)).await?;
    // 206: deleted, but cleaning up the datapath reported errors (seed §8).
    let status = if clean {
        StatusCode::OK
    } else {
        StatusCode::PARTIAL_CONTENT
    };
    Ok((status, Json(reply)))
}

async fn get_labels(State(a): State<Handle>, Path(id): Path<String>) -> Reply<Vec<String>> {
    Ok(Json(
        a.snapshot().endpoint(&EndpointRef::parse(&id)?)?.labels,
    ))
}

async fn put_labels(
    State(a): State<Handle>,
    Path(id): Path<String>,
    Json(patch): Json<LabelsPatch>,
) -> Reply<RevisionReply> {
    let r = EndpointRef::parse(&id)?;
    Ok(Json(write(&a, move |a| a.modify_labels(&r, patch)).await?))
}

async fn list_identities(State(a): State<Handle>) -> Reply<Vec<IdentityReply>> {
    Ok(Json(a.snapshot().identities.to_vec()))
}

async fn get_identity(State(a): State<Handle>, Path(id): Path<String>) -> Reply<IdentityReply> {
    let id: u32 = id
        .parse()
        .map_err(|_| AgentError::invalid(format!("invalid identity {id:?}")))?;
    Ok(Json(a.snapshot().identity(id)?))
}

/// On a blocking thread: the first read of a snapshot renders its rules.
async fn get_policy(State(a): State<Handle>) -> Reply<PolicyReply> {
    let reply = tokio::task::spawn_blocking(move || a.policy())
        .await
        .map_err(|e| AgentError::Internal(format!("reading the policy failed: {e}")))??;
    Ok(Json(reply))
}

async fn put_policy(State(a): State<Handle>, Json(req): Json<PolicyPut>) -> Reply<RevisionReply> {
    Ok(Json(write(&a, move |a| a.put_policy(req)).await?))
}

async fn delete_policy(
    State(a): State<Handle>,
    Json(req): Json<PolicyDelete>,
) -> Reply<RevisionReply> {
    Ok(Json(write(&a, move |a| a.delete_policy(req)).await?))
}

async fn revisions(State(a): State<Handle>) -> Reply<Vec<RevisionInfo>> {
    Ok(Json(a.snapshot().revisions.to_vec()))
}

/// Evaluated on a blocking thread: the world's lock may be held by the writer's in-memory
/// update of a change.
async fn resolve(
    State(a): State<Handle>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Reply<serde_json::Value> {
    let value = tokio::task::spawn_blocking(move || a.resolve(&q))
        .await
        .map_err(|e| AgentError::Internal(format!("resolving failed: {e}")))??;
    Ok(Json(value))
}

fn no_proxy() -> AgentError {
    AgentError::NotFound("this agent runs no L7 proxy (no datapath)".into())
}

/// `GET /v1/proxy`: whether the L7 proxy's listeners are bound.
async fn proxy_status(State(a): State<Handle>) -> Reply<serde_json::Value> {
    let p = a.proxy().ok_or_else(no_proxy)?;
    Ok(Json(serde_json::json!({
        "listening": p.is_up(),
        "ports": agent::proxy::HTTP_PORTS.map(|p| p.0),
    })))
}

/// `POST /v1/debug/proxy/crash`: stops the L7 proxy's listeners as if they had died (fault
/// injection); answers once they are closed. The supervisor restarts them.
async fn proxy_crash(State(a): State<Handle>) -> Reply<serde_json::Value> {
    let p = a.proxy().ok_or_else(no_proxy)?;
    if !p.crash().await {
        return Err(AgentError::Internal("the L7 proxy's listeners did not close".into()).into());
    }
    Ok(Json(serde_json::json!({
        "listening": false,
        "restart_in_ms": agent::proxy::RESTART_DELAY.as_millis() as u64,
    })))
}
