//! Front ends, lowering, lint, identity resolution, policy computation and trace.

pub mod diag;
pub mod front;
pub mod labelsel;
