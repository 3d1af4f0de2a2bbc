//! Cross-site WebSocket hijacking and DNS rebinding defence: which browser pages may open a
//! WebSocket here ([`OriginPolicy`]). Non-browser clients send no `Origin` and pass.
//!
//! It fails closed: an `Origin` that is not a well-formed `scheme://host[:port]` (non-ASCII,
//! `null`, a path, user info, two `Origin` headers) is refused. A page whose origin names the
//! request's own `Host` passes only when that host is `localhost` or an IP literal: a DNS name
//! that merely matches `Host` proves nothing, because a rebinding attacker chooses both (their
//! page at `http://evil.example:8080`, re-resolved to this server, sends `Origin` and `Host`
//! that agree). Any other origin must be configured, with `--public-url` or `--allowed-origin`.
//! Origins are parsed with `http::Uri` and compared as RFC 6454 does: scheme, host and port,
//! with the scheme's default port filled in.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hyper::header::{self, HeaderMap};
use hyper::http::uri::{Authority, Uri};

/// One origin: lowercase scheme and host, and the port (the scheme's default when not written;
/// `None` for an unknown scheme without one).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// The host and port of an authority without user info, lowercased.
fn host_port(authority: &Authority) -> Option<(String, Option<u16>)> {
    let host = authority.host();
    let text = authority.as_str();
    if text.contains('@') || host.is_empty() {
        return None;
    }
    // Read here rather than with `port_u16`: `Authority` takes `:99999` and `:` and reports
    // no port, which would make them the default port.
    let port = match text.strip_prefix(host)? {
        "" => None,
        rest => Some(rest.strip_prefix(':')?.parse::<u16>().ok()?),
    };
    Some((host.to_ascii_lowercase(), port))
}

impl Origin {
    /// A URL's origin; the path and query, if any, are ignored (`--public-url`).
    fn of_url(text: &str) -> Option<Self> {
        let uri = Uri::from_str(text).ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let (host, port) = host_port(uri.authority()?)?;
        Some(Self {
            port: port.or(default_port(&scheme)),
            scheme,
            host,
        })
    }

    /// An `Origin` header's value, which is exactly `scheme://host[:port]` (RFC 6454 section 6.1):
    /// anything more is not what a browser sends, and is refused.
    fn of_header(text: &str) -> Option<Self> {
        let uri = Uri::from_str(text).ok()?;
        // Nothing but the scheme and the authority: `Uri` reads `http://a` and `http://a/` alike.
        let (scheme, authority) = (uri.scheme_str()?, uri.authority()?.as_str());
        let bare = text.len() == scheme.len() + 3 + authority.len() && text.ends_with(authority);
        if !bare {
            return None;
        }
        Self::of_url(text)
    }

    /// Whether a page could only have come from this host by the user's own choice: `localhost`,
    /// or an address typed as an address. No DNS answer can make a browser send either.
    fn host_cannot_be_rebound(&self) -> bool {
        let host = self.host.as_str();
        host == "localhost"
            || Ipv4Addr::from_str(host).is_ok()
            || host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .is_some_and(|h| Ipv6Addr::from_str(h).is_ok())
    }

    /// Whether this origin names the host and port the request was sent to. `Host` carries no
    /// scheme; without a port it means the default port of the scheme the page used.
    fn is_host(&self, host: &str) -> bool {
        let Some((name, port)) = Authority::from_str(host).ok().as_ref().and_then(host_port) else {
            return false;
        };
        name == self.host && port.or(default_port(&self.scheme)) == self.port
    }
}

/// Why an upgrade's `Origin` was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not a well-formed origin: non-ASCII, unparsable, a path or user info, or sent twice.
    Malformed,
    /// `Origin: null`: a sandboxed frame, a `file:` page, a redirect; nobody to trust.
    Null,
    /// The page's own host, but a DNS name that was not configured (DNS rebinding looks the same).
    UnconfiguredName,
    /// Another site's page.
    Foreign,
}

impl Refusal {
    /// The reason, for the 403 body and the log.
    pub(crate) fn explain(self) -> &'static str {
        match self {
            Refusal::Malformed => "not a well-formed origin",
            Refusal::Null => "an opaque (null) origin",
            Refusal::UnconfiguredName => {
                "the server's own host name, which must be configured (--public-url) since DNS rebinding sends the same"
            }
            Refusal::Foreign => "another site",
        }
    }
}

/// The origins that may open WebSockets, parsed once from the settings.
#[derive(Debug)]
pub(crate) struct OriginPolicy {
    /// `--allowed-origin '*'`: every well-formed origin.
    any: bool,
    configured: Vec<Origin>,
}

impl OriginPolicy {
    /// From `--allowed-origin` and `--public-url`; an entry that is no origin is an error naming
    /// it (it would otherwise never match, and the operator would not know why).
    pub(crate) fn new(allowed: &[String], public_url: Option<&str>) -> Result<Self, String> {
        let mut policy = Self {
            any: false,
            configured: Vec::new(),
        };
        for entry in allowed {
            if entry == "*" {
                policy.any = true;
                tracing::warn!(
                    "--allowed-origin '*': any web page may open WebSockets to this server"
                );
                continue;
            }
            let origin = Origin::of_url(entry).ok_or_else(|| {
                format!("--allowed-origin {entry:?} is not an origin like https://app.example.com")
            })?;
            policy.configured.push(origin);
        }
        if let Some(url) = public_url {
            let origin = Origin::of_url(url).ok_or_else(|| {
                format!("--public-url {url:?} is not a URL like https://chat.example.com")
            })?;
            policy.configured.push(origin);
        }
        Ok(policy)
    }

    /// Whether an upgrade with these request headers may proceed.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let mut origins = headers.get_all(header::ORIGIN).iter();
        let Some(value) = origins.next() else {
            return Ok(());
        };
        if origins.next().is_some() {
            return Err(Refusal::Malformed);
        }
        let text = value.to_str().map_err(|_| Refusal::Malformed)?;
        if text.eq_ignore_ascii_case("null") {
            return Err(Refusal::Null);
        }
        let origin = Origin::of_header(text).ok_or(Refusal::Malformed)?;
        if self.any || self.configured.contains(&origin) {
            return Ok(());
        }
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        match host {
            Some(host) if origin.is_host(host) => {
                if origin.host_cannot_be_rebound() {
                    Ok(())
                } else {
                    Err(Refusal::UnconfiguredName)
                }
            }
            _ => Err(Refusal::Foreign),
        }
    }
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    fn check(policy: &OriginPolicy, origin: &[u8], host: &str) -> Result<(), Refusal> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_bytes(origin).expect("header"),
        );
        headers.insert(header::HOST, HeaderValue::from_str(host).expect("header"));
        policy.check(&headers)
    }

    fn unconfigured() -> OriginPolicy {
        OriginPolicy::new(&[], None).expect("valid")
    }

    #[test]
    fn no_origin_is_a_non_browser_client_and_passes() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("chat.example"));
        assert_eq!(unconfigured().check(&headers), Ok(()));
    }

    #[test]
    fn localhost_and_ip_literals_pass_as_their_own_host() {
        let p = unconfigured();
        assert_eq!(
            check(&p, b"http://localhost:8080", "localhost:8080"),
            Ok(())
        );
        assert_eq!(check(&p, b"http://LOCALHOST:9", "localhost:9"), Ok(()));
        assert_eq!(check(&p, b"http://localhost", "localhost"), Ok(()));
        assert_eq!(check(&p, b"http://localhost:80", "localhost"), Ok(()));
        assert_eq!(check(&p, b"https://localhost", "localhost:443"), Ok(()));
        assert_eq!(
            check(&p, b"http://127.0.0.1:8080", "127.0.0.1:8080"),
            Ok(())
        );
        assert_eq!(check(&p, b"http://10.1.2.3:8080", "10.1.2.3:8080"), Ok(()));
        assert_eq!(check(&p, b"http://[::1]:8080", "[::1]:8080"), Ok(()));
        assert_eq!(check(&p, b"http://[fe80::1]", "[FE80::1]:80"), Ok(()));
    }

    #[test]
    fn the_port_and_scheme_default_must_agree_with_host() {
        let p = unconfigured();
        assert_eq!(
            check(&p, b"http://localhost:9999", "localhost:8080"),
            Err(Refusal::Foreign)
        );
        assert_eq!(
            check(&p, b"https://localhost", "localhost:80"),
            Err(Refusal::Foreign)
        );
        assert_eq!(
            check(&p, b"http://127.0.0.1:8080", "127.0.0.2:8080"),
            Err(Refusal::Foreign)
        );
    }

    /// The rebinding attacker's page and this server's real name look alike to the server;
    /// neither passes unless configured.
    #[test]
    fn a_dns_name_matching_host_is_refused_unless_configured() {
        let p = unconfigured();
        assert_eq!(
            check(&p, b"http://chat:8080", "chat:8080"),
            Err(Refusal::UnconfiguredName)
        );
        assert_eq!(
            check(&p, b"https://Chat.example", "chat.example"),
            Err(Refusal::UnconfiguredName)
        );
        assert_eq!(
            check(
                &p,
                b"http://localhost.evil.example",
                "localhost.evil.example"
            ),
            Err(Refusal::UnconfiguredName)
        );
        assert_eq!(
            check(&p, b"http://127.0.0.1.nip.io", "127.0.0.1.nip.io"),
            Err(Refusal::UnconfiguredName)
        );
        let public = OriginPolicy::new(&[], Some("https://chat.example/rooms")).expect("valid");
        assert_eq!(
            check(&public, b"https://Chat.example", "chat.example"),
            Ok(())
        );
        assert_eq!(
            check(&public, b"https://chat.example:443", "backend:8080"),
            Ok(())
        );
        assert_eq!(
            check(&public, b"http://chat.example", "chat.example"),
            Err(Refusal::UnconfiguredName)
        );
    }

    #[test]
    fn listed_origins_pass_and_others_fail() {
        let listed = OriginPolicy::new(&["https://app.example".to_owned()], None).expect("valid");
        assert_eq!(check(&listed, b"https://app.example", "chat:8080"), Ok(()));
        assert_eq!(
            check(&listed, b"https://app.example:443", "chat:8080"),
            Ok(())
        );
        assert_eq!(
            check(&listed, b"https://app.example:8443", "chat:8080"),
            Err(Refusal::Foreign)
        );
        assert_eq!(
            check(&listed, b"http://evil.example", "chat:8080"),
            Err(Refusal::Foreign)
        );
        let any = OriginPolicy::new(&["*".to_owned()], None).expect("valid");
        assert_eq!(check(&any, b"http://evil.example", "x"), Ok(()));
        assert_eq!(check(&any, b"null", "x"), Err(Refusal::Null));
    }

    #[test]
    fn malformed_and_opaque_origins_fail_closed() {
        let p = OriginPolicy::new(&["*".to_owned()], None).expect("valid");
        assert_eq!(check(&p, b"null", "localhost"), Err(Refusal::Null));
        for bad in [
            &b"http://ch\xc3\xa4t.example"[..],
            b"\xff",
            b"localhost:8080",
            b"localhost",
            b"http://",
            b"http://localhost:8080/",
            b"http://localhost:8080/path",
            b"http://localhost?x",
            b"http://user@localhost",
            b"http://localhost:99999",
            b"http://localhost:",
            b"http://localhost#x",
            b"http:// localhost",
            b"",
        ] {
            assert_eq!(
                check(&p, bad, "localhost"),
                Err(Refusal::Malformed),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut twice = HeaderMap::new();
        twice.append(header::ORIGIN, HeaderValue::from_static("http://localhost"));
        twice.append(header::ORIGIN, HeaderValue::from_static("http://localhost"));
        twice.insert(header::HOST, HeaderValue::from_static("localhost"));
        assert_eq!(unconfigured().check(&twice), Err(Refusal::Malformed));
    }

    #[test]
    fn a_configured_entry_that_is_no_origin_is_an_error() {
        assert!(OriginPolicy::new(&["app.example".to_owned()], None).is_err());
        assert!(OriginPolicy::new(&[], Some("chat.example.com")).is_err());
        assert!(OriginPolicy::new(&[], Some("https://chat.example.com/")).is_ok());
    }
}
