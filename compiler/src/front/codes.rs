//! The front end's diagnostic codes (CP1xxx): reading, decoding and validating policy files.

use crate::declare_code;
use crate::diag::Code;

declare_code!(
    SYNTAX,
    "CP1001",
    "syntax-error",
    Error,
    "The file is not well-formed YAML or JSON. The location is where the parser gave up; the \
     problem is often just before it (an unclosed quote or bracket, a tab used for indentation). \
     Documents before the error are still checked; the rest of the file is not."
);
declare_code!(
    DUPLICATE_KEY,
    "CP1002",
    "duplicate-key",
    Error,
    "A mapping has the same key twice. YAML parsers disagree on which value wins (the API server \
     rejects it), so the whole object is rejected. Remove or merge one of the two entries."
);
declare_code!(
    UNKNOWN_FIELD,
    "CP1003",
    "unknown-field",
    Error,
    "A field that the policy schema does not have. The API server would reject (or silently prune) \
     it, so the rule would not mean what it says. Usually a typo or wrong indentation: the help \
     suggests the closest known field."
);
declare_code!(
    UNKNOWN_KIND,
    "CP1004",
    "unknown-kind",
    Error,
    "An `apiVersion`/`kind` pair that belongs to a policy API group but is not a known resource \
     (e.g. `cilium.io/v3`, or `kind: NetworkPolicy` with a Cilium apiVersion), or a document that \
     is neither a Kubernetes object nor a Cilium rule. Objects of other API groups are skipped."
);
declare_code!(
    MISSING_FIELD,
    "CP1005",
    "missing-field",
    Error,
    "A required field is absent: `metadata.name` of every object, `endpointSelector` of every \
     Cilium rule, `cidr` of a CIDR set, `key`/`operator` of a selector requirement, and so on."
);
declare_code!(
    WRONG_TYPE,
    "CP1006",
    "wrong-type",
    Error,
    "A field has the wrong type: a list where a mapping is expected, a mapping where a string is \
     expected, a word where a number is expected."
);
declare_code!(
    INVALID_LABEL,
    "CP1007",
    "invalid-label",
    Error,
    "A label key or value in a selector breaks the Kubernetes rules: a key is an optional DNS \
     subdomain prefix (at most 253 characters) and `/`, then a name of at most 63 characters of \
     `[A-Za-z0-9_.-]` starting and ending with an alphanumeric; a value is empty or such a name."
);
declare_code!(
    INVALID_OPERATOR,
    "CP1008",
    "invalid-selector-operator",
    Error,
    "A `matchExpressions` entry is malformed: the operator must be `In`, `NotIn`, `Exists` or \
     `DoesNotExist`; `In` and `NotIn` need at least one value, `Exists` and `DoesNotExist` must \
     not have values."
);
declare_code!(
    INVALID_PORT,
    "CP1009",
    "invalid-port",
    Error,
    "A port is not a number from 1 to 65535 (0 means every port in Cilium rules) or a valid port \
     name (at most 15 lowercase alphanumerics and `-`, with at least one letter)."
);
declare_code!(
    INVALID_PORT_RANGE,
    "CP1010",
    "invalid-port-range",
    Error,
    "`endPort` is below `port`, is given with a named port, or is given without a port."
);
declare_code!(
    UNKNOWN_PROTOCOL,
    "CP1011",
    "unknown-protocol",
    Error,
    "The protocol is not one the rule type accepts: `TCP`, `UDP`, `SCTP` (NetworkPolicy), plus \
     `ANY` in Cilium rules. ICMP is written with an `icmps` block, not as a port protocol."
);
declare_code!(
    INVALID_CIDR,
    "CP1012",
    "invalid-cidr",
    Error,
    "A CIDR is malformed: not an IPv4/IPv6 address, or a prefix length beyond 32 (IPv4) or 128 (IPv6)."
);
declare_code!(
    EXCEPT_OUTSIDE_CIDR,
    "CP1013",
    "except-outside-cidr",
    Error,
    "An `except` entry is not inside the CIDR it is an exception of (or is of the other address \
     family), so it excepts nothing. Kubernetes and Cilium reject such policies."
);
declare_code!(
    UNKNOWN_ENTITY,
    "CP1014",
    "unknown-entity",
    Error,
    "`fromEntities`/`toEntities` names an entity Cilium does not know. Known entities: all, world, \
     world-ipv4, world-ipv6, cluster, host, remote-node, kube-apiserver, init, health, unmanaged, \
     ingress, none."
);
declare_code!(
    L7_NON_TCP,
    "CP1015",
    "l7-on-non-tcp",
    Error,
    "HTTP rules are attached to a port whose protocol is not TCP (including `ANY` or an absent \
     protocol). The HTTP proxy only handles TCP; Cilium rejects the rule. Set `protocol: TCP`."
);
declare_code!(
    INVALID_REGEX,
    "CP1016",
    "invalid-http-regex",
    Error,
    "An HTTP `method`, `path` or `host` is matched as an extended regular expression and this one \
     does not compile."
);
declare_code!(
    TOO_MANY_PORTS,
    "CP1017",
    "too-many-ports",
    Error,
    "One `toPorts` entry lists more ports than the datapath supports (40, Cilium documentation \
     §5.1.4). Split it into several entries."
);
declare_code!(
    TOO_LARGE,
    "CP1018",
    "input-too-large",
    Error,
    "The document nests collections too deeply, or expands (through YAML aliases) to more nodes \
     than the reader accepts. Such input is refused instead of being expanded in memory."
);
declare_code!(
    INVALID_ENCODING,
    "CP1019",
    "invalid-encoding",
    Error,
    "The file is not UTF-8 text (binary data, or another encoding such as UTF-16). Policy files \
     must be UTF-8."
);
declare_code!(
    INVALID_VALUE,
    "CP1020",
    "invalid-value",
    Error,
    "A field has a value outside the accepted set: a `policyTypes` entry other than Ingress or \
     Egress, an ICMP type above 255 or an unknown family, an invalid object name, a malformed header."
);
declare_code!(
    CONFLICTING_FIELDS,
    "CP1021",
    "conflicting-fields",
    Error,
    "Fields that Cilium does not allow together in one rule: `icmps` with `toPorts`, `toFQDNs` \
     with other L3 peers, L7 rules in a deny rule, `spec` with `specs`."
);
declare_code!(
    INVALID_CILIUM_ENDPOINT,
    "CP1022",
    "invalid-cilium-endpoint",
    Error,
    "A `CiliumEndpoint` (cilium.io/v2) whose status cannot be used: an entry of \
     `status.identity.labels` that is not `source:key=value` (or `source:key`), an address in \
     `status.networking.addressing` that is not an IPv4 (`ipv4`) or IPv6 (`ipv6`) address, or a \
     `status.named-ports` entry without a name or with a port outside 1-65535. The endpoint is \
     left out; its labels are taken exactly as written, so a malformed one cannot be guessed."
);
declare_code!(
    DEPRECATED,
    "CP1101",
    "deprecated-form",
    Warning,
    "A deprecated form that is still accepted: `cilium.io/v1`, `extensions/v1beta1` \
     NetworkPolicy, the capitalised `HTTP` key of L7 rules. Use the current form."
);
declare_code!(
    NOT_ENFORCED,
    "CP1102",
    "not-enforced",
    Warning,
    "A field that cilium-policy understands but later stages do not enforce (non-HTTP, \
     non-DNS L7 rules, header secrets and mismatch actions, cloud provider groups, \
     authentication, CIDR groups selected by label). The rule is kept, but the datapath will not implement that part."
);
declare_code!(
    PRUNED_FIELD,
    "CP1103",
    "pruned-field",
    Warning,
    "An unknown field at the top level of a Kubernetes object. The API server prunes it silently, \
     so it has no effect (e.g. a `description` that belongs under `spec`)."
);
declare_code!(
    NAMESPACE_OVERRIDDEN,
    "CP1104",
    "namespace-overridden",
    Warning,
    "The `endpointSelector` of a namespaced policy matches a namespace other than the policy's. \
     Cilium always applies a namespaced policy in its own namespace and drops that match."
);

/// Every code of the front end, for the lint registry and documentation.
pub static FRONT_CODES: &[&Code] = &[
    &SYNTAX,
    &DUPLICATE_KEY,
    &UNKNOWN_FIELD,
    &UNKNOWN_KIND,
    &MISSING_FIELD,
    &WRONG_TYPE,
    &INVALID_LABEL,
    &INVALID_OPERATOR,
    &INVALID_PORT,
    &INVALID_PORT_RANGE,
    &UNKNOWN_PROTOCOL,
    &INVALID_CIDR,
    &EXCEPT_OUTSIDE_CIDR,
    &UNKNOWN_ENTITY,
    &L7_NON_TCP,
    &INVALID_REGEX,
    &TOO_MANY_PORTS,
    &TOO_LARGE,
    &INVALID_ENCODING,
    &INVALID_VALUE,
    &CONFLICTING_FIELDS,
    &INVALID_CILIUM_ENDPOINT,
    &DEPRECATED,
    &NOT_ENFORCED,
    &PRUNED_FIELD,
    &NAMESPACE_OVERRIDDEN,
];
