//! The agent's REST API as its clients see it: the request and reply bodies (`model`) and a
//! client over the agent's unix socket (`client`). Used by the agent's HTTP layer, the CLI, the
//! CNI plugin and the tests; it knows nothing of the agent's internals, clap or axum.

pub mod client;
pub mod model;
