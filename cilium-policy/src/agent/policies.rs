//! Per-endpoint map state of the local endpoints, through the semantics stage.

use super::error::ApiError;
use super::world::LocalEndpoint;
use compiler::cluster::Cluster;
use ir::{EndpointPolicy, PolicySet};
use std::collections::BTreeMap;

/// Every local endpoint's map state.
pub fn compute(
    _policy: &PolicySet,
    _cluster: &Cluster,
    endpoints: &BTreeMap<u16, LocalEndpoint>,
) -> Result<BTreeMap<u16, EndpointPolicy>, ApiError> {
    let _ = endpoints;
    Err(ApiError::internal("PENDING: sem's map-state computation is not on main yet"))
}
