//! Where agents' HTTP requests may go.
//!
//! - **Never to link-local addresses** (169.254.0.0/16, fe80::/10, and AWS's fd00:ec2::254).
//!   That is where cloud metadata services hand out credentials, so a workflow must not reach
//!   them. This holds for every agent, at every step of a request:
//!   - an address written in the URL is checked before sending;
//!   - a host name is resolved by [`GuardedResolver`], which drops such addresses;
//!   - every redirect target is checked by [`redirect_policy`].
//! - **Optionally only to allowed hosts** (`FLOWSCOPE_HTTP_ALLOWED_HOSTS`). The `http` agent
//!   checks its URL, and redirects of every agent must stay among those hosts.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Link-local, where cloud metadata endpoints live.
pub fn forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local())
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

/// Why `url` may not be requested, if it may not.
pub fn check_url(url: &reqwest::Url, allowed: Option<&[String]>) -> Result<(), String> {
    // The URL parser has normalised the host: `http://2852039166/` reads 169.254.169.254.
    let host = url
        .host_str()
        .ok_or_else(|| format!("{url} has no host"))?
        .to_string();
    if let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        if forbidden_ip(ip) {
            return Err(format!(
                "{ip} is a link-local address (cloud metadata); requests there are refused"
            ));
        }
    }
    match allowed {
        Some(list) if !host_allowed(&host, list) => Err(format!(
            "{host} is not among the allowed hosts (FLOWSCOPE_HTTP_ALLOWED_HOSTS: {})",
            list.join(", ")
        )),
        _ => Ok(()),
    }
}

/// For agents without an allow-list: refuses a link-local address written in `url` (an
/// unparsable URL is left to the HTTP client, which reports it).
pub fn refuse_metadata(url: &str) -> Result<(), super::AgentError> {
    match reqwest::Url::parse(url) {
        Ok(u) => check_url(&u, None).map_err(|why| super::AgentError::new("http_refused", why)),
        Err(_) => Ok(()),
    }
}

/// Follows up to 10 redirects, each to a URL [`check_url`] accepts.
pub fn redirect_policy(allowed: Option<Vec<String>>) -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= 10 {
            return attempt.error("more than 10 redirects");
        }
        match check_url(attempt.url(), allowed.as_deref()) {
            Ok(()) => attempt.follow(),
            Err(why) => attempt.error(format!("redirect refused: {why}")),
        }
    })
}

/// The system resolver, without link-local answers: a name that resolves only there fails.
#[derive(Debug, Default)]
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let usable: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| !forbidden_ip(a.ip()))
                .collect();
            if usable.is_empty() && !found.is_empty() {
                return Err(format!(
                    "{host} resolves to a link-local address (cloud metadata); requests there are refused"
                )
                .into());
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
        ] {
            assert!(forbidden_ip(ip.parse().expect("ip")), "{ip}");
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
        assert!(check_url(&url("https://api.example.com/x"), Some(&list)).is_ok());
        assert!(check_url(&url("https://evil.example/x"), Some(&list)).is_err());
        assert!(check_url(&url("http://169.254.169.254/latest"), None).is_err());
        assert!(check_url(&url("http://[fe80::1]/"), None).is_err());
        assert!(check_url(&url("http://2852039166/"), None).is_err());
        assert!(check_url(&url("http://127.0.0.1:9/"), None).is_ok());
    }
}
