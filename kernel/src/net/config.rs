//! Static network configuration from the kernel command line:
//! `ip=ADDR/PREFIX` (IPv4 or IPv6, repeatable; `ip=dhcp` asks for DHCPv4,
//! the default when no IPv4 address is given; `ip=off`/`ip=none`: no
//! IPv4 configuration), `ip6=ADDR/PREFIX` (an IPv6 address),
//! `gw=ADDR` (the default router, one per family) and `dns=ADDR[,ADDR...]`
//! (for `/etc/resolv.conf`). Parsed before any NIC exists; the NIC's
//! interface applies it when it comes up (`net::nic`).
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
    /// `ip=off` or `ip=none`.
    pub off: bool,
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
                "ip" if value == "off" || value == "none" => c.off = true,
                "ip" | "ip6" => {
                    let (a, p) = value
                        .split_once('/')
                        .ok_or(ConfigError::BadPrefix { value })?;
                    let ip = addr(key, a)?;
                    if key == "ip6" && !matches!(ip, IpAddress::Ipv6(_)) {
                        return Err(ConfigError::BadAddress { key, value });
                    }
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

    /// Whether IPv4 comes from DHCP: asked for, or no IPv4 address given
    /// and not turned off.
    pub fn wants_dhcp(&self) -> bool {
        self.dhcp || (!self.off && !self.addrs.iter().any(|a| matches!(a, IpCidr::Ipv4(_))))
    }

    /// The IPv4 default router given, if any.
    pub fn gateway_v4(&self) -> Option<smoltcp::wire::Ipv4Address> {
        self.gateways.iter().find_map(|g| match g {
            IpAddress::Ipv4(a) => Some(*a),
            _ => None,
        })
    }

    /// The IPv6 default router given, if any.
    pub fn gateway_v6(&self) -> Option<smoltcp::wire::Ipv6Address> {
        self.gateways.iter().find_map(|g| match g {
            IpAddress::Ipv6(a) => Some(*a),
            _ => None,
        })
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
    fn dhcp_by_default_off_and_ip6() {
        assert!(NetConfig::parse("").unwrap().wants_dhcp());
        assert!(NetConfig::parse("ip6=fd00::2/64").unwrap().wants_dhcp());
        let s = NetConfig::parse("ip=10.0.2.15/24 gw=10.0.2.2 gw=fe80::1").unwrap();
        assert!(!s.wants_dhcp());
        assert_eq!(
            s.gateway_v4(),
            Some(smoltcp::wire::Ipv4Address::new(10, 0, 2, 2))
        );
        assert_eq!(
            s.gateway_v6(),
            Some(smoltcp::wire::Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 1))
        );
        assert!(NetConfig::parse("ip=10.0.2.15/24 ip=dhcp")
            .unwrap()
            .wants_dhcp());
        for off in ["ip=off", "ip=none"] {
            let c = NetConfig::parse(off).unwrap();
            assert!(c.off && !c.wants_dhcp(), "{off}");
        }
        assert_eq!(
            NetConfig::parse("ip6=10.0.0.1/8"),
            Err(ConfigError::BadAddress {
                key: "ip6",
                value: "10.0.0.1/8"
            })
        );
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
