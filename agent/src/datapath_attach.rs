//! Attaching an endpoint's two programs ([`Datapath::attach`]).
//!
//! In tc mode (the default) attaching is a netlink request answered in well under a
//! millisecond, and the load verified both programs at once on two threads
//! (`runtime_loader::load`). What follows is about tcx mode (`--attach-mode tcx`).
//!
//! Each tcx attach that creates a link waits in the kernel for an RCU grace period (the
//! interface's program list is swapped, and readers of the old one must be gone): 10–13 ms on
//! the project machine, about as long as the verifier takes for one program. A new endpoint's
//! `cil_to_container` is therefore verified on a second thread while the kernel attaches its
//! `cil_from_container`, which takes that wait off the ADD path. Only an endpoint of which
//! nothing is attached gets this order ([`Datapath::nothing_attached`]): should the verifier
//! reject the second program, the first is detached again and the endpoint's sync fails, so
//! nothing of it stays attached; the agent then refuses the change and brings the datapath
//! back to the previous revision, as for any failed write. Endpoints that are reloaded have
//! both programs verified before anything is written.

use super::{internal, Datapath, Plan};
use crate::error::AgentError;
use aya::programs::SchedClassifier;
use runtime_loader::load::{self, PROG_TO_CONTAINER};
use runtime_loader::Hook;

impl Datapath {
    /// Attaches (or replaces) the programs of `dp` on the endpoint's interface, verifying its
    /// `cil_to_container` meanwhile when the plan left it unverified (see the module doc);
    /// returns their kernel ids, in the order of [`Hook::BOTH`].
    pub(super) fn attach(
        &self,
        plan: &Plan,
        dp: &mut load::Datapath,
    ) -> Result<[u32; 2], AgentError> {
        let (from, to) = dp.programs_mut().map_err(internal)?;
        let attach = |prog: &mut SchedClassifier, hook: Hook| -> Result<(), AgentError> {
            let pin = self.layout.link(plan.id, hook).map_err(internal)?;
            runtime_loader::attach::attach_or_replace(prog, &plan.key.iface, hook, self.mode, &pin)
                .map(drop)
                .map_err(internal)
        };
        if plan.verify_to {
            let second = &mut *to;
            let verified = std::thread::scope(|s| {
                let parent = tracing::Span::current();
                let verifying = std::thread::Builder::new()
                    .name("verify".into())
                    .spawn_scoped(s, move || {
                        parent.in_scope(|| load::verify_program(PROG_TO_CONTAINER, second))
                    });
                match verifying {
                    Ok(handle) => {
                        let attached = attach(from, Hook::FromEndpoint);
                        let verified = match handle.join() {
                            Ok(v) => v.map_err(refused),
                            Err(_) => Err(AgentError::Datapath(format!(
                                "verifying {PROG_TO_CONTAINER} panicked"
                            ))),
                        };
                        verified.and(attached)
                    }
                    Err(e) => Err(AgentError::Datapath(format!(
                        "starting a thread to verify {PROG_TO_CONTAINER}: {e}"
                    ))),
                }
            });
            if let Err(e) = verified {
                self.detach_new(plan);
                return Err(e);
            }
        } else {
            attach(from, Hook::FromEndpoint)?;
        }
        attach(to, Hook::ToEndpoint)?;
        let (from, to) = dp.programs_mut().map_err(internal)?;
        let id = |p: &SchedClassifier| p.info().map(|i| i.id()).map_err(internal);
        Ok([id(from)?, id(to)?])
    }

    /// Detaches what a failed [`Datapath::attach`] of an endpoint with nothing attached
    /// before may have attached. Best effort: a failure is logged, and the sync that restores
    /// the previous revision removes the endpoint's links and pins anyway.
    fn detach_new(&self, plan: &Plan) {
        for hook in Hook::BOTH {
            let res = self
                .layout
                .link(plan.id, hook)
                .map_err(internal)
                .and_then(|pin| {
                    runtime_loader::attach::detach(&plan.key.iface, hook, self.mode, &pin)
                        .map_err(internal)
                });
            if let Err(e) = res {
                tracing::error!(endpoint = plan.id, hook = hook.name(), error = %e,
                    "detaching the program of a refused endpoint failed");
            }
        }
    }
}

/// A rejection of a new endpoint's second program, as its failed write: the agent adds which
/// endpoint and that the change was refused ([`crate::verifier::load_error`] for loads
/// refused before anything is written).
fn refused(e: load::LoadError) -> AgentError {
    let verifier = matches!(e, load::LoadError::Verifier { .. });
    let (what, log) = crate::verifier::describe(e);
    let msg = format!("{what}{log}\n");
    if verifier {
        AgentError::Verifier(msg)
    } else {
        AgentError::Datapath(msg)
    }
}
