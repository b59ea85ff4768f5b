//! Datapath code generation: the shared key/value layouts and the map table, per-endpoint headers (askama), map
//! images, the clang driver and templated objects. Entry point: [`generate::Generator`].

pub mod clang;
pub mod ctsize;
pub mod endpoint;
pub mod entries;
pub mod generate;
pub mod headers;
pub mod image;
pub mod ipcache;
pub mod layout;
pub mod maps;
pub mod output;
pub mod reasons;
pub mod rules;
pub mod template;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use endpoint::{EndpointConfig, Features, MapSizes};
pub use generate::{CodegenError, EndpointArtefacts, Generator};
