//! How the agent reports a program the kernel refused to load: which endpoint and program, the
//! verifier's verdict and the tail of its log (the full log runs to thousands of lines; the
//! reason is at its end), and that nothing changed.

use super::error::AgentError;
use runtime_loader::load::LoadError;

/// Lines of the verifier log kept in the error.
pub const LOG_TAIL_LINES: usize = 20;

/// The API error for a failed load of endpoint `id` (`name`).
pub fn load_error(id: u16, name: &str, e: LoadError) -> AgentError {
    let unchanged = "the change was refused and the previous policy stays enforced";
    let verifier = matches!(e, LoadError::Verifier { .. });
    let (what, log) = describe(e);
    let msg = format!("endpoint {id} ({name}): {what}; {unchanged}{log}");
    if verifier {
        AgentError::Verifier(msg)
    } else {
        AgentError::Datapath(msg)
    }
}

/// A failed load in words, and for a verifier rejection the tail of the verifier's log after
/// a newline (empty otherwise).
pub fn describe(e: LoadError) -> (String, String) {
    match e {
        LoadError::Verifier {
            name: prog,
            source,
            log,
        } => {
            // aya's message for a failed load embeds the whole log: name only the errno here.
            let why = match &source {
                aya::programs::ProgramError::LoadError { io_error, .. } => {
                    format!("BPF_PROG_LOAD: {io_error}")
                }
                other => other.to_string(),
            };
            (
                format!("the kernel verifier rejected program {prog} ({why})"),
                format!(
                    "\nverifier log (last {LOG_TAIL_LINES} lines):\n{}",
                    tail(&log, LOG_TAIL_LINES)
                ),
            )
        }
        other => (other.to_string(), String::new()),
    }
}

/// The last `n` non-empty lines of `log`.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::tail;

    #[test]
    fn tail_keeps_the_last_lines() {
        let log = "0: r1 = 1\n\n1: r0 = 2\n2: exit\nprocessed 3 insns\n";
        assert_eq!(tail(log, 2), "2: exit\nprocessed 3 insns");
        assert_eq!(
            tail(log, 10),
            "0: r1 = 1\n1: r0 = 2\n2: exit\nprocessed 3 insns"
        );
    }
}
