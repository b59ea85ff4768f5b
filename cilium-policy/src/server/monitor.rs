//! `GET /v1/monitor`: the agent's datapath events streamed to the client as text lines.

use super::error::HttpError;
use agent::monitor::Line;
use agent::{AgentError, Handle};
use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::Response;
use compiler::flow::FlowEndpoint;
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

/// What a monitor client asked for (`?type=&output=&from_pod=&to_pod=&verdict=`).
pub struct Filter {
    kind: Option<String>,
    json: bool,
    from_pod: Option<(String, String)>,
    to_pod: Option<(String, String)>,
    verdict: Option<String>,
}

/// `[namespace/]pod-name-prefix`, the namespace `default` when none is given (as Hubble's
/// `--from-pod`).
fn pod_filter(s: &str) -> (String, String) {
    match s.split_once('/') {
        Some((ns, pod)) => (ns.to_string(), pod.to_string()),
        None => ("default".to_string(), s.to_string()),
    }
}

fn pod_matches(want: &Option<(String, String)>, ep: &FlowEndpoint) -> bool {
    want.as_ref()
        .is_none_or(|(ns, pod)| &ep.namespace == ns && ep.pod_name.starts_with(pod.as_str()))
}

impl Filter {
    pub fn parse(q: &BTreeMap<String, String>) -> Result<Filter, String> {
        let kind = match q.get("type").map(String::as_str) {
            None | Some("all") => None,
            // `verdict` is the name earlier releases used.
            Some("policy-verdict" | "verdict") => Some("policy-verdict".to_string()),
            Some(k @ ("drop" | "l7")) => Some(k.to_string()),
            Some(other) => {
                return Err(format!(
                    "type {other:?}: expected drop, policy-verdict, l7 or all"
                ))
            }
        };
        let json = match q.get("output").map(String::as_str) {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => return Err(format!("output {other:?}: expected text or json")),
        };
        let verdict = match q.get("verdict").map(|v| v.to_ascii_uppercase()) {
            None => None,
            Some(v) if ["FORWARDED", "DROPPED", "AUDIT", "REDIRECTED"].contains(&v.as_str()) => {
                Some(v)
            }
            Some(v) => {
                return Err(format!(
                    "verdict {v:?}: expected FORWARDED, DROPPED, AUDIT or REDIRECTED"
                ))
            }
        };
        Ok(Filter {
            kind,
            json,
            from_pod: q.get("from_pod").map(|s| pod_filter(s)),
            to_pod: q.get("to_pod").map(|s| pod_filter(s)),
            verdict,
        })
    }

    /// The text to send for `line`, if it passes.
    fn render(&self, line: &Line) -> Option<String> {
        if self.kind.as_deref().is_some_and(|k| k != line.kind) {
            return None;
        }
        let needs_flow =
            self.json || self.from_pod.is_some() || self.to_pod.is_some() || self.verdict.is_some();
        let Some(flow) = &line.flow else {
            return (!needs_flow).then(|| format!("{}\n", line.text));
        };
        let verdict = serde_json::to_value(flow.verdict).ok();
        if !pod_matches(&self.from_pod, &flow.source)
            || !pod_matches(&self.to_pod, &flow.destination)
            || self
                .verdict
                .as_deref()
                .is_some_and(|v| verdict.as_ref().and_then(|x| x.as_str()) != Some(v))
        {
            return None;
        }
        if self.json {
            serde_json::to_string(flow.as_ref()).ok().map(|s| s + "\n")
        } else {
            Some(format!("{}\n", line.text))
        }
    }
}

/// Streams events until the client goes away; see [`Filter`] for the query.
pub async fn stream(
    State(agent): State<Handle>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<Response, HttpError> {
    let filter = Filter::parse(&q).map_err(|e| HttpError::from(AgentError::invalid(e)))?;
    let rx = agent.subscribe_events();
    if rx.is_some() {
        // The endpoints emit events before the stream starts.
        agent.update_listening().await;
    }
    // The proxy builds its events only while someone shows them.
    let l7 = match filter.kind.as_deref() {
        None | Some("l7") => agent.listen_l7(),
        Some(_) => None,
    };
    let body = match rx {
        // The receiver goes before the guards (tuple fields drop in order).
        Some(rx) => Body::from_stream(futures_util::stream::unfold(
            (rx, filter, (Listener(agent.clone()), l7)),
            |(mut rx, filter, guard)| async move {
                loop {
                    match rx.recv().await {
                        Ok(line) => {
                            if let Some(text) = filter.render(&line) {
                                return Some((
                                    Ok::<_, std::convert::Infallible>(text),
                                    (rx, filter, guard),
                                ));
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            },
        )),
        None => Body::from("the datapath is disabled: no events\n"),
    };
    Ok(Response::builder()
        .header("content-type", "text/plain")
        .body(body)
        .unwrap_or_default())
}
