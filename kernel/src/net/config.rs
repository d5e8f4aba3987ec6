//! Static network configuration from the kernel command line:
//! `ip=ADDR/PREFIX` (IPv4 or IPv6, repeatable; `ip=dhcp` asks for DHCPv4),
//! `gw=ADDR` (the default router, one per family) and `dns=ADDR[,ADDR...]`
//! (for `/etc/resolv.conf`). Parsed before any NIC exists; the NIC's
//! interface applies it when it comes up (DHCP needs the NIC).
//!
//! Words after ` -- ` are the application's and are not looked at; keys
//! other than these three are left for the kernel's option parser.

use alloc::vec::Vec;
use core::fmt;
use core::str::FromStr;
use smoltcp::wire::{IpAddress, IpCidr};

/// Most addresses of each kind kept.
pub const MAX_ADDRS: usize = 4;

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NetConfig {
    /// `ip=dhcp`.
    pub dhcp: bool,
    pub addrs: Vec<IpCidr>,
    pub gateways: Vec<IpAddress>,
    pub dns: Vec<IpAddress>,
}

/// A malformed option: which key and value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError<'a> {
    BadAddress {
        key: &'a str,
        value: &'a str,
    },
    /// `ip=` without `/PREFIX`, or a prefix too long for the family.
    BadPrefix {
        value: &'a str,
    },
    /// Two gateways of one family.
    DuplicateGateway {
        value: &'a str,
    },
    TooMany {
        key: &'a str,
    },
}

impl fmt::Display for ConfigError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::BadAddress { key, value } => write!(f, "bad address {key}={value}"),
            ConfigError::BadPrefix { value } => write!(f, "ip={value} needs ADDR/PREFIX"),
            ConfigError::DuplicateGateway { value } => write!(f, "second gateway gw={value}"),
            ConfigError::TooMany { key } => write!(f, "more than {MAX_ADDRS} {key}= values"),
        }
    }
}

fn addr<'a>(key: &'a str, value: &'a str) -> Result<IpAddress, ConfigError<'a>> {
    core::net::IpAddr::from_str(value)
        .map(IpAddress::from)
        .map_err(|_| ConfigError::BadAddress { key, value })
}

fn push<'a, T>(v: &mut Vec<T>, x: T, key: &'a str) -> Result<(), ConfigError<'a>> {
    if v.len() >= MAX_ADDRS {
        return Err(ConfigError::TooMany { key });
    }
    v.push(x);
    Ok(())
}

impl NetConfig {
    /// Reads the `ip=`, `gw=` and `dns=` options of `cmdline`.
    pub fn parse(cmdline: &str) -> Result<NetConfig, ConfigError<'_>> {
        let mut c = NetConfig::default();
        for word in cmdline.split_ascii_whitespace() {
            if word == "--" {
                break;
            }
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            let value = value.trim_matches('"');
            match key {
                "ip" if value == "dhcp" => c.dhcp = true,
                "ip" => {
                    let (a, p) = value
                        .split_once('/')
                        .ok_or(ConfigError::BadPrefix { value })?;
                    let ip = addr(key, a)?;
                    let max = match ip {
                        IpAddress::Ipv4(_) => 32,
                        IpAddress::Ipv6(_) => 128,
                    };
                    let prefix = p
                        .parse::<u8>()
                        .ok()
                        .filter(|&p| p <= max)
                        .ok_or(ConfigError::BadPrefix { value })?;
                    push(&mut c.addrs, IpCidr::new(ip, prefix), key)?;
                }
                "gw" => {
                    let ip = addr(key, value)?;
                    let same = |g: &IpAddress| {
                        matches!(
                            (g, &ip),
                            (IpAddress::Ipv4(_), IpAddress::Ipv4(_))
                                | (IpAddress::Ipv6(_), IpAddress::Ipv6(_))
                        )
                    };
                    if c.gateways.iter().any(same) {
                        return Err(ConfigError::DuplicateGateway { value });
                    }
                    c.gateways.push(ip);
                }
                "dns" => {
                    for a in value.split(',').filter(|a| !a.is_empty()) {
                        push(&mut c.dns, addr(key, a)?, key)?;
                    }
                }
                _ => {}
            }
        }
        Ok(c)
    }

    /// The `/etc/resolv.conf` these servers make (empty without any).
    pub fn resolv_conf(&self) -> alloc::string::String {
        use core::fmt::Write;
        let mut s = alloc::string::String::new();
        for d in &self.dns {
            let _ = writeln!(s, "nameserver {d}");
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_v4_and_v6_with_gateway_and_dns() {
        let c = NetConfig::parse(
            "loglevel=info ip=10.0.2.15/24 ip=fd00::2/64 gw=10.0.2.2 dns=10.0.2.3,1.1.1.1 -- app ip=1.2.3.4/8",
        )
        .unwrap();
        assert!(!c.dhcp);
        assert_eq!(
            c.addrs,
            [
                IpCidr::new(IpAddress::v4(10, 0, 2, 15), 24),
                IpCidr::new(IpAddress::v6(0xfd00, 0, 0, 0, 0, 0, 0, 2), 64)
            ]
        );
        assert_eq!(c.gateways, [IpAddress::v4(10, 0, 2, 2)]);
        assert_eq!(c.dns.len(), 2);
        assert_eq!(c.resolv_conf(), "nameserver 10.0.2.3\nnameserver 1.1.1.1\n");
    }

    #[test]
    fn dhcp_and_errors() {
        assert!(NetConfig::parse("ip=dhcp").unwrap().dhcp);
        assert_eq!(NetConfig::parse("").unwrap(), NetConfig::default());
        assert_eq!(
            NetConfig::parse("ip=10.0.0.1"),
            Err(ConfigError::BadPrefix { value: "10.0.0.1" })
        );
        assert_eq!(
            NetConfig::parse("ip=10.0.0.1/33"),
            Err(ConfigError::BadPrefix {
                value: "10.0.0.1/33"
            })
        );
        assert_eq!(
            NetConfig::parse("gw=10.0.0.256"),
            Err(ConfigError::BadAddress {
                key: "gw",
                value: "10.0.0.256"
            })
        );
        assert_eq!(
            NetConfig::parse("gw=10.0.0.1 gw=10.0.0.2"),
            Err(ConfigError::DuplicateGateway { value: "10.0.0.2" })
        );
        assert!(NetConfig::parse("gw=10.0.0.1 gw=fe80::1").is_ok());
        assert_eq!(
            NetConfig::parse("dns=1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4,5.5.5.5"),
            Err(ConfigError::TooMany { key: "dns" })
        );
    }
}
