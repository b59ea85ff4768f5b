//! `monitor --type l7`: the proxy's per-request events as seed §6 style lines, named from the
//! last snapshot (endpoint ids, labels, identities) and published with the datapath's events.
//! The proxy builds events only while a listener holds an [`L7Listener`]: the first one
//! subscribes to the proxy's events and starts the forwarding task, the last one to go stops
//! it (dropping the subscription, so the proxy builds nothing again).

use crate::flows::FlowBuilder;
use crate::monitor::Line;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use ir::NumericIdentity;
use l7proxy::{format_event, Events, Names};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// Events queued between the proxy and the forwarding task (beyond: dropped and counted).
const QUEUE: usize = 4096;

/// Names of identities from a snapshot: the local endpoint holding one and its labels.
pub struct SnapshotNames<'a>(pub &'a Snapshot);

impl Names for SnapshotNames<'_> {
    fn endpoint_of(&self, identity: NumericIdentity) -> u16 {
        self.0
            .views()
            .find(|v| v.status.identity == identity.0)
            .map_or(0, |v| v.status.id)
    }

    fn labels_of(&self, identity: NumericIdentity) -> String {
        self.0
            .identities
            .iter()
            .find(|i| i.id == identity.0)
            .map(|i| i.labels.join(" "))
            .unwrap_or_default()
    }
}

/// The proxy's events and who listens to them.
pub(crate) struct L7Events {
    events: Events,
    out: broadcast::Sender<Line>,
    snapshot: Arc<ArcSwap<Snapshot>>,
    /// The flows' `node_name`.
    node: String,
    /// Listeners, and the forwarding task while there are any.
    state: Mutex<(usize, Option<JoinHandle<()>>)>,
}

impl L7Events {
    pub(crate) fn new(
        events: Events,
        out: broadcast::Sender<Line>,
        snapshot: Arc<ArcSwap<Snapshot>>,
        node: String,
    ) -> Arc<L7Events> {
        Arc::new(L7Events {
            events,
            out,
            snapshot,
            node,
            state: Mutex::new((0, None)),
        })
    }

    /// A new listener; the first starts the forwarding (call within the tokio runtime).
    pub(crate) fn listen(self: &Arc<Self>) -> L7Listener {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 += 1;
        if state.1.is_none() {
            let mut rx = self.events.subscribe(QUEUE);
            let (out, snapshot) = (self.out.clone(), self.snapshot.clone());
            let mut flows = FlowBuilder::new(self.node.clone());
            state.1 = Some(tokio::spawn(async move {
                while let Some(ev) = rx.recv().await {
                    let snap = snapshot.load_full();
                    let text = format_event(&ev, &SnapshotNames(&snap));
                    let flow = flows.l7_flow(&ev, &snap, SystemTime::now());
                    let _ = out.send(Line {
                        kind: "l7",
                        text,
                        flow: flow.map(Arc::new),
                    });
                }
            }));
        }
        L7Listener(self.clone())
    }
}

/// Held by a `monitor` stream that shows L7 events.
pub struct L7Listener(Arc<L7Events>);

impl Drop for L7Listener {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
        state.0 = state.0.saturating_sub(1);
        if state.0 == 0 {
            if let Some(task) = state.1.take() {
                // Its receiver goes with it: the proxy stops building events.
                task.abort();
            }
        }
    }
}
