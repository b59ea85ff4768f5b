//! Datapath code generation: the shared key/value layouts, per-endpoint headers (askama), map
//! images, the clang driver and templated objects.

pub mod clang;
pub mod endpoint;
pub mod entries;
pub mod headers;
pub mod image;
pub mod layout;
pub mod reasons;
pub mod template;

pub use endpoint::{EndpointConfig, Features, MapSizes};
