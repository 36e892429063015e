//! Link configuration, with the keys of wasmCloud's own NATS messaging provider so a manifest
//! can switch between the two by changing the image:
//!
//! | key                     | on links                       | meaning                                    |
//! |-------------------------|--------------------------------|--------------------------------------------|
//! | `subscriptions`         | provider → component (handler) | comma-separated subjects, `subject|queue`  |
//! | `cluster_uris`          | both                           | comma-separated NATS URLs                  |
//! | `max-concurrency`       | provider → component (handler) | messages handled at once per link (64)     |
//!
//! Provider (named) config may set `cluster_uris` as the default for links without one.

use std::collections::HashMap;

pub const DEFAULT_URI: &str = "nats://127.0.0.1:4222";
pub const DEFAULT_CONCURRENCY: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("config `subscriptions`: `{0}` is not a subject or `subject|queue`")]
    Subscription(String),
    #[error("config `cluster_uris`: `{0}` is not a nats:// URL")]
    Uri(String),
    #[error("config `max-concurrency`: `{0}` is not a number from 1 to 65536")]
    Concurrency(String),
}

/// One subscription: a subject, and the queue group its messages are shared in (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub subject: String,
    pub queue: Option<String>,
}

/// Where a link's messages come from / go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSettings {
    pub uris: Vec<String>,
    pub subscriptions: Vec<Subscription>,
    pub max_concurrency: usize,
}

fn valid_token_chars(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c.is_control() || c == '|')
}

/// Checks a subject a component publishes or requests on, or names for replies: dot-separated
/// tokens, none empty, no wildcard token, no whitespace or control character. async-nats
/// writes subjects into the protocol line as they are, so a space or a line break from a
/// component would get the shared connection closed by the server, or inject commands.
///
/// # Errors
/// What is wrong, in words.
pub fn check_subject(subject: &str) -> Result<(), String> {
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("subject {subject:?} contains whitespace or a control character"));
    }
    if subject.split('.').any(|t| t.is_empty() || t == "*" || t == ">") {
        return Err(format!("subject {subject:?} is empty, has an empty token or a wildcard"));
    }
    Ok(())
}

fn parse_subscriptions(text: &str) -> Result<Vec<Subscription>, ConfigError> {
    let mut out = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (subject, queue) = match item.split_once('|') {
            Some((s, q)) => (s.trim(), Some(q.trim())),
            None => (item, None),
        };
        let subject_ok = valid_token_chars(subject) && subject.split('.').all(|t| !t.is_empty());
        if !subject_ok || queue.is_some_and(|q| !valid_token_chars(q) || q.contains('.')) {
            return Err(ConfigError::Subscription(item.to_owned()));
        }
        out.push(Subscription { subject: subject.to_owned(), queue: queue.map(str::to_owned) });
    }
    Ok(out)
}

fn parse_uris(text: &str) -> Result<Vec<String>, ConfigError> {
    let uris: Vec<String> = text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
    for u in &uris {
        let rest = u.strip_prefix("nats://").or_else(|| u.strip_prefix("tls://")).unwrap_or(u);
        if rest.is_empty() || rest.contains('/') || rest.chars().any(char::is_whitespace) {
            return Err(ConfigError::Uri(u.clone()));
        }
    }
    Ok(uris)
}

/// Reads a link's config over the provider's defaults (`default_uris`).
pub fn link_settings(map: &HashMap<String, String>, default_uris: &[String]) -> Result<LinkSettings, ConfigError> {
    let uris = match map.get("cluster_uris") {
        Some(text) => parse_uris(text)?,
        None => Vec::new(),
    };
    let uris = if uris.is_empty() { default_uris.to_vec() } else { uris };
    let subscriptions = map.get("subscriptions").map_or(Ok(Vec::new()), |s| parse_subscriptions(s))?;
    let max_concurrency = match map.get("max-concurrency") {
        Some(v) => v.trim().parse().ok().filter(|n| (1..=65536).contains(n)).ok_or_else(|| ConfigError::Concurrency(v.clone()))?,
        None => DEFAULT_CONCURRENCY,
    };
    Ok(LinkSettings { uris, subscriptions, max_concurrency })
}

/// The provider's default URLs (named config `cluster_uris`, else the local server).
pub fn default_uris(map: &HashMap<String, String>) -> Result<Vec<String>, ConfigError> {
    let uris = map.get("cluster_uris").map_or(Ok(Vec::new()), |t| parse_uris(t))?;
    Ok(if uris.is_empty() { vec![DEFAULT_URI.to_owned()] } else { uris })
}

#[cfg(test)]
mod tests {
    use super::*;

    use edgecell_provider_common::config_map as map;

    #[test]
    fn subscriptions_split_like_the_wasmcloud_provider() {
        let s = link_settings(&map(&[("subscriptions", "edgecell.v2x.in.>|v2x-validator, a.b")]), &[DEFAULT_URI.into()]).unwrap();
        assert_eq!(
            s.subscriptions,
            vec![
                Subscription { subject: "edgecell.v2x.in.>".into(), queue: Some("v2x-validator".into()) },
                Subscription { subject: "a.b".into(), queue: None },
            ]
        );
        assert_eq!(s.uris, vec![DEFAULT_URI.to_owned()]);
        assert_eq!(s.max_concurrency, DEFAULT_CONCURRENCY);
    }

    #[test]
    fn bad_values_are_typed_errors() {
        let d = [DEFAULT_URI.to_owned()];
        assert_eq!(link_settings(&map(&[("subscriptions", "a..b")]), &d), Err(ConfigError::Subscription("a..b".into())));
        assert_eq!(link_settings(&map(&[("subscriptions", "a|")]), &d), Err(ConfigError::Subscription("a|".into())));
        assert_eq!(link_settings(&map(&[("subscriptions", "a|q.x")]), &d), Err(ConfigError::Subscription("a|q.x".into())));
        assert_eq!(link_settings(&map(&[("cluster_uris", "nats://h:1/x")]), &d), Err(ConfigError::Uri("nats://h:1/x".into())));
        assert_eq!(link_settings(&map(&[("max-concurrency", "0")]), &d), Err(ConfigError::Concurrency("0".into())));
        assert_eq!(link_settings(&map(&[("max-concurrency", "lots")]), &d), Err(ConfigError::Concurrency("lots".into())));
    }

    #[test]
    fn subjects_from_components_are_checked() {
        for ok in ["edgecell.v2x.verdict.eu", "_INBOX.abc123.1", "a"] {
            assert_eq!(check_subject(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a..b", ".a", "a.", "a b", "a\r\nUNSUB 1", "a\u{0}b", "a.*", "a.>", "\t"] {
            assert!(check_subject(bad).is_err(), "{bad:?}");
        }
        let d = [DEFAULT_URI.to_owned()];
        assert!(link_settings(&map(&[("subscriptions", "a\u{1}b")]), &d).is_err());
    }

    #[test]
    fn link_uris_override_the_provider_default() {
        let d = default_uris(&map(&[("cluster_uris", "nats://10.0.0.1:4222, nats://10.0.0.2:4222")])).unwrap();
        assert_eq!(d.len(), 2);
        let s = link_settings(&map(&[("cluster_uris", "nats://127.0.0.1:5222")]), &d).unwrap();
        assert_eq!(s.uris, vec!["nats://127.0.0.1:5222".to_owned()]);
        assert_eq!(link_settings(&map(&[]), &d).unwrap().uris, d);
        assert_eq!(default_uris(&map(&[])).unwrap(), vec![DEFAULT_URI.to_owned()]);
    }
}
