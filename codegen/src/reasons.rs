//! Drop reasons the datapath reports, with Cilium's numeric codes and names
//! (`pkg/monitor/api/drop.go`), so `monitor` output reads like Cilium's.

/// A redirected packet found no proxy socket (Cilium's `DROP_PROXY_LOOKUP_FAILED`, -178 in
/// `bpf/lib/common.h`; Hubble's `SOCKET_LOOKUP_FAILED`).
pub const DROP_PROXY_LOOKUP_FAILED: u8 = 178;

/// (code, C macro, Cilium's name). Code 0 is "forwarded" in the metrics map.
pub const DROP_REASONS: &[(u8, &str, &str)] = &[
    (0, "REASON_FORWARDED", "Success"),
    (132, "DROP_INVALID_SIP", "Invalid source ip"),
    (133, "DROP_POLICY", "Policy denied"),
    (134, "DROP_INVALID", "Invalid packet"),
    (
        135,
        "DROP_CT_INVALID_HDR",
        "CT: Truncated or invalid header",
    ),
    (139, "DROP_UNKNOWN_L3", "Unsupported L3 protocol"),
    (155, "DROP_CT_CREATE_FAILED", "CT: Map insertion failed"),
    (156, "DROP_INVALID_EXTHDR", "Invalid IPv6 extension header"),
    (157, "DROP_FRAG_NOSUPPORT", "IP fragmentation not supported"),
    (
        DROP_PROXY_LOOKUP_FAILED,
        "DROP_PROXY_LOOKUP_FAILED",
        "Proxy lookup failed",
    ),
    (181, "DROP_POLICY_DENY", "Policy denied by denylist"),
];

/// Cilium's name for a drop reason; `Policy denied (L3)` is the name older Cilium releases
/// (and the seed's monitor output) used for 133.
pub fn name(code: u8) -> Option<&'static str> {
    DROP_REASONS
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, _, n)| *n)
}

/// The pre-1.14 name of a reason, where it differs (the seed documentation's monitor lines).
pub fn legacy_name(code: u8) -> Option<&'static str> {
    match code {
        133 => Some("Policy denied (L3)"),
        other => name(other),
    }
}

/// The name of a drop reason in Hubble's `DropReason` enum (`flow.proto`), which flows carry
/// as `drop_reason_desc`.
pub fn hubble_name(code: u8) -> Option<&'static str> {
    Some(match code {
        132 => "INVALID_SOURCE_IP",
        133 => "POLICY_DENIED",
        134 => "INVALID_PACKET_DROPPED",
        135 => "CT_TRUNCATED_OR_INVALID_HEADER",
        139 => "UNSUPPORTED_L3_PROTOCOL",
        155 => "CT_MAP_INSERTION_FAILED",
        156 => "INVALID_IPV6_EXTENSION_HEADER",
        157 => "IP_FRAGMENTATION_NOT_SUPPORTED",
        DROP_PROXY_LOOKUP_FAILED => "SOCKET_LOOKUP_FAILED",
        181 => "POLICY_DENY",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_cilium() {
        // From Cilium's drop.go table.
        assert_eq!(name(133), Some("Policy denied"));
        assert_eq!(name(181), Some("Policy denied by denylist"));
        assert_eq!(legacy_name(133), Some("Policy denied (L3)"));
        assert_eq!(name(157), Some("IP fragmentation not supported"));
        assert_eq!(name(1), None);
    }

    #[test]
    fn every_reason_has_a_hubble_name() {
        for (code, _, _) in DROP_REASONS.iter().filter(|r| r.0 != 0) {
            assert!(hubble_name(*code).is_some(), "reason {code}");
        }
        assert_eq!(hubble_name(133), Some("POLICY_DENIED"));
        assert_eq!(hubble_name(181), Some("POLICY_DENY"));
    }
}
