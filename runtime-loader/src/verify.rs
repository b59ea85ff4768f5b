//! Loading one program through the kernel's verifier.

use aya::programs::{ProgramError, SchedClassifier};

/// How many times a load interrupted by a signal is tried in all (libbpf tries five times).
const ATTEMPTS: usize = 5;

/// Loads `prog` through the verifier. The verifier abandons a program with `EAGAIN` when a
/// signal is pending for the loading thread (a child's `SIGCHLD` in a process that handles
/// it, a `SIGTERM` being handled), which says nothing about the program: such a load is tried
/// again, up to [`ATTEMPTS`] times. On failure, the error and the verifier's log (empty when
/// the kernel gave none).
pub fn load_verified(prog: &mut SchedClassifier) -> Result<(), (ProgramError, String)> {
    let mut attempt = 1;
    loop {
        match prog.load() {
            Ok(()) => return Ok(()),
            Err(ProgramError::LoadError { io_error, .. })
                if io_error.raw_os_error() == Some(libc::EAGAIN) && attempt < ATTEMPTS =>
            {
                attempt += 1;
            }
            Err(e) => {
                let log = match &e {
                    ProgramError::LoadError { verifier_log, .. } => verifier_log.to_string(),
                    _ => String::new(),
                };
                return Err((e, log));
            }
        }
    }
}
