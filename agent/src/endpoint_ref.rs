//! How requests name an endpoint: by number, by its pod or by its CNI container.

use super::error::AgentError;

/// Endpoint ids as the seed writes them: `[prefix:]id`; `cilium-local:` is the default prefix,
/// `pod-name:NAMESPACE:NAME` names an endpoint by its pod and `container-id:ID` by the container
/// of a CNI endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndpointRef {
    Id(u16),
    Pod(String),
    Container(String),
}

impl EndpointRef {
    /// Parses an id as the seed writes it.
    pub fn parse(s: &str) -> Result<EndpointRef, AgentError> {
        let bad = || {
            AgentError::invalid(format!(
                "invalid endpoint id {s:?}: expected [cilium-local:]N, pod-name:NAMESPACE:NAME or container-id:ID"
            ))
        };
        if let Some(c) = s.strip_prefix("container-id:") {
            let valid = |b: u8| b.is_ascii_alphanumeric() || b"-_.".contains(&b);
            if c.is_empty() || c.len() > 128 || !c.bytes().all(valid) {
                return Err(bad());
            }
            return Ok(EndpointRef::Container(c.to_string()));
        }
        if let Some(rest) = s.strip_prefix("pod-name:") {
            let (ns, name) = rest.split_once(':').ok_or_else(bad)?;
            if ns.is_empty() || name.is_empty() {
                return Err(bad());
            }
            return Ok(EndpointRef::Pod(format!("{ns}/{name}")));
        }
        let n = s.strip_prefix("cilium-local:").unwrap_or(s);
        n.parse::<u16>().map(EndpointRef::Id).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_ids_follow_the_seed_prefixes() {
        assert!(matches!(
            EndpointRef::parse("25729"),
            Ok(EndpointRef::Id(25729))
        ));
        assert!(matches!(
            EndpointRef::parse("cilium-local:7"),
            Ok(EndpointRef::Id(7))
        ));
        assert!(
            matches!(EndpointRef::parse("pod-name:default:app1"), Ok(EndpointRef::Pod(p)) if p == "default/app1")
        );
        assert!(
            matches!(EndpointRef::parse("container-id:3f2a_b.c-1"), Ok(EndpointRef::Container(c)) if c == "3f2a_b.c-1")
        );
        for bad in [
            "",
            "x",
            "70000",
            "pod-name:x",
            "container-id:",
            "container-id:a/b",
        ] {
            assert!(EndpointRef::parse(bad).is_err(), "{bad}");
        }
    }
}
