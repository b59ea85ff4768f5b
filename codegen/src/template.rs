//! Templated objects: each distinct configuration (features + map sizes) is compiled once with
//! zero endpoint constants; an endpoint's object is the template with its constants written into
//! the bytes of the globals (`ep_id`, `ep_identity`, `ep_ipv4_be`, `ep_ipv6_be`, section
//! [`GLOBALS_SECTION`]), found through the ELF symbol table. No clang run per endpoint, and the
//! result is byte-for-byte what clang produces from the endpoint's own header (tested). A loader
//! may instead override the same globals at load time (aya `EbpfLoader::override_global`), or
//! write them into the loaded section's map ([`PatchSites::write_section`]).

use crate::endpoint::EndpointConfig;
use object::{Object, ObjectSection, ObjectSymbol};

/// The section (and the name of the map a loader makes of it) holding the endpoint's globals.
pub const GLOBALS_SECTION: &str = ".data.ep";

/// The per-endpoint globals, in the byte order the datapath compares them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Globals {
    pub ep_id: u32,
    pub ep_identity: u32,
    /// IPv4 address bytes in memory (network) order, read as a native u32.
    pub ep_ipv4_be: u32,
    /// IPv6 address bytes in memory order, as four native u32s.
    pub ep_ipv6_be: [u32; 4],
}

impl Globals {
    pub fn of(ep: &EndpointConfig) -> Globals {
        let mut v6 = [0u32; 4];
        if let Some(a) = ep.ipv6 {
            for (w, c) in v6.iter_mut().zip(a.octets().chunks(4)) {
                *w = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        Globals {
            ep_id: ep.id,
            ep_identity: ep.identity.0,
            ep_ipv4_be: ep.ipv4.map(|a| u32::from_ne_bytes(a.octets())).unwrap_or(0),
            ep_ipv6_be: v6,
        }
    }

    /// (symbol, bytes) of each global.
    pub fn symbols(&self) -> [(&'static str, Vec<u8>); 4] {
        [
            ("ep_id", self.ep_id.to_ne_bytes().to_vec()),
            ("ep_identity", self.ep_identity.to_ne_bytes().to_vec()),
            ("ep_ipv4_be", self.ep_ipv4_be.to_ne_bytes().to_vec()),
            (
                "ep_ipv6_be",
                self.ep_ipv6_be
                    .iter()
                    .flat_map(|w| w.to_ne_bytes())
                    .collect(),
            ),
        ]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template object is not a readable ELF file: {0}")]
    Elf(#[from] object::read::Error),
    #[error("template object has no symbol `{0}` in a file-backed section `.data.ep` (was it compiled from bpf_lxc.c?)")]
    MissingSymbol(&'static str),
    #[error("symbol `{name}` is {have} bytes in the template, expected {want}")]
    SymbolSize {
        name: &'static str,
        have: u64,
        want: usize,
    },
}

/// Where each global's bytes live in the template file (computed once per template).
#[derive(Clone, Debug)]
pub struct PatchSites {
    /// (symbol, offset in the file, length).
    sites: Vec<(&'static str, usize, usize)>,
    /// Each symbol's offset in its section, in the order of `sites`.
    in_section: Vec<usize>,
}

impl PatchSites {
    pub fn find(template: &[u8]) -> Result<PatchSites, TemplateError> {
        let file = object::File::parse(template)?;
        let mut sites = Vec::new();
        let mut in_section = Vec::new();
        for (name, bytes) in Globals::default().symbols() {
            let sym = file
                .symbols()
                .find(|s| s.name() == Ok(name))
                .ok_or(TemplateError::MissingSymbol(name))?;
            if sym.size() != bytes.len() as u64 {
                return Err(TemplateError::SymbolSize {
                    name,
                    have: sym.size(),
                    want: bytes.len(),
                });
            }
            let section = sym
                .section_index()
                .and_then(|i| file.section_by_index(i).ok())
                .filter(|s| s.name() == Ok(GLOBALS_SECTION))
                .ok_or(TemplateError::MissingSymbol(name))?;
            let (offset, size) = section
                .file_range()
                .ok_or(TemplateError::MissingSymbol(name))?;
            let at = offset + sym.address();
            if sym.address() + sym.size() > size {
                return Err(TemplateError::MissingSymbol(name));
            }
            sites.push((name, at as usize, bytes.len()));
            in_section.push(sym.address() as usize);
        }
        Ok(PatchSites { sites, in_section })
    }

    /// Writes `globals` into `value`, the contents of the loaded [`GLOBALS_SECTION`] map
    /// (false if it is too short to hold them).
    pub fn write_section(&self, value: &mut [u8], globals: &Globals) -> bool {
        for ((_, _, len), (at, (_, bytes))) in self
            .sites
            .iter()
            .zip(self.in_section.iter().zip(globals.symbols()))
        {
            let Some(dst) = value.get_mut(*at..*at + *len) else {
                return false;
            };
            dst.copy_from_slice(&bytes[..*len]);
        }
        true
    }

    /// The endpoint's object: a copy of `template` with `globals` written in.
    pub fn instantiate(&self, template: &[u8], globals: &Globals) -> Vec<u8> {
        let mut out = template.to_vec();
        for ((name, at, len), (sname, bytes)) in self.sites.iter().zip(globals.symbols()) {
            debug_assert_eq!(*name, sname);
            out[*at..*at + *len].copy_from_slice(&bytes[..*len]);
        }
        out
    }

    /// Reads the globals back out of an object (for tests and `inspect`).
    pub fn read(&self, object: &[u8]) -> Globals {
        let word = |at: usize| {
            u32::from_ne_bytes([object[at], object[at + 1], object[at + 2], object[at + 3]])
        };
        let mut g = Globals::default();
        for (name, at, _) in &self.sites {
            match *name {
                "ep_id" => g.ep_id = word(*at),
                "ep_identity" => g.ep_identity = word(*at),
                "ep_ipv4_be" => g.ep_ipv4_be = word(*at),
                _ => {
                    for i in 0..4 {
                        g.ep_ipv6_be[i] = word(at + 4 * i);
                    }
                }
            }
        }
        g
    }
}
