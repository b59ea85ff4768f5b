//! Security identities (seed §3.7): label derivation for Kubernetes endpoints, the
//! identity-relevant label filter, numeric identity allocation, reserved and CIDR identities.

pub mod alloc;
pub mod derive;
pub mod filter;
pub mod reserved;
pub mod shared;

pub use alloc::IdAllocator;
pub use derive::{
    derive_labels, CILIUM_ENDPOINT_KIND, CLUSTER_LABEL, NAMESPACE_LABEL, NAMESPACE_LABELS_PREFIX,
    SERVICE_ACCOUNT_LABEL,
};
pub use filter::{LabelFilter, LabelFilterError};
pub use reserved::{
    cidr_labels, entity_selects, node_labels, node_selects, reserved_labels, IdentityInfo,
    IdentityKind,
};
pub use shared::SharedIdentities;
