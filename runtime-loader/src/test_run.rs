//! BPF_PROG_TEST_RUN on a loaded endpoint program: run a packet (an Ethernet frame) through it
//! `repeat` times and report the tc verdict and the kernel-measured time per run.

use aya::programs::{SchedClassifier, TestRun, TestRunOptions};
use std::time::Duration;

/// TC_ACT_OK: the packet continues.
pub const TC_ACT_OK: u32 = 0;
/// TC_ACT_SHOT: the packet is dropped.
pub const TC_ACT_SHOT: u32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum TestRunError {
    #[error("BPF_PROG_TEST_RUN failed: {0}")]
    Run(#[from] aya::programs::ProgramError),
    #[error("a test packet needs at least an Ethernet header (14 bytes), got {0}")]
    TooShort(usize),
}

/// What one BPF_PROG_TEST_RUN returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunOutcome {
    /// The program's return value (TC_ACT_*).
    pub retval: u32,
    /// Mean time of one run, as measured by the kernel over `repeat` runs.
    pub per_run: Duration,
    pub repeat: u32,
}

impl RunOutcome {
    pub fn passed(&self) -> bool {
        self.retval == TC_ACT_OK
    }
}

/// Runs `packet` through `prog` `repeat` times (at least once).
pub fn test_run(
    prog: &SchedClassifier,
    packet: &[u8],
    repeat: u32,
) -> Result<RunOutcome, TestRunError> {
    if packet.len() < 14 {
        return Err(TestRunError::TooShort(packet.len()));
    }
    let repeat = repeat.max(1);
    let opts = TestRunOptions {
        data_in: Some(packet),
        repeat,
        ..Default::default()
    };
    let r = prog.test_run(opts)?;
    Ok(RunOutcome {
        retval: r.return_value,
        per_run: r.duration,
        repeat,
    })
}
