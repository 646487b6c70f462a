//! Where agents' requests may go: one [`Policy`] for every agent that makes them (`http`,
//! `notify`, `llm`, and any later one).
//!
//! - **Never to link-local addresses** (169.254.0.0/16, fe80::/10, and AWS's fd00:ec2::254).
//!   That is where cloud metadata services hand out credentials.
//! - **Not to loopback or private addresses** (127/8, 10/8, 172.16/12, 192.168/16,
//!   100.64/10, 0.0.0.0, ::1, fc00::/7, and their IPv4-mapped forms) unless the policy
//!   allows them (`FLOWSCOPE_EGRESS_ALLOW_PRIVATE`): otherwise a workflow could probe the
//!   hub's own network and its admin ports.
//! - **Optionally only to allowed hosts** (`FLOWSCOPE_HTTP_ALLOWED_HOSTS`), for every agent.
//!
//! Each holds at every step of a request: an address written in the URL is checked before
//! sending ([`Policy::check`]); a host name is resolved by [`GuardedResolver`], which drops
//! refused addresses (so a name cannot be pointed at them, DNS rebinding included); every
//! redirect target is checked by [`redirect_policy`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

/// Where agents may send requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Hosts agents may call (`*.example.com` for subdomains); none: any host.
    pub allowed_hosts: Option<Vec<String>>,
    /// Loopback and private addresses are allowed (tests, a hub on a laptop).
    pub allow_private: bool,
}

impl Policy {
    /// Why `ip` may not be contacted, if it may not.
    pub fn refuses_ip(&self, ip: IpAddr) -> Option<String> {
        if forbidden_ip(ip) {
            Some(format!(
                "{ip} is a link-local address (cloud metadata); requests there are refused"
            ))
        } else if private_ip(ip) && !self.allow_private {
            Some(format!(
                "{ip} is a loopback or private address; requests there are refused \
                 (FLOWSCOPE_EGRESS_ALLOW_PRIVATE=true allows them)"
            ))
        } else {
            None
        }
    }

    /// Why `url` may not be requested, if it may not.
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{url}: only http and https URLs are requested"));
        }
        // The URL parser has normalised the host: `http://2852039166/` reads 169.254.169.254.
        let host = url
            .host_str()
            .ok_or_else(|| format!("{url} has no host"))?
            .to_string();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            if let Some(why) = self.refuses_ip(ip) {
                return Err(why);
            }
        } else if !self.allow_private
            && (bare.eq_ignore_ascii_case("localhost")
                || bare.to_ascii_lowercase().ends_with(".localhost"))
        {
            return Err(format!(
                "{host} is this machine; requests there are refused (FLOWSCOPE_EGRESS_ALLOW_PRIVATE=true allows them)"
            ));
        }
        match &self.allowed_hosts {
            Some(list) if !host_allowed(&host, list) => Err(format!(
                "{host} is not among the allowed hosts (FLOWSCOPE_HTTP_ALLOWED_HOSTS: {})",
                list.join(", ")
            )),
            _ => Ok(()),
        }
    }

    /// Parses and checks an agent's URL: `invalid_config` when it is not a URL,
    /// `http_refused` when the policy refuses it.
    pub fn check(&self, field: &str, url: &str) -> Result<reqwest::Url, super::AgentError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            super::AgentError::config(format!("{field}: \"{url}\" is not a URL ({e})"))
        })?;
        self.check_url(&parsed)
            .map_err(|why| super::AgentError::new("http_refused", why))?;
        Ok(parsed)
    }
}

/// Link-local, where cloud metadata endpoints live (and Alibaba's, 100.100.100.200), in any
/// IPv6 spelling of an IPv4 address (mapped, compatible, NAT64).
pub fn forbidden_ip(ip: IpAddr) -> bool {
    let v4 = |v4: Ipv4Addr| v4.is_link_local() || v4 == Ipv4Addr::new(100, 100, 100, 200);
    match ip {
        IpAddr::V4(ip) => v4(ip),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded =
                Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
            let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
            let compatible = s[..6] == [0; 6];
            (s[0] & 0xffc0) == 0xfe80
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
                || v6.to_ipv4_mapped().is_some_and(v4)
                || ((nat64 || compatible) && v4(embedded))
        }
    }
}

/// Loopback, private, shared (CGNAT), unspecified and broadcast addresses.
pub fn private_ip(ip: IpAddr) -> bool {
    fn v4(ip: Ipv4Addr) -> bool {
        let [a, b, ..] = ip.octets();
        ip.is_loopback()
            || ip.is_private()
            || ip.is_unspecified()
            || ip.is_broadcast()
            || (a == 100 && (64..128).contains(&b))
    }
    match ip {
        IpAddr::V4(ip) => v4(ip),
        IpAddr::V6(ip) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || (ip.segments()[0] & 0xfe00) == 0xfc00
                || ip.to_ipv4_mapped().is_some_and(v4)
                || ip
                    .to_ipv4()
                    .is_some_and(|m| ip.segments()[..6] == [0; 6] && v4(m))
        }
    }
}

/// `host` matches an entry exactly (ignoring case), or `*.example.com` matches its subdomains.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    allowed.iter().any(|a| {
        let a = a.trim().to_ascii_lowercase();
        match a.strip_prefix("*.") {
            Some(suffix) => host.ends_with(&format!(".{suffix}")),
            None => host == a,
        }
    })
}

/// Follows up to 10 redirects, each to a URL the policy accepts.
pub fn redirect_policy(policy: Arc<Policy>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 10 {
            return attempt.error("more than 10 redirects");
        }
        match policy.check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(why) => attempt.error(format!("redirect refused: {why}")),
        }
    })
}

/// The system resolver, without the answers the policy refuses: a name that resolves only
/// there fails.
#[derive(Debug, Default)]
pub struct GuardedResolver {
    /// The policy every request is checked against.
    pub policy: Arc<Policy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut why = None;
            let usable: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| match policy.refuses_ip(a.ip()) {
                    Some(w) => {
                        why.get_or_insert(w);
                        false
                    }
                    None => true,
                })
                .collect();
            if usable.is_empty() {
                if let Some(why) = why {
                    return Err(format!("{host} resolves only to refused addresses: {why}").into());
                }
            }
            Ok(Box::new(usable.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_addresses_are_forbidden_and_ordinary_ones_are_not() {
        for ip in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "100.100.100.200",
            "64:ff9b::a9fe:a9fe",
            "::169.254.169.254",
        ] {
            assert!(forbidden_ip(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["8.8.8.8", "2001:db8::1", "100.128.0.1", "172.32.0.1"] {
            assert!(!private_ip(ip.parse().expect("ip")), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "8.8.8.8",
            "::1",
            "2001:db8::1",
            "fd00::1",
        ] {
            assert!(!forbidden_ip(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn allowed_hosts_match_exactly_or_by_subdomain_wildcard() {
        let list = vec!["api.example.com".to_string(), "*.internal".to_string()];
        assert!(host_allowed("API.example.com", &list));
        assert!(host_allowed("a.b.internal", &list));
        assert!(!host_allowed("internal", &list));
        assert!(!host_allowed("example.com", &list));
        assert!(!host_allowed("api.example.com.evil", &list));
        let url = |u: &str| reqwest::Url::parse(u).expect("url");
        let listed = Policy {
            allowed_hosts: Some(list),
            allow_private: false,
        };
        let open = Policy::default();
        let private = Policy {
            allowed_hosts: None,
            allow_private: true,
        };
        assert!(listed.check_url(&url("https://api.example.com/x")).is_ok());
        assert!(listed.check_url(&url("https://evil.example/x")).is_err());
        assert!(open.check_url(&url("https://evil.example/x")).is_ok());
        for metadata in [
            "http://169.254.169.254/latest",
            "http://[fe80::1]/",
            "http://2852039166/",
        ] {
            assert!(open.check_url(&url(metadata)).is_err(), "{metadata}");
            assert!(private.check_url(&url(metadata)).is_err(), "{metadata}");
        }
        for local in [
            "http://127.0.0.1:9/",
            "http://0x7f.1/",
            "http://[::1]/",
            "http://[::ffff:10.0.0.1]/",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://172.16.0.1/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[fd12::1]/",
            "http://localhost:3000/",
            "http://a.localhost/",
        ] {
            assert!(open.check_url(&url(local)).is_err(), "{local}");
            assert!(private.check_url(&url(local)).is_ok(), "{local}");
        }
        assert!(open.check_url(&url("file:///etc/passwd")).is_err());
        assert!(open.check_url(&url("http://8.8.8.8/")).is_ok());
    }
}
