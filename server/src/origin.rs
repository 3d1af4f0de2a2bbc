//! Cross-site WebSocket hijacking defence: a browser upgrade is accepted only from the page's own
//! origin, or one listed with `--allowed-origin`. Non-browser clients send no `Origin`.

/// Whether an upgrade with this `Origin` and `Host` may proceed.
pub(crate) fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let same_host = origin
        .split_once("://")
        .map(|(_, authority)| authority.trim_end_matches('/'));
    matches!((same_host, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::origin_allowed;

    #[test]
    fn same_origin_and_listed_origins_pass_others_fail() {
        let none: Vec<String> = Vec::new();
        assert!(origin_allowed(None, Some("chat:8080"), &none));
        assert!(origin_allowed(
            Some("http://chat:8080"),
            Some("chat:8080"),
            &none
        ));
        assert!(origin_allowed(
            Some("https://Chat.example"),
            Some("chat.example"),
            &none
        ));
        assert!(!origin_allowed(
            Some("http://evil.example"),
            Some("chat:8080"),
            &none
        ));
        assert!(!origin_allowed(
            Some("http://chat:9999"),
            Some("chat:8080"),
            &none
        ));
        assert!(!origin_allowed(Some("null"), Some("chat:8080"), &none));
        assert!(!origin_allowed(Some("http://chat:8080"), None, &none));
        let listed = vec!["https://app.example".to_owned()];
        assert!(origin_allowed(
            Some("https://app.example"),
            Some("chat:8080"),
            &listed
        ));
        assert!(origin_allowed(
            Some("http://evil.example"),
            Some("x"),
            &["*".to_owned()]
        ));
    }
}
