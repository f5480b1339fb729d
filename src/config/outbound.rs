//! `outbound:`: where deliveries may go. By default fanout refuses to deliver to any address
//! that is not public (loopback, private, link-local, multicast, unspecified, cloud metadata), so
//! that a routes file, or a hostile DNS answer, cannot turn it against the network it runs in;
//! `allow_networks` lists the exceptions.

use std::net::IpAddr;

use ipnet::IpNet;

use super::compile::Errors;
use super::raw::RawOutbound;

/// Validated outbound rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outbound {
    /// Non-public networks deliveries may reach all the same.
    pub allow_networks: Vec<IpNet>,
    /// Only `https://` endpoints.
    pub https_only: bool,
}

/// Why an address is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Loopback,
    Private,
    LinkLocal,
    Multicast,
    Unspecified,
    CloudMetadata,
    /// Reserved, documentation, benchmarking, shared (CGNAT) or broadcast ranges.
    Reserved,
}

impl Refusal {
    pub fn describe(self) -> &'static str {
        match self {
            Refusal::Loopback => "a loopback address",
            Refusal::Private => "a private address",
            Refusal::LinkLocal => "a link-local address",
            Refusal::Multicast => "a multicast address",
            Refusal::Unspecified => "the unspecified address",
            Refusal::CloudMetadata => "a cloud metadata address",
            Refusal::Reserved => "a reserved address",
        }
    }
}

impl Outbound {
    /// Whether a delivery may connect to `address`: public addresses always, others only when
    /// an allowed network holds them.
    ///
    /// # Errors
    /// The kind of address refused.
    pub fn check(&self, address: IpAddr) -> Result<(), Refusal> {
        match classify(address) {
            None => Ok(()),
            // A metadata endpoint hands out cloud credentials: a network that merely contains it
            // (fd00::/8, 169.254.0.0/16, 100.64.0.0/10) does not allow it; only the address
            // itself, listed alone, does.
            Some(Refusal::CloudMetadata)
                if self.allow_networks.iter().any(|net| {
                    net.max_prefix_len() == net.prefix_len() && net.addr() == address
                }) =>
            {
                Ok(())
            }
            Some(Refusal::CloudMetadata) => Err(Refusal::CloudMetadata),
            Some(_) if self.allow_networks.iter().any(|net| net.contains(&address)) => Ok(()),
            Some(refusal) => Err(refusal),
        }
    }
}

/// What a non-public address is; `None` for a public one. IPv4 addresses carried in IPv6 (mapped,
/// NAT64, 6to4) are judged as the IPv4 address they carry.
pub fn classify(address: IpAddr) -> Option<Refusal> {
    match address {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            if v4.is_unspecified() || a == 0 {
                Some(Refusal::Unspecified)
            } else if v4.is_loopback() {
                Some(Refusal::Loopback)
            } else if v4.octets() == [169, 254, 169, 254] || v4.octets() == [100, 100, 100, 200] {
                Some(Refusal::CloudMetadata)
            } else if v4.is_link_local() {
                Some(Refusal::LinkLocal)
            } else if v4.is_private() {
                Some(Refusal::Private)
            } else if v4.is_multicast() {
                Some(Refusal::Multicast)
            } else if (a == 100 && (64..128).contains(&b))      // shared address space (CGNAT)
                || (a == 192 && b == 0 && c == 0)                // IETF protocol assignments
                || (a == 192 && b == 0 && c == 2)                // documentation
                || (a == 198 && (b == 18 || b == 19))            // benchmarking
                || (a == 198 && b == 51 && c == 100)             // documentation
                || (a == 203 && b == 0 && c == 113)              // documentation
                || a >= 240
            {
                // The last line: reserved (240/4) and broadcast.
                Some(Refusal::Reserved)
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            if let Some(v4) = v6.to_ipv4_mapped() {
                return classify(IpAddr::V4(v4));
            }
            // NAT64 (64:ff9b::/96, and the local-use 64:ff9b:1::/48), SIIT (::ffff:0:0/96) and
            // 6to4 (2002::/16) carry an IPv4 address.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
                || segments[..3] == [0x64, 0xff9b, 1]
                || segments[..6] == [0, 0, 0, 0, 0xffff, 0]
            {
                let octets = v6.octets();
                return classify(IpAddr::V4(
                    [octets[12], octets[13], octets[14], octets[15]].into(),
                ));
            }
            if segments[0] == 0x2002 {
                let octets = v6.octets();
                return classify(IpAddr::V4(
                    [octets[2], octets[3], octets[4], octets[5]].into(),
                ));
            }
            if v6.is_unspecified() {
                Some(Refusal::Unspecified)
            } else if v6.is_loopback() {
                Some(Refusal::Loopback)
            } else if segments[..4] == [0xfd00, 0x0ec2, 0, 0] {
                // AWS's IPv6 instance metadata (fd00:ec2::254), inside the unique local range.
                Some(Refusal::CloudMetadata)
            } else if segments[0] & 0xfe00 == 0xfc00 || segments[0] & 0xffc0 == 0xfec0 {
                // Unique local, and the deprecated site-local fec0::/10.
                Some(Refusal::Private)
            } else if segments[0] & 0xffc0 == 0xfe80 {
                Some(Refusal::LinkLocal)
            } else if segments[0] & 0xff00 == 0xff00 {
                Some(Refusal::Multicast)
            } else if segments[..2] == [0x2001, 0x0db8]
                || segments[..2] == [0x2001, 0]
                || segments[..3] == [0x2001, 2, 0]
                || segments[..4] == [0x100, 0, 0, 0]
                || segments[..6] == [0, 0, 0, 0, 0, 0]
            {
                // Documentation (2001:db8::/32), Teredo (2001::/32, which tunnels to IPv4),
                // benchmarking (2001:2::/48), discard (100::/64) and IPv4-compatible addresses.
                Some(Refusal::Reserved)
            } else {
                None
            }
        }
    }
}

pub(super) fn compile(raw: RawOutbound, errors: &mut Errors) -> Outbound {
    let allow_networks = raw
        .allow_networks
        .iter()
        .enumerate()
        .filter_map(|(index, text)| {
            let parsed = text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from));
            parsed
                .map_err(|_| {
                    errors.push((
                        format!("outbound.allow_networks[{index}]"),
                        format!("{text:?} is not a network like 10.0.0.0/8, fd12:3456::/48 or 127.0.0.1"),
                    ));
                })
                .ok()
        })
        .collect();
    Outbound {
        allow_networks,
        https_only: raw.https_only.unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(address: &str, expected: Option<Refusal>) {
        assert_eq!(classify(address.parse().unwrap()), expected, "{address}");
    }

    #[test]
    fn classifies_addresses() {
        use Refusal::*;
        for (address, expected) in [
            ("93.184.216.34", None),
            ("8.8.8.8", None),
            ("2606:4700::1111", None),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.0.9", Some(Loopback)),
            ("::1", Some(Loopback)),
            ("10.1.2.3", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("172.32.0.1", None),
            ("192.168.1.1", Some(Private)),
            ("fd12:3456::1", Some(Private)),
            ("169.254.169.254", Some(CloudMetadata)),
            ("100.100.100.200", Some(CloudMetadata)),
            ("fd00:ec2::254", Some(CloudMetadata)),
            ("169.254.1.1", Some(LinkLocal)),
            ("fe80::1", Some(LinkLocal)),
            ("224.0.0.1", Some(Multicast)),
            ("ff02::1", Some(Multicast)),
            ("0.0.0.0", Some(Unspecified)),
            ("0.1.2.3", Some(Unspecified)),
            ("::", Some(Unspecified)),
            ("100.64.0.1", Some(Reserved)),
            ("255.255.255.255", Some(Reserved)),
            ("198.18.0.1", Some(Reserved)),
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:169.254.169.254", Some(CloudMetadata)),
            ("::ffff:8.8.8.8", None),
            ("64:ff9b::a00:1", Some(Private)),
            ("2002:7f00:1::", Some(Loopback)),
            ("64:ff9b:1::a00:1", Some(Private)),
            ("::ffff:0:a00:1", Some(Private)),
            ("2001:0:4136:e378::1", Some(Reserved)),
            ("fec0::1", Some(Private)),
            ("100::1", Some(Reserved)),
            ("2001:2::1", Some(Reserved)),
        ] {
            check(address, expected);
        }
    }

    #[test]
    fn allowed_networks_are_exceptions() {
        let outbound = Outbound {
            allow_networks: vec![
                "127.0.0.0/8".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
            ],
            https_only: false,
        };
        assert_eq!(outbound.check("127.0.0.1".parse().unwrap()), Ok(()));
        assert_eq!(outbound.check("10.9.9.9".parse().unwrap()), Ok(()));
        assert_eq!(outbound.check("8.8.8.8".parse().unwrap()), Ok(()));
        assert_eq!(
            outbound.check("192.168.0.1".parse().unwrap()),
            Err(Refusal::Private)
        );
        assert_eq!(
            outbound.check("::1".parse().unwrap()),
            Err(Refusal::Loopback)
        );
    }

    #[test]
    fn metadata_needs_its_own_entry() {
        let wide = Outbound {
            allow_networks: vec![
                "169.254.0.0/16".parse().unwrap(),
                "fd00::/8".parse().unwrap(),
                "100.64.0.0/10".parse().unwrap(),
            ],
            https_only: false,
        };
        for address in ["169.254.169.254", "fd00:ec2::254", "100.100.100.200"] {
            assert_eq!(
                wide.check(address.parse().unwrap()),
                Err(Refusal::CloudMetadata),
                "{address}"
            );
        }
        assert_eq!(wide.check("169.254.1.1".parse().unwrap()), Ok(()));
        let exact = Outbound {
            allow_networks: vec!["169.254.169.254/32".parse().unwrap()],
            https_only: false,
        };
        assert_eq!(exact.check("169.254.169.254".parse().unwrap()), Ok(()));
    }
}
