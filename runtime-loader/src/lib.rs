//! Runtime loader: bpffs, load, attach, pin, map images and deltas.
//!
//! - [`bpffs`]: check and mount the BPF filesystem (`--bpf-root`).
//! - [`layout`]: where a node's maps and links are pinned, found again after a restart.
//! - [`attach`]: tcx (or clsact/netlink) attach, atomic replace, detach; [`tcfilter`]: the
//!   classic tc filters of an interface, listed and deleted over rtnetlink.
//! - [`rawmap`], [`delta`]: byte-level map access and entry deltas.
//! - [`hz`]: the kernel's HZ, for connection-tracking lifetimes in jiffies; [`kernel`]: what
//!   the kernel's BPF supports (probed), for features compiled out on older kernels.
//! - [`load`]: load an object (globals, pinned maps, map images, state); [`kit`]: an object
//!   loaded and verified ahead for an endpoint yet to come; [`test_run`]:
//!   BPF_PROG_TEST_RUN; [`packet`]: test packets; [`pins`]: pinned maps of another layout
//!   are retired before a load instead of being handed to the new program.
//! - [`proxy`]: the node's side of the L7 redirect (policy routing, the program on `lo`);
//!   [`ring`]: how readers of the events ring wait between drains.
//! - `testkit` and `probe` (feature `testkit`): self-cleaning network namespaces, veth pairs
//!   and private bpffs mounts, connectivity probes and skip records for the root integration
//!   tests of this crate and of the agent.

pub mod attach;
pub mod bpffs;
pub mod delta;
pub mod error;
pub mod hz;
pub mod kernel;
pub mod kit;
pub mod layout;
pub mod load;
pub mod packet;
pub mod pins;
#[cfg(any(test, feature = "testkit"))]
pub mod probe;
pub mod proxy;
pub mod rawmap;
pub mod ring;
pub mod tcfilter;
pub mod test_run;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod verify;

pub use attach::{AttachMode, Attached, Hook};
pub use delta::{DeltaStats, MapDelta, MapOp};
pub use error::{LoaderError, Result};
pub use layout::{EndpointId, NodeLayout};
pub use rawmap::{Entries, RawMap};

pub use load::{load, Datapath, LoadError, LoadOptions};
pub use test_run::{test_run, RunOutcome};
