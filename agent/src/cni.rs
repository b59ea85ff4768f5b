//! Endpoints created by the CNI plugin: named by their container id, numbered by the agent.

use super::error::AgentError;
use super::model::{DatapathCheck, EndpointSpec, RevisionReply};
use super::state::Agent;
use super::EndpointRef;

/// Endpoint ids the agent hands out (Cilium's endpoint ids are 12 bits; 0 is reserved).
const MAX_ID: u16 = 4095;

impl Agent {
    /// The endpoint of a container, if the CNI plugin created one.
    /// The CNI endpoints: (id, host-side interface).
    pub fn cni_endpoints(&self) -> impl Iterator<Item = (u16, String)> + '_ {
        self.persisted
            .endpoints
            .values()
            .filter(|e| e.container_id.is_some())
            .map(|e| (e.id, e.iface.clone()))
    }

    /// `GET /v1/endpoint/{id}/datapath` (the CNI CHECK): the kernel asked, nothing changed.
    /// Without a datapath (`--no-datapath`) nothing is attached by design: not `attached`.
    pub fn check_datapath(&self, r: &EndpointRef) -> Result<DatapathCheck, AgentError> {
        let id = self.resolve_ref(r)?;
        let verdict = match &self.datapath {
            Some(dp) => dp.check_attached(id),
            None => Err("the agent runs without a datapath (--no-datapath)".into()),
        };
        Ok(DatapathCheck {
            id,
            attached: verdict.is_ok(),
            problem: verdict.err(),
        })
    }

    pub fn container_endpoint(&self, container: &str) -> Option<u16> {
        self.persisted
            .endpoints
            .values()
            .find(|e| e.container_id.as_deref() == Some(container))
            .map(|e| e.id)
    }

    /// `PUT /v1/endpoint/container-id:ID`: creates the container's endpoint with the lowest free
    /// id and answers once it is enforced. A repeated ADD for the same container and interface
    /// answers as the first did (runtimes retry); anything else about an existing container is
    /// a conflict.
    pub fn put_cni_endpoint(
        &mut self,
        container: &str,
        mut spec: EndpointSpec,
    ) -> Result<RevisionReply, AgentError> {
        if spec.container_id.as_deref().is_some_and(|c| c != container) {
            return Err(AgentError::invalid(format!(
                "body container_id {:?} does not match path container {container}",
                spec.container_id.unwrap_or_default()
            )));
        }
        if spec.id != 0 {
            return Err(AgentError::invalid(
                "a container's endpoint id is chosen by the agent: send id 0",
            ));
        }
        spec.container_id = Some(container.to_string());
        if let Some(id) = self.container_endpoint(container) {
            let have = &self.persisted.endpoints[&id];
            let same = EndpointSpec { id, ..spec.clone() };
            if *have != same {
                return Err(AgentError::Conflict(format!(
                    "container {container} already has endpoint {id} with another configuration"
                )));
            }
            let st = self
                .status(id)
                .ok_or_else(|| AgentError::NotFound(format!("endpoint {id} not found")))?;
            return Ok(RevisionReply {
                revision: st.policy_revision,
                enforced: st.state == "ready",
            });
        }
        spec.id = (1..=MAX_ID)
            .find(|id| !self.persisted.endpoints.contains_key(id))
            .ok_or_else(|| AgentError::Conflict(format!("all {MAX_ID} endpoint ids are in use")))?;
        self.put_endpoint(spec)
    }
}
