//! Renders the per-endpoint header (`ep_config.h`) and the node header (`node_config.h`) from the
//! askama templates in `bpf-templates/templates/`.

use crate::endpoint::{EndpointConfig, FeatureLine, Features, MapSizes};
use askama::Template;
use ir::NumericIdentity;

#[derive(Template)]
#[template(path = "ep_config.h", escape = "none")]
struct EpConfigTemplate<'a> {
    name: &'a str,
    template_mode: bool,
    ep_id: u32,
    identity: u32,
    identity_note: String,
    ipv4_be: String,
    ipv4_note: String,
    ipv6_be: String,
    ipv6_note: String,
    features: Vec<FeatureLine>,
    sizes: MapSizes,
}

#[derive(Template)]
#[template(path = "node_config.h", escape = "none")]
struct NodeConfigTemplate {
    endpoints: usize,
    ipcache_entries: usize,
    ipcache_map: u32,
    events_ringbuf: u32,
    reserved: Vec<(String, u32)>,
}

/// C comments must not end early.
fn comment_safe(s: &str) -> String {
    s.replace("*/", "* /")
}

/// The endpoint's own header: its constants, and every feature with the rules behind it.
pub fn render_endpoint(ep: &EndpointConfig, lines: &[FeatureLine], sizes: &MapSizes) -> String {
    let v4 = ep.ipv4.map(|a| u32::from_ne_bytes(a.octets()));
    let v6 = ep.ipv6.map(|a| a.octets());
    let identity_note = match ep.identity.reserved_name() {
        Some(n) => format!("reserved:{n}"),
        None => ep.identity.to_string(),
    };
    let lines: Vec<FeatureLine> = lines
        .iter()
        .map(|l| FeatureLine {
            why: comment_safe(&l.why),
            ..l.clone()
        })
        .collect();
    EpConfigTemplate {
        name: &comment_safe(&ep.name),
        template_mode: false,
        ep_id: ep.id,
        identity: ep.identity.0,
        identity_note,
        ipv4_be: format!("{:#010x}", v4.unwrap_or(0)),
        ipv4_note: ep
            .ipv4
            .map(|a| a.to_string())
            .unwrap_or_else(|| "none".into()),
        ipv6_be: ipv6_words(v6.unwrap_or([0; 16])),
        ipv6_note: ep
            .ipv6
            .map(|a| a.to_string())
            .unwrap_or_else(|| "none".into()),
        features: lines,
        sizes: *sizes,
    }
    .render()
    .expect("rendering into a String cannot fail")
}

/// The header a template object is compiled from: constants zero, configuration only. Its text
/// depends on `features` and `sizes` alone, so it is the template's cache key.
pub fn render_template(features: &Features, sizes: &MapSizes) -> String {
    EpConfigTemplate {
        name: "(template)",
        template_mode: true,
        ep_id: 0,
        identity: 0,
        identity_note: "(patched per endpoint)".into(),
        ipv4_be: "0x00000000".into(),
        ipv4_note: "(patched per endpoint)".into(),
        ipv6_be: ipv6_words([0; 16]),
        ipv6_note: "(patched per endpoint)".into(),
        features: features.template_lines(),
        sizes: *sizes,
    }
    .render()
    .expect("rendering into a String cannot fail")
}

/// The node header.
pub fn render_node(sizes: &MapSizes, endpoints: usize, ipcache_entries: usize) -> String {
    NodeConfigTemplate {
        endpoints,
        ipcache_entries,
        ipcache_map: sizes.ipcache_map,
        events_ringbuf: sizes.events_ringbuf,
        reserved: NumericIdentity::RESERVED
            .iter()
            .map(|(id, n)| (n.to_ascii_uppercase().replace('-', "_"), id.0))
            .collect(),
    }
    .render()
    .expect("rendering into a String cannot fail")
}

/// Four `u32` initialisers holding the address bytes in memory order.
fn ipv6_words(b: [u8; 16]) -> String {
    b.chunks(4)
        .map(|c| format!("{:#010x}", u32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
        .collect::<Vec<_>>()
        .join(", ")
}
