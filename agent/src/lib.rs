//! The resident agent as a library: keeps the datapath in step with policies and endpoints.
//! The policy repository and endpoints (`store`, journalled), the derived world (`world`,
//! `change`: identities and per-endpoint map state, changed incrementally), the datapath
//! (`datapath`: programs, pins, maps), the kvstore, datapath events and the `--policy-dir`
//! watcher. No transport: the HTTP server and the command line live in `cilium-policy`, and
//! errors are [`AgentError`] kinds, never HTTP statuses. See ARCHITECTURE.md and
//! Documentation/agent.md.

pub mod change;
pub mod cni;
pub mod cni_gc;
pub mod config;
pub mod datapath;
pub mod durable;
pub mod endpoint_ref;
pub mod error;
pub mod events;
pub mod flows;
pub mod fqdn;
pub mod integrity;
pub mod ipcache_gen;
pub mod journal_frame;
pub mod kvstore;
pub mod lock;
pub mod metrics;
pub mod monitor;
pub mod policy_dir;
pub mod privileges;
pub mod program_pool;
pub mod proxy;
pub mod remote;
pub mod resolve;
pub mod rule_table;
pub mod snapshot;
pub mod state;
pub mod store;
pub mod verifier;
pub mod watch;
pub mod world;
pub mod writer;

pub use ::api::{client, model};
pub use endpoint_ref::EndpointRef;
pub use error::AgentError;
pub use snapshot::Snapshot;
pub use writer::Handle;
