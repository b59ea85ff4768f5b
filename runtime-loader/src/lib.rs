//! Loads compiled datapath objects with aya, fills their maps from map images, and runs packets
//! through them (BPF_PROG_TEST_RUN).

pub mod load;
pub mod packet;
pub mod test_run;

pub use load::{load, Datapath, LoadError, LoadOptions};
pub use test_run::{test_run, RunOutcome};
