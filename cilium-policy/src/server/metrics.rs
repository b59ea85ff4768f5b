//! `GET /v1/metrics` on the API socket, and `GET /metrics` on `--metrics-listen`: the agent's
//! metrics in Prometheus text format (version 0.0.4). Scraping reads the pinned counters on a
//! blocking thread; it never waits for a write in progress.

use agent::Handle;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

pub async fn scrape(State(agent): State<Handle>) -> Response {
    let text = tokio::task::spawn_blocking(move || agent.metrics_text())
        .await
        .unwrap_or_default();
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

/// The router of `--metrics-listen`: `/metrics` only.
pub fn router(agent: Handle) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .with_state(agent)
}
