//! Who is signing in, as far as the limiter can tell: the client's address (behind a trusted
//! proxy, the address the proxy saw) and whether this browser signed in as that name before.
//!
//! A per-name limit alone lets anyone who knows a name lock its owner out (five wrong
//! passwords, fifteen minutes). So a successful sign-in leaves a **device cookie**: the name,
//! sealed with the server's secret key (`FLOWSCOPE_SECRET_KEY`, the vault's), sent only to
//! `/auth`. A sign-in that shows a valid one for the name it tries is limited per device, not
//! per name: strangers' failures do not lock the owner's browser out, and a stolen cookie
//! still gets only five guesses in the window (the OWASP "device cookie" scheme).

use std::net::IpAddr;
use std::time::Duration;

use axum::http::HeaderMap;
use engine::store::now_ms;
use engine::vault::{KeySource, Vault};

pub const DEVICE_COOKIE: &str = "flowscope_device";
/// How long a browser stays trusted for the name it signed in as (renewed by each sign-in).
const DEVICE_TTL: Duration = Duration::from_secs(180 * 24 * 3600);
/// The seal's associated name: a sealed secret cannot pass for a device cookie.
const SEAL_NAME: &str = "flowscope:device";

/// Seals and opens device cookies; without a key (tests, benchmarks) there are none.
pub struct Devices {
    vault: Option<Vault>,
}

impl Devices {
    pub fn new(key: Option<KeySource>) -> Devices {
        Devices {
            vault: key.map(Vault::new),
        }
    }

    /// A cookie value trusting this browser for `name`, or `None` (no key, or it cannot be
    /// read or made: the sign-in goes on without one).
    pub fn issue(&self, name: &str) -> Option<String> {
        let vault = self.vault.as_ref()?;
        let plain = format!("{}\n{}", name.to_lowercase(), now_ms());
        match vault.seal(SEAL_NAME, &plain) {
            Ok((nonce, sealed)) => Some(format!("{nonce}.{sealed}")),
            Err(e) => {
                tracing::warn!(error = %e, "cannot seal a device cookie; this browser is not remembered");
                None
            }
        }
    }

    /// The device's id (its nonce) when `cookie` is valid, unexpired, and for `name`.
    pub fn trusted<'a>(&self, cookie: &'a str, name: &str) -> Option<&'a str> {
        let vault = self.vault.as_ref()?;
        // A nonce and a short sealed name: anything longer is not ours.
        if cookie.len() > 1024 {
            return None;
        }
        let (nonce, sealed) = cookie.split_once('.')?;
        let plain = vault.open(SEAL_NAME, nonce, sealed).ok()?;
        let (sealed_name, issued) = plain.split_once('\n')?;
        let issued: i64 = issued.parse().ok()?;
        let fresh = now_ms() - issued < DEVICE_TTL.as_millis() as i64;
        (fresh && sealed_name == name.to_lowercase()).then_some(nonce)
    }

    /// The `Set-Cookie` value for a cookie made by [`Devices::issue`].
    pub fn set_cookie(value: &str, tls: bool) -> String {
        format!(
            "{DEVICE_COOKIE}={value}; Path=/auth; HttpOnly; SameSite=Strict; Max-Age={}{}",
            DEVICE_TTL.as_secs(),
            if tls { "; Secure" } else { "" }
        )
    }
}

/// A trusted proxy: an address or a network (`10.0.0.0/8`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proxy {
    net: IpAddr,
    prefix: u8,
}

impl Proxy {
    /// `10.1.2.3` or `10.0.0.0/8`; `None` when it is neither.
    pub fn parse(text: &str) -> Option<Proxy> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (text.trim(), None),
        };
        let net: IpAddr = addr.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Proxy { net, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        match (self.net.to_canonical(), ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then the rightmost
/// `X-Forwarded-For` address that no trusted proxy added (what the first trusted proxy saw).
/// Entries left of it are the client's own claims and are never believed. An unreadable
/// entry stops the walk at the last proxy.
pub fn client_addr(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[Proxy]) -> Option<IpAddr> {
    let mut addr = peer?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|p| p.contains(ip));
    if !is_trusted(addr) {
        return Some(addr);
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                addr = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    Some(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().unwrap());
        h
    }

    #[test]
    fn the_client_is_the_address_the_first_trusted_proxy_saw() {
        let trusted = [
            Proxy::parse("10.0.0.0/8").unwrap(),
            Proxy::parse("127.0.0.1").unwrap(),
        ];
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let proxy = ip("10.1.2.3");
        // A stranger's header is ignored when the peer is not a proxy.
        assert_eq!(
            client_addr(ip("198.51.100.9"), &xff("1.2.3.4"), &trusted),
            ip("198.51.100.9")
        );
        assert_eq!(
            client_addr(proxy, &xff("203.0.113.7"), &trusted),
            ip("203.0.113.7")
        );
        // What the client claimed left of the real address is not believed; proxies are skipped.
        assert_eq!(
            client_addr(proxy, &xff("1.1.1.1, 203.0.113.7, 10.9.9.9"), &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_addr(proxy, &xff("junk, 10.9.9.9"), &trusted),
            ip("10.9.9.9")
        );
        assert_eq!(client_addr(proxy, &HeaderMap::new(), &trusted), proxy);
        // IPv4-mapped IPv6 peers match IPv4 networks.
        assert_eq!(
            client_addr(ip("::ffff:127.0.0.1"), &xff("203.0.113.8"), &trusted),
            ip("203.0.113.8")
        );
        assert!(Proxy::parse("10.0.0.0/33").is_none());
        assert!(Proxy::parse("proxy.local").is_none());
        assert!(Proxy::parse("::/0")
            .unwrap()
            .contains("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn a_device_cookie_trusts_one_browser_for_one_name() {
        let key = KeySource::Hex("11".repeat(32));
        let devices = Devices::new(Some(key));
        let cookie = devices.issue("Root").expect("sealed");
        let id = devices.trusted(&cookie, "root").expect("trusted");
        assert!(cookie.starts_with(id));
        assert!(devices.trusted(&cookie, "alice").is_none(), "another name");
        let other = Devices::new(Some(KeySource::Hex("22".repeat(32))));
        assert!(other.trusted(&cookie, "root").is_none(), "another key");
        let mut forged = cookie.clone();
        forged.pop();
        forged.push(if cookie.ends_with('0') { '1' } else { '0' });
        assert!(devices.trusted(&forged, "root").is_none());
        assert!(Devices::new(None).issue("root").is_none());
    }
}
