//! CIDR blocks for the optional SSRF guard (`hooks.denyNetworks`, `hooks.allowNetworks`).
//!
//! This module owns parsing blocks and asking whether an address is in one, and the list form
//! the configuration holds. It does not decide what a list means (deny or allow): the delivery
//! client's guard does.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An address block such as `10.0.0.0/8` or `::1/128`; a bare address is a block of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, addr: IpAddr) -> bool {
        // An IPv4 address may reach us as IPv4-mapped IPv6.
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
            v4 => v4,
        };
        match (self.network, addr) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = (prefix / 8) as usize;
    if a[..full] != b[..full] {
        return false;
    }
    let rest = prefix % 8;
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    (a[full] & mask) == (b[full] & mask)
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let network: IpAddr = addr
            .parse()
            .map_err(|_| format!("{s:?} is not an address or CIDR block"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has an invalid prefix length"))?,
            None => max,
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A list of blocks as configured: each entry parsed once, at load, and written back as it was
/// written (`" ::1"` stays `" ::1"`, not `"::1/128"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct CidrList {
    blocks: Vec<Cidr>,
    written: Vec<String>,
}

impl CidrList {
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Whether any block of the list contains `addr`.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.blocks.iter().any(|c| c.contains(addr))
    }
}

impl TryFrom<Vec<String>> for CidrList {
    type Error = String;

    /// Fails on the first entry that is not a block, saying which.
    fn try_from(written: Vec<String>) -> Result<Self, Self::Error> {
        let blocks = written
            .iter()
            .map(|item| item.parse())
            .collect::<Result<_, _>>()?;
        Ok(CidrList { blocks, written })
    }
}

impl From<CidrList> for Vec<String> {
    fn from(list: CidrList) -> Self {
        list.written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_contain_their_addresses() {
        let private: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(private.contains("10.1.2.3".parse().unwrap()));
        assert!(!private.contains("11.0.0.1".parse().unwrap()));
        assert!(private.contains("::ffff:10.9.9.9".parse().unwrap()));
        let odd: Cidr = "192.168.0.0/23".parse().unwrap();
        assert!(odd.contains("192.168.1.200".parse().unwrap()));
        assert!(!odd.contains("192.168.2.1".parse().unwrap()));
        let one: Cidr = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
    }

    #[test]
    fn lists_read_once_and_write_back_as_written() {
        let written = serde_json::json!(["10.0.0.0/8", " ::1"]);
        let list: CidrList = serde_json::from_value(written.clone()).unwrap();
        assert!(list.contains("10.2.3.4".parse().unwrap()));
        assert!(list.contains("::1".parse().unwrap()));
        assert!(!list.contains("11.0.0.1".parse().unwrap()));
        assert_eq!(serde_json::to_value(&list).unwrap(), written);
        let err = serde_json::from_value::<CidrList>(serde_json::json!(["10.0.0.0/8", "nope"]))
            .unwrap_err();
        assert_eq!(err.to_string(), r#""nope" is not an address or CIDR block"#);
        assert!(CidrList::default().is_empty());
    }
}
