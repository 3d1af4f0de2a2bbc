//! The headers every response of the router carries, whatever its route or status: the browser is
//! told not to guess content types, not to leak this server's URLs to other sites, and that the
//! web client runs only its own files.

use hyper::header::{self, HeaderMap, HeaderValue};

/// The web client's Content-Security-Policy. It loads only its own scripts (ES modules), styles,
/// icon and `/config.json`, and opens its WebSocket to its own host: `'self'` covers `ws:`/`wss:`
/// to the page's host in CSP Level 3 browsers (the e2e test checks Chromium). It has no inline
/// script, style or event handler (it sets CSS custom properties through the CSSOM, which
/// `style-src` does not restrict). `frame-ancestors 'none'`: no clickjacking through a frame;
/// `base-uri 'none'` and `object-src 'none'`: no injected `<base>` or plugin.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
    style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Adds the headers to a response. The policy goes on every response, not only HTML: a text or
/// SVG file from `--static-dir` opened as a page is held to it too, and the others ignore it.
pub(crate) fn add(headers: &mut HeaderMap) {
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
}
