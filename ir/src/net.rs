//! CIDRs and CIDR sets (`toCIDR`, `toCIDRSet`, NetworkPolicy `ipBlock`).

pub use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A prefix minus excepted sub-prefixes. `except` entries are inside `cidr` (the front end
/// rejects others) and sorted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CidrSet {
    pub cidr: IpNet,
    pub except: Vec<IpNet>,
}

impl CidrSet {
    pub fn new(cidr: IpNet, mut except: Vec<IpNet>) -> Self {
        except.sort();
        except.dedup();
        CidrSet {
            cidr: cidr.trunc(),
            except,
        }
    }
    pub fn contains(&self, addr: std::net::IpAddr) -> bool {
        self.cidr.contains(&addr) && !self.except.iter().any(|e| e.contains(&addr))
    }
}

impl fmt::Display for CidrSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.cidr)?;
        for e in &self.except {
            write!(f, " except {e}")?;
        }
        Ok(())
    }
}
