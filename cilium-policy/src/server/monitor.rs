//! `GET /v1/monitor`: the agent's datapath events streamed to the client as text lines.

use agent::Handle;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::Response;
use std::collections::BTreeMap;
use tokio::sync::broadcast;

/// Held by a listener's stream: when the last listener goes (its stream is dropped once the
/// client is gone, noticed at the latest when the next event cannot be written), the
/// endpoints' events are turned off.
struct Listener(Handle);

impl Drop for Listener {
    fn drop(&mut self) {
        self.0.update_listening_later();
    }
}

/// Streams events until the client goes away; `?type=drop|verdict` filters.
pub async fn stream(
    State(agent): State<Handle>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let rx = agent.subscribe_events();
    if rx.is_some() {
        // The endpoints emit events before the stream starts.
        agent.update_listening().await;
    }
    let want = q.get("type").cloned();
    let body = match rx {
        // The receiver goes before the guard (tuple fields drop in order).
        Some(rx) => Body::from_stream(futures_util::stream::unfold(
            (rx, want, Listener(agent.clone())),
            |(mut rx, want, guard)| async move {
                loop {
                    match rx.recv().await {
                        Ok(line) if want.as_deref().is_none_or(|w| w == line.kind) => {
                            return Some((
                                Ok::<_, std::convert::Infallible>(format!("{}\n", line.text)),
                                (rx, want, guard),
                            ));
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            },
        )),
        None => Body::from("the datapath is disabled: no events\n"),
    };
    Response::builder()
        .header("content-type", "text/plain")
        .body(body)
        .unwrap_or_default()
}
