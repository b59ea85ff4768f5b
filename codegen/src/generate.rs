//! The codegen entry point: per-endpoint artefacts (header, object from a template, map images)
//! and node artefacts (header, ipcache image, rule table), with the map-size check.

use crate::clang::{Clang, ClangError, ObjectCache};
use crate::endpoint::{EndpointConfig, Features, MapSizes};
use crate::entries::EndpointEntries;
use crate::headers;
use crate::image::{ImageKind, MapImage};
use crate::ipcache::ipcache_images;
use crate::maps::MapDef;
use crate::template::{Globals, PatchSites, TemplateError};
use ir::{Direction, EndpointPolicy, IpCache, PolicySet};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    #[error(transparent)]
    Clang(#[from] ClangError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("endpoint {endpoint}: its policy map needs {needed} entries but holds at most {max} ({why}); raise the policy map size or split the rules")]
    PolicyMapFull {
        endpoint: String,
        needed: usize,
        max: u32,
        why: String,
    },
    #[error("endpoint {endpoint}: {needed} address (ipBlock) prefixes exceed the address map size {max}")]
    AddrMapFull {
        endpoint: String,
        needed: usize,
        max: u32,
    },
    #[error("the ipcache has {needed} entries but an ipcache map holds at most {max}")]
    IpcacheFull { needed: usize, max: u32 },
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A compiled template: one per distinct (features, sizes).
#[derive(Clone, Debug)]
pub struct Template {
    /// The object cache file it came from.
    pub path: PathBuf,
    pub bytes: Arc<Vec<u8>>,
    pub sites: PatchSites,
    /// Whether the object cache already held it.
    pub cached: bool,
}

/// Everything generated for one endpoint.
#[derive(Clone, Debug)]
pub struct EndpointArtefacts {
    pub config: EndpointConfig,
    pub features: Features,
    /// The endpoint's own `ep_config.h` (constants, features and the rules behind them).
    pub header: String,
    /// Its object: the template with its constants patched in.
    pub object: Vec<u8>,
    /// The template object it was instantiated from.
    pub template: PathBuf,
    pub entries: EndpointEntries,
    /// `max_entries` its policy map is created with ([`MapSizes::policy_capacity`] of its
    /// entries; loaders pass [`crate::maps::endpoint_max_entries`] of it).
    pub policy_capacity: u32,
}

impl EndpointArtefacts {
    pub fn policy_image(&self) -> MapImage {
        self.entries.policy_image()
    }
    /// `None` when address matching is compiled out.
    pub fn addr_image(&self) -> Option<MapImage> {
        self.features.addr_match.then(|| self.entries.addr_image())
    }
    /// `None` when port ranges are compiled out.
    pub fn range_image(&self) -> Option<MapImage> {
        self.features
            .port_ranges
            .then(|| self.entries.range_image())
    }
    /// Every image of the endpoint's own maps (policy, then ranges and address classes when
    /// compiled in).
    pub fn images(&self) -> Vec<MapImage> {
        let mut v = vec![self.policy_image()];
        v.extend(self.range_image());
        v.extend(self.addr_image());
        v
    }
}

/// Generates artefacts; compiles each distinct configuration once.
pub struct Generator {
    pub clang: Clang,
    pub cache: ObjectCache,
    pub sizes: MapSizes,
    templates: HashMap<Features, Template>,
}

impl Generator {
    pub fn new(cache_dir: impl Into<PathBuf>, sizes: MapSizes) -> Result<Self, CodegenError> {
        Ok(Generator {
            clang: Clang::find()?,
            cache: ObjectCache::new(cache_dir),
            sizes,
            templates: HashMap::new(),
        })
    }

    /// The template for `features`, compiling it on first use.
    pub fn template(&mut self, features: &Features) -> Result<&Template, CodegenError> {
        if !self.templates.contains_key(features) {
            let ep = headers::render_template(features, &self.sizes);
            let node = self.node_template_header();
            let (path, cached) = self.cache.get_or_compile(
                &self.clang,
                &ep,
                &node,
                &format!("template {features:?}"),
            )?;
            let bytes = std::fs::read(&path).map_err(|source| CodegenError::Io {
                path: path.clone(),
                source,
            })?;
            let sites = PatchSites::find(&bytes)?;
            self.templates.insert(
                *features,
                Template {
                    path,
                    bytes: Arc::new(bytes),
                    sites,
                    cached,
                },
            );
        }
        Ok(&self.templates[features])
    }

    /// Templates compiled or found so far.
    pub fn templates(&self) -> impl Iterator<Item = (&Features, &Template)> {
        self.templates.iter()
    }

    /// The node header objects are compiled with (sizes only; counts are not compiled in).
    fn node_template_header(&self) -> String {
        headers::render_node(&self.sizes, 0, 0)
    }

    /// The node header as written beside the objects.
    pub fn node_header(&self, endpoints: usize, ipcache: &IpCache) -> String {
        headers::render_node(&self.sizes, endpoints, ipcache.entries.len())
    }

    /// The ipcache images (`[cp_ipcache_host, cp_ipcache]`), checked against the map size.
    pub fn ipcache_images(&self, ipcache: &IpCache) -> Result<[MapImage; 2], CodegenError> {
        let images = ipcache_images(ipcache);
        if let Some(o) = overflow(&self.sizes, images.iter().map(|i| (i.kind, i.len()))) {
            return Err(CodegenError::IpcacheFull {
                needed: o.needed,
                max: o.max,
            });
        }
        Ok(images)
    }

    /// The endpoint's artefacts; refuses when its maps would overflow.
    pub fn endpoint(
        &mut self,
        ep: &EndpointConfig,
        policy: &EndpointPolicy,
        set: Option<&PolicySet>,
    ) -> Result<EndpointArtefacts, CodegenError> {
        let entries = EndpointEntries::build(policy);
        check_sizes(&self.sizes, ep, policy, &entries)?;
        let (features, lines) = Features::derive(ep, policy, set);
        let header = headers::render_endpoint(ep, &lines, &self.sizes);
        let t = self.template(&features)?;
        let object = t.sites.instantiate(&t.bytes, &Globals::of(ep));
        Ok(EndpointArtefacts {
            config: ep.clone(),
            features,
            header,
            object,
            template: t.path.clone(),
            policy_capacity: self.sizes.policy_capacity(entries.hash_len()),
            entries,
        })
    }
}

/// A map whose entries would not fit.
#[derive(Clone, Copy, Debug)]
pub struct Overflow {
    /// The image kind whose map overflows.
    pub kind: ImageKind,
    pub map: &'static MapDef,
    pub needed: usize,
    pub max: u32,
}

/// The one capacity check (of `compile`, the node artefacts and the agent): the first map in
/// `counts` (entries per map image) that would need more entries than its size in `sizes`.
pub fn overflow(
    sizes: &MapSizes,
    counts: impl IntoIterator<Item = (ImageKind, usize)>,
) -> Option<Overflow> {
    counts.into_iter().find_map(|(kind, needed)| {
        let map = kind.map();
        let max = map.max_entries.of(sizes);
        (needed > max as usize).then_some(Overflow {
            kind,
            map,
            needed,
            max,
        })
    })
}

/// Refuses an endpoint whose maps would overflow, saying why.
pub fn check_sizes(
    sizes: &MapSizes,
    ep: &EndpointConfig,
    policy: &EndpointPolicy,
    entries: &EndpointEntries,
) -> Result<(), CodegenError> {
    let Some(o) = overflow(sizes, entries.counts()) else {
        return Ok(());
    };
    if o.kind == ImageKind::Addr {
        return Err(CodegenError::AddrMapFull {
            endpoint: ep.name.clone(),
            needed: o.needed,
            max: o.max,
        });
    }
    let per_dir = |d: Direction| {
        let keys: Vec<_> = policy.entries.keys().filter(|k| k.direction == d).collect();
        let ids: std::collections::BTreeSet<_> = keys.iter().map(|k| k.identity).collect();
        format!(
            "{} {} map-state entries over {} peer identities",
            keys.len(),
            d.name(),
            ids.len()
        )
    };
    let why = format!(
        "{}, {}, {} address entries; each identity also needs its every-protocol key (lookup marker), port ranges become prefix blocks (in their own map of the same size) and ANY becomes TCP, UDP and SCTP",
        per_dir(Direction::Ingress),
        per_dir(Direction::Egress),
        policy.addr_entries.len()
    );
    Err(CodegenError::PolicyMapFull {
        endpoint: ep.name.clone(),
        needed: entries.hash_len().max(entries.range_len()),
        max: o.max,
        why,
    })
}
