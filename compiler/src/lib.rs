//! Front ends, lowering, lint, identity resolution, policy computation and trace.

pub mod diag;
pub mod labelsel;
pub mod lint;
pub mod render;
