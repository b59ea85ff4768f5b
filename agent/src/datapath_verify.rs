//! Before a sync writes anything, [`Datapath::verify`] checks what the writes rely on (see
//! `integrity.rs`): bpffs is still mounted at `--bpf-root` (remounted when it is not), the
//! node's L7-redirect program is still pinned (installed again when it is not), and for
//! each endpoint this process attached, the pins it writes hold the maps its programs use. An
//! endpoint whose pins are missing or foreign is reloaded (new pins, new maps filled
//! completely); a broken shared pin reloads every endpoint. After the writes,
//! [`Datapath::own_interfaces`] detaches every program on an endpoint's interface that is not
//! attached through its own link (another node name's, an older run's).

use super::{endpoint_maps, internal, shared_maps, Datapath};
use crate::error::AgentError;
use crate::integrity::{self, IntegrityError, Pins};
use runtime_loader::{AttachMode, Hook, NodeLayout};
use std::collections::BTreeSet;

/// What must be loaded again because the kernel no longer matches what was loaded.
pub enum Reload {
    Nothing,
    /// These endpoints (their own pins).
    Some(BTreeSet<u16>),
    /// Every endpoint (a shared pin, or the whole bpffs).
    All,
}

impl Datapath {
    /// Checks bpffs and the pins of the endpoints in `ids` this process attached (and of one
    /// more, for the shared maps, when none of them is), and forgets what was loaded where
    /// they do not hold: the sync that follows reloads it.
    pub(super) fn verify(&mut self, ids: &[u16]) -> Result<Reload, AgentError> {
        if !runtime_loader::bpffs::is_bpffs(&self.bpf_root).unwrap_or(false) {
            tracing::error!(bpf_root = %self.bpf_root.display(),
                "the BPF filesystem is gone; mounting it again and reloading every endpoint");
            runtime_loader::bpffs::ensure_bpffs(&self.bpf_root).map_err(internal)?;
            self.layout = NodeLayout::create(&self.bpf_root, &self.node).map_err(internal)?;
            self._lock = crate::lock::acquire_dir(self.layout.root(), "node pin directory")
                .map_err(internal)?;
            self.forget_all();
            crate::proxy::install_node_redirect(self)?;
            return Ok(Reload::All);
        }
        if !self.node_redirect_attached() {
            tracing::warn!(link = %self.layout.proxy_link().display(), mode = self.mode_name(),
                "the node's L7-redirect program is no longer attached; installing it again");
            crate::proxy::install_node_redirect(self)?;
        }
        let mut check: Vec<u16> = ids
            .iter()
            .copied()
            .filter(|id| self.programs.contains_key(id))
            .collect();
        if check.is_empty() {
            check.extend(self.programs.keys().next().copied());
        }
        let mut reload = BTreeSet::new();
        for id in check {
            let Err(e) = self.check_endpoint(id) else {
                continue;
            };
            let shared = match &e {
                IntegrityError::MissingPin { path }
                | IntegrityError::ForeignPin { path, .. }
                | IntegrityError::UnpinnedMap { path, .. } => {
                    path.starts_with(self.layout.root().join("maps"))
                }
                _ => false,
            };
            tracing::warn!(endpoint = id, error = %e, shared,
                "pinned state does not match the attached programs; reloading");
            if shared {
                self.forget_all();
                return Ok(Reload::All);
            }
            self.forget_endpoint(id);
            reload.insert(id);
        }
        Ok(if reload.is_empty() {
            Reload::Nothing
        } else {
            Reload::Some(reload)
        })
    }

    /// The endpoints this process loaded and attached programs for.
    pub fn attached_endpoints(&self) -> Vec<u16> {
        self.programs.keys().copied().collect()
    }

    /// Whether the node's L7-redirect program is on `lo`.
    pub(crate) fn node_redirect_attached(&self) -> bool {
        runtime_loader::attach::is_attached(
            runtime_loader::proxy::LO,
            Hook::FromEndpoint,
            self.mode,
            &self.layout.proxy_link(),
        )
    }

    /// Forgets what was loaded for endpoint `id`: its next sync loads and attaches it anew.
    pub(crate) fn forget_endpoint(&mut self, id: u16) {
        self.programs.remove(&id);
        self.written.remove(&id);
    }

    fn forget_all(&mut self) {
        self.programs.clear();
        self.written.clear();
        self.ipcache = None;
    }

    /// What the endpoint's interface runs (through its link pins, or its tc filters) against
    /// the programs this process attached for it, and their maps against its map pins.
    fn check_endpoint(&self, id: u16) -> Result<(), IntegrityError> {
        let progs = self.own_programs_run(id)?;
        self.check_pins_of(id, &progs)
    }

    /// The maps the endpoint's programs `progs` use against its map pins.
    fn check_pins_of(&self, id: u16, progs: &[u32]) -> Result<(), IntegrityError> {
        let mut pins = Pins::new();
        for m in shared_maps() {
            pins.insert(m.into(), pin_path(id, self.layout.shared_map(m))?);
        }
        for m in endpoint_maps() {
            pins.insert(
                m.into(),
                pin_path(id, self.layout.endpoint_map_path(id, m))?,
            );
        }
        integrity::check_pins(progs, &pins)
    }

    /// The programs the endpoint's links or filters run, each checked to be the one this
    /// process attached for it (none when it attached none).
    fn own_programs_run(&self, id: u16) -> Result<Vec<u32>, IntegrityError> {
        let Some(loaded) = self.programs.get(&id) else {
            return Ok(Vec::new());
        };
        let iface = &loaded.key.iface;
        let mut progs = Vec::with_capacity(2);
        for (hook, want) in Hook::BOTH.into_iter().zip(loaded.ids) {
            let prog = match self.mode {
                AttachMode::Tcx => {
                    integrity::link_program(&pin_path(id, self.layout.link(id, hook))?)?
                }
                AttachMode::Netlink => {
                    integrity::filter_program(iface, integrity::ifindex(iface), hook)?
                }
            };
            expect_program(iface, hook, prog, want)?;
            progs.push(prog);
        }
        Ok(progs)
    }

    /// What the periodic check asks (`guard.rs`): whether the endpoint's interface runs its
    /// own programs and nothing else on either hook, changing nothing. The pins are left to
    /// the verification before each write: a pin removed changes what a write would reach,
    /// not what runs.
    pub fn check_running(
        &self,
        id: u16,
        lister: &mut runtime_loader::tcfilter::Lister,
    ) -> Result<(), String> {
        self.running_alone(id, lister).map(drop)
    }

    /// The programs the endpoint's interface runs on its two hooks, checked to be its own
    /// with nothing else there (none when this process attached none).
    fn running_alone(
        &self,
        id: u16,
        lister: &mut runtime_loader::tcfilter::Lister,
    ) -> Result<Vec<u32>, String> {
        if self.mode == AttachMode::Tcx {
            let progs = self.own_programs_run(id).map_err(|e| e.to_string())?;
            self.no_foreign_programs(id)?;
            return Ok(progs);
        }
        // tc mode: one filter dump per hook answers both questions.
        let Some(loaded) = self.programs.get(&id) else {
            return Ok(Vec::new());
        };
        let iface = &loaded.key.iface;
        let ifindex = integrity::ifindex(iface);
        let mut progs = Vec::with_capacity(2);
        for (hook, want) in Hook::BOTH.into_iter().zip(loaded.ids) {
            let (prog, others) =
                integrity::tc_hook(iface, ifindex, hook, lister).map_err(|e| e.to_string())?;
            expect_program(iface, hook, prog, want).map_err(|e| e.to_string())?;
            if let Some(other) = others.first() {
                return Err(foreign_message(hook, iface, other));
            }
            progs.push(prog);
        }
        Ok(progs)
    }

    /// Detaches every program on the endpoint's interface not attached through its own links
    /// (tcx) or filters (tc mode); an error when that fails or its own are not attached.
    pub(super) fn own_interface(&self, id: u16) -> Result<(), AgentError> {
        for (hook, iface, d) in self.foreign_programs(id, true)? {
            tracing::warn!(endpoint = id, iface = %iface, hook = hook.name(), detached = %d,
                "detached a program that was not the endpoint's own (another node name or an older run)");
        }
        Ok(())
    }

    /// Whether endpoint `id`'s own programs are what its interface runs, changing nothing:
    /// its programs attached (tcx links or tc filters) and using its pins, nothing else on
    /// either hook. `Err` says what is wrong (the CNI CHECK's answer).
    pub fn check_attached(&self, id: u16) -> Result<(), String> {
        if !self.programs.contains_key(&id) {
            return Err(format!(
                "endpoint {id} has no programs loaded by this agent"
            ));
        }
        let mut lister = runtime_loader::tcfilter::Lister::default();
        let progs = self.running_alone(id, &mut lister)?;
        self.check_pins_of(id, &progs).map_err(|e| e.to_string())
    }

    /// `Err` naming the first program the endpoint's interface runs besides its own.
    fn no_foreign_programs(&self, id: u16) -> Result<(), String> {
        let foreign = self
            .foreign_programs(id, false)
            .map_err(|e| e.to_string())?;
        match foreign.first() {
            None => Ok(()),
            Some((hook, iface, what)) => Err(foreign_message(*hook, iface, what)),
        }
    }

    /// What runs on the endpoint's interface besides its own programs, per hook; removed
    /// when `remove`.
    fn foreign_programs(
        &self,
        id: u16,
        remove: bool,
    ) -> Result<Vec<(Hook, String, String)>, AgentError> {
        let Some(key) = self.programs.get(&id).map(|l| &l.key) else {
            return Ok(Vec::new());
        };
        let ifindex = integrity::ifindex(&key.iface);
        if ifindex == 0 {
            return Err(AgentError::Datapath(format!(
                "endpoint {id}: interface {} is gone",
                key.iface
            )));
        }
        let mut found = Vec::new();
        for hook in Hook::BOTH {
            let others = match self.mode {
                AttachMode::Tcx => {
                    let own = self.layout.link(id, hook).map_err(internal)?;
                    integrity::keep_only_own_link(
                        &key.iface,
                        ifindex,
                        hook == Hook::FromEndpoint,
                        Some(&own),
                        remove,
                    )
                }
                AttachMode::Netlink => {
                    integrity::keep_only_own_filter(&key.iface, ifindex, hook, remove)
                }
            }
            .map_err(|e| AgentError::Datapath(format!("endpoint {id}: {e}")))?;
            found.extend(others.into_iter().map(|d| (hook, key.iface.clone(), d)));
        }
        Ok(found)
    }
}

/// A pin's path for endpoint `id`'s check, as an integrity error.
fn pin_path(
    id: u16,
    r: runtime_loader::Result<std::path::PathBuf>,
) -> Result<std::path::PathBuf, IntegrityError> {
    r.map_err(|e| IntegrityError::Bpf {
        what: format!("endpoint {id}"),
        source: std::io::Error::other(e.to_string()),
    })
}

/// What CHECK and the periodic check say of a program that is not the endpoint's own.
fn foreign_message(hook: Hook, iface: &str, what: &str) -> String {
    format!(
        "interface {iface} ({}) also runs {what}, not the endpoint's own",
        hook.name()
    )
}

/// Our filter's priority and handle, or our link, running another program than `want` (one
/// replaced behind the agent's back) is not the endpoint's enforcement.
fn expect_program(iface: &str, hook: Hook, prog: u32, want: u32) -> Result<(), IntegrityError> {
    if prog == want {
        return Ok(());
    }
    Err(IntegrityError::ForeignProgram {
        iface: iface.into(),
        hook: hook.name(),
        found: prog,
        want,
    })
}
