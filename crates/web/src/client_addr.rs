//! Who a request came from. Behind a load balancer every request arrives
//! from the proxy's address, so the client's own address is taken from the
//! `Forwarded` (RFC 7239) or `X-Forwarded-For` header — but only when the
//! TCP peer is a proxy we were told to trust (`STAGEHAND_TRUSTED_PROXIES`).
//! Anyone else could write any address into those headers.
//!
//! Exactly one header is read, the one the proxy writes
//! (`STAGEHAND_FORWARDED_HEADER`: `X-Forwarded-For` unless set to
//! `forwarded`). A proxy passes the other one on as the client sent it, so
//! reading "whichever is present" would let the client choose.
//!
//! The headers list the hops in order, each proxy appending the address it
//! received the request from. Walking from the right, every address that is
//! itself a trusted proxy is skipped; the first one that is not is the
//! client. So a client cannot pick its own address by sending a forged
//! header: the forged entries sit to the left of the one our proxy wrote.
//!
//! The result is what login throttling keys on and what the audit log
//! records as "from where".

use crate::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// The client's address, as resolved for this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// Which forwarding header the trusted proxies write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …` (nginx's
    /// `$proxy_add_x_forwarded_for`, ingress-nginx, most balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client, for=proxy1`.
    Forwarded,
}

impl ForwardedHeader {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            other => Err(format!(
                "{other:?} is not x-forwarded-for or forwarded (the header your proxy writes)"
            )),
        }
    }
}

/// The proxies whose forwarding header is believed, and which header that
/// is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// Parses a comma- or space-separated list of CIDRs or single addresses
    /// (`10.0.0.0/8, 127.0.0.1, ::1`).
    pub fn parse(list: &str) -> Result<Self, String> {
        list.split([',', ' ', '\n', '\t'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{s:?} is not an address or a CIDR such as 10.0.0.0/8"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|nets| Self {
                nets,
                header: ForwardedHeader::default(),
            })
    }

    /// Reads `header` instead of `X-Forwarded-For`.
    pub fn reading(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`, given the request's headers.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_hops(headers, self.header);
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop {
                // An address we cannot read ("unknown", an obfuscated
                // name): the last proxy we trust is as far as we can see.
                None => break,
                Some(ip) => {
                    client = canonical(*ip);
                    if !self.trusts(client) {
                        break;
                    }
                }
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) as the IPv4 address they
/// are, so one CIDR list covers dual-stack listeners.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The hops `which` header lists, left to right (for `Forwarded`, its
/// `for=` parameters). Several header lines count as one list, in order; a
/// line that is not text is an unreadable hop.
fn forwarded_hops(headers: &HeaderMap, which: ForwardedHeader) -> Vec<Option<IpAddr>> {
    let lines = |name: header::HeaderName| {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or(","))
            .map(str::to_owned)
            .collect::<Vec<String>>()
    };
    if which == ForwardedHeader::Forwarded {
        return lines(header::FORWARDED)
            .iter()
            .flat_map(|line| line.split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| parse_node(v.trim().trim_matches('"')))
            })
            .collect();
    }
    lines(header::HeaderName::from_static("x-forwarded-for"))
        .iter()
        .flat_map(|line| line.split(','))
        .map(|s| parse_node(s.trim()))
        .collect()
}

/// The login throttle's key for a client: its address, or for IPv6 the
/// /64 it is in (one subscriber usually holds a whole /64, and could
/// otherwise take a fresh address for every attempt).
pub fn throttle_key(ip: &str) -> String {
    match ip.parse::<IpAddr>().map(canonical) {
        Ok(IpAddr::V6(v6)) => {
            let net = ipnet::Ipv6Net::new(v6, 64).map_or(v6, |n| n.trunc().addr());
            format!("{net}/64")
        }
        Ok(v4) => v4.to_string(),
        Err(_) => ip.to_owned(),
    }
}

/// One hop: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`,
/// `[2001:db8::1]:4711` or a bare IPv6 address.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    s.strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(ip, _)| ip.parse().ok())
}

/// Resolves the client's address once per request and keeps it in the
/// request's extensions for the throttle, the audit log and the logs.
pub(crate) async fn resolve(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if let Some(peer) = peer {
        let client = state.config.trusted_proxies.resolve(peer, req.headers());
        req.extensions_mut().insert(ClientAddr(client));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| panic!("{s}"))
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn proxies(list: &str) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=198.51.100.1"),
        ]);
        assert_eq!(
            TrustedProxies::default().resolve(ip("192.0.2.7"), &h),
            ip("192.0.2.7")
        );
        assert_eq!(
            proxies("10.0.0.0/8").resolve(ip("192.0.2.7"), &h),
            ip("192.0.2.7")
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            proxies("127.0.0.1").resolve(ip("127.0.0.1"), &h),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_forged_entry_left_of_the_proxys_own_is_ignored() {
        // The client sent "X-Forwarded-For: 1.2.3.4"; nginx appended the
        // address it saw.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9")]);
        assert_eq!(
            proxies("127.0.0.1").resolve(ip("127.0.0.1"), &h),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn a_chain_of_trusted_proxies_is_walked_through() {
        let h = headers(&[
            ("x-forwarded-for", "1.2.3.4, 203.0.113.9"),
            ("x-forwarded-for", "10.1.2.3"),
        ]);
        assert_eq!(
            proxies("10.0.0.0/8, 127.0.0.1").resolve(ip("127.0.0.1"), &h),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn only_the_configured_header_is_read() {
        // nginx writes X-Forwarded-For and passes the client's own
        // Forwarded on untouched: that one must not count.
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=198.51.100.66"),
        ]);
        assert_eq!(
            proxies("127.0.0.1").resolve(ip("127.0.0.1"), &h),
            ip("203.0.113.9")
        );
        let forwarded = proxies("127.0.0.1").reading(ForwardedHeader::Forwarded);
        assert_eq!(forwarded.resolve(ip("127.0.0.1"), &h), ip("198.51.100.66"));
        // Reading Forwarded, a forged X-Forwarded-For does not count.
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(forwarded.resolve(ip("127.0.0.1"), &h), ip("127.0.0.1"));
    }

    #[test]
    fn forwarded_is_parsed() {
        let h = headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=http;by=203.0.113.43, for=\"[2001:db8:cafe::17]:4711\"",
        )]);
        let forwarded = |list| proxies(list).reading(ForwardedHeader::Forwarded);
        assert_eq!(
            forwarded("127.0.0.1").resolve(ip("127.0.0.1"), &h),
            ip("2001:db8:cafe::17")
        );
        let h = headers(&[("forwarded", "for=\"198.51.100.17:8080\"")]);
        assert_eq!(forwarded("::1").resolve(ip("::1"), &h), ip("198.51.100.17"));
        assert_eq!(
            ForwardedHeader::parse("Forwarded"),
            Ok(ForwardedHeader::Forwarded)
        );
        assert!(ForwardedHeader::parse("x-real-ip").is_err());
    }

    #[test]
    fn a_mapped_address_in_the_header_is_its_ipv4_address() {
        let h = headers(&[("x-forwarded-for", "[::ffff:203.0.113.9]")]);
        assert_eq!(
            proxies("127.0.0.1").resolve(ip("127.0.0.1"), &h),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn ipv6_clients_are_throttled_per_64() {
        assert_eq!(throttle_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(
            throttle_key("2001:db8:1:2:bbbb::9"),
            throttle_key("2001:db8:1:2:aaaa::1")
        );
        assert_ne!(
            throttle_key("2001:db8:1:3::1"),
            throttle_key("2001:db8:1:2::1")
        );
        assert_eq!(throttle_key("203.0.113.9"), "203.0.113.9");
        assert_eq!(throttle_key("::ffff:203.0.113.9"), "203.0.113.9");
    }

    #[test]
    fn an_unreadable_hop_stops_at_the_last_trusted_proxy() {
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(
            proxies("127.0.0.1")
                .reading(ForwardedHeader::Forwarded)
                .resolve(ip("127.0.0.1"), &h),
            ip("127.0.0.1")
        );
        let h = headers(&[("x-forwarded-for", "203.0.113.9, garbage")]);
        assert_eq!(
            proxies("127.0.0.1").resolve(ip("127.0.0.1"), &h),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn no_header_from_a_proxy_is_the_proxy() {
        assert_eq!(
            proxies("127.0.0.1").resolve(ip("127.0.0.1"), &HeaderMap::new()),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn mapped_ipv4_matches_ipv4_cidrs() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            proxies("127.0.0.0/8").resolve(ip("::ffff:127.0.0.1"), &h),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn the_list_parses_cidrs_and_addresses_and_refuses_names() {
        assert_eq!(proxies(" 10.0.0.0/8 ,127.0.0.1 ::1 ").nets.len(), 3);
        assert!(TrustedProxies::parse("").is_ok_and(|p| p.is_empty()));
        let e = TrustedProxies::parse("10.0.0.0/8, proxy.local").unwrap_err();
        assert!(e.contains("proxy.local"), "{e}");
    }
}
