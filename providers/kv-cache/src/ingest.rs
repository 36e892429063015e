//! The NATS put protocol producers use to place large payloads (video frames) in the cache so
//! that only a handle travels on the bus. Both the wasmCloud provider and the embedded host's
//! `serve` answer it, with this one implementation.
//!
//! - request subject: `<prefix>.<keyspace>` (prefix default `edgecell.cache.put`)
//! - headers: `edgecell-namespace` (required), `edgecell-key` (required), `edgecell-ttl-ms`
//!   (optional, decimal milliseconds)
//! - body: the value's bytes
//! - reply: JSON `{"version": N}` on success, `{"error": "<message>"}` otherwise
//!
//! Only the namespaces the cache's [`IngestPolicy`] opens take puts (by default the video
//! actor's `frames`), and they live in shards of their own with their own share of the memory
//! budget ([`Cache::with_ingest`]), so a flood of puts evicts older puts and nothing else. Anyone who can publish on the bus can send a put, and an actor's other
//! namespaces hold what it trusts: the V2X validator's configuration, its verified-certificate
//! cache and its per-sender history. A put there would let any NATS client reconfigure the
//! validator or plant a "verified" certificate.

use crate::{Cache, CacheError};

/// The namespaces open to producers' puts, as `<keyspace>/<namespace>` pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestPolicy {
    open: Vec<(String, String)>,
}

/// What [`IngestPolicy::default`] opens: the frames namespace of the video actor's keyspace.
pub const DEFAULT_OPEN: &str = "video-analytics/frames";

impl Default for IngestPolicy {
    fn default() -> Self {
        Self { open: vec![("video-analytics".to_owned(), "frames".to_owned())] }
    }
}

impl IngestPolicy {
    /// Nothing open.
    #[must_use]
    pub const fn none() -> Self {
        Self { open: Vec::new() }
    }

    /// Whether no namespace is open.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Parses a comma-separated list of `<keyspace>/<namespace>` pairs (blank = nothing open).
    ///
    /// # Errors
    /// The first entry that is not a pair of two non-empty names.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut open = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            match entry.split_once('/') {
                Some((ks, ns)) if !ks.trim().is_empty() && !ns.trim().is_empty() && !ns.contains('/') => {
                    open.push((ks.trim().to_owned(), ns.trim().to_owned()));
                }
                _ => return Err(format!("`{entry}` is not <keyspace>/<namespace>")),
            }
        }
        Ok(Self { open })
    }

    /// Whether puts into `namespace` of `keyspace` are taken.
    #[must_use]
    pub fn allows(&self, keyspace: &str, namespace: &str) -> bool {
        self.open.iter().any(|(k, n)| k == keyspace && n == namespace)
    }
}

/// Header carrying the cache namespace.
pub const NAMESPACE_HEADER: &str = "edgecell-namespace";
/// Header carrying the cache key.
pub const KEY_HEADER: &str = "edgecell-key";
/// Header carrying the TTL in milliseconds.
pub const TTL_HEADER: &str = "edgecell-ttl-ms";

/// Why a put request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error("subject `{0}` is not <prefix>.<keyspace>")]
    Subject(String),
    #[error("missing header `{0}`")]
    MissingHeader(&'static str),
    #[error("header `{TTL_HEADER}`: `{0}` is not a number of milliseconds")]
    Ttl(String),
    #[error("namespace `{namespace}` of keyspace `{keyspace}` is not open to producers' puts")]
    Closed { keyspace: String, namespace: String },
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// The keyspace a put subject names, if it is `<prefix>.<one token>`.
#[must_use]
pub fn keyspace_of<'a>(prefix: &str, subject: &'a str) -> Option<&'a str> {
    let rest = subject.strip_prefix(prefix)?.strip_prefix('.')?;
    (!rest.is_empty() && !rest.contains(['.', '*', '>'])).then_some(rest)
}

/// Applies one put request to `cache` if the cache's [`IngestPolicy`] opens its namespace;
/// `header` looks a header up by name.
///
/// # Errors
/// [`IngestError`] for a malformed request, a namespace that is not open, or a value the cache
/// refuses.
pub fn put<'h>(
    cache: &Cache,
    prefix: &str,
    subject: &str,
    header: impl Fn(&str) -> Option<&'h str>,
    body: Vec<u8>,
) -> Result<u64, IngestError> {
    let keyspace = keyspace_of(prefix, subject).ok_or_else(|| IngestError::Subject(subject.to_owned()))?;
    let namespace = header(NAMESPACE_HEADER).ok_or(IngestError::MissingHeader(NAMESPACE_HEADER))?;
    let key = header(KEY_HEADER).ok_or(IngestError::MissingHeader(KEY_HEADER))?;
    if !cache.ingest_policy().allows(keyspace, namespace) {
        return Err(IngestError::Closed { keyspace: keyspace.to_owned(), namespace: namespace.to_owned() });
    }
    let ttl_ms = match header(TTL_HEADER).map(str::trim) {
        None | Some("") => None,
        Some(t) => Some(t.parse::<u64>().map_err(|_| IngestError::Ttl(t.to_owned()))?),
    };
    Ok(cache.set(keyspace, namespace, key, body, ttl_ms)?)
}

/// The JSON reply body for a put's outcome.
#[must_use]
pub fn reply(outcome: &Result<u64, IngestError>) -> Vec<u8> {
    match outcome {
        Ok(version) => format!("{{\"version\":{version}}}").into_bytes(),
        Err(e) => {
            let mut s = String::from("{\"error\":\"");
            for c in e.to_string().chars() {
                match c {
                    '"' => s.push_str("\\\""),
                    '\\' => s.push_str("\\\\"),
                    c if c.is_control() => s.push_str(&format!("\\u{:04x}", u32::from(c))),
                    c => s.push(c),
                }
            }
            s.push_str("\"}");
            s.into_bytes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CacheConfig;

    fn headers<'a>(h: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| h.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    #[test]
    fn put_lands_in_the_named_keyspace() {
        let cache = Cache::with_ingest(CacheConfig::default(), IngestPolicy::default());
        let h = [(NAMESPACE_HEADER, "frames"), (KEY_HEADER, "vtest/7"), (TTL_HEADER, "60000")];
        let v = put(&cache, "edgecell.cache.put", "edgecell.cache.put.video-analytics", headers(&h), vec![0xff, 0xd8])
            .unwrap();
        let e = cache.get("video-analytics", "frames", "vtest/7").unwrap().unwrap();
        assert_eq!((e.version, e.value), (v, vec![0xff, 0xd8]));
        assert!(e.ttl_remaining.is_some_and(|t| t.as_millis() <= 60_000));
        assert_eq!(reply(&Ok(v)), format!("{{\"version\":{v}}}").into_bytes());
    }

    #[test]
    fn only_open_namespaces_take_puts() {
        let cache = Cache::with_ingest(CacheConfig::default(), IngestPolicy::default());
        // the V2X validator's configuration and certificate cache are not the bus's to write
        for (ks, ns, key) in [("v2x-validator", "v2x", "config"), ("v2x-validator", "v2x", "cert/0011223344556677"), ("video-analytics", "state", "vtest")] {
            let h = [(NAMESPACE_HEADER, ns), (KEY_HEADER, key)];
            let err = put(&cache, "p", &format!("p.{ks}"), headers(&h), b"x".to_vec());
            assert_eq!(err, Err(IngestError::Closed { keyspace: ks.into(), namespace: ns.into() }));
            assert!(String::from_utf8(reply(&err)).unwrap().contains("not open to producers"));
        }
        assert_eq!(cache.stats().entries, 0);
        let two = IngestPolicy::parse(" video-analytics/frames , cam-2/frames ").unwrap();
        assert!(two.allows("cam-2", "frames") && two.allows("video-analytics", "frames") && !two.allows("cam-2", "state"));
        assert!(!IngestPolicy::parse("").unwrap().allows("video-analytics", "frames"));
        for bad in ["video-analytics", "a/", "/b", "a/b/c"] {
            assert!(IngestPolicy::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(IngestPolicy::parse(DEFAULT_OPEN), Ok(IngestPolicy::default()));
    }

    #[test]
    fn malformed_requests_are_typed_errors() {
        let cache = Cache::with_ingest(CacheConfig::default(), IngestPolicy::parse("ks/n").unwrap());
        let ok = [(NAMESPACE_HEADER, "n"), (KEY_HEADER, "k")];
        assert_eq!(put(&cache, "p", "p.a.b", headers(&ok), vec![]), Err(IngestError::Subject("p.a.b".into())));
        assert_eq!(put(&cache, "p", "p", headers(&ok), vec![]), Err(IngestError::Subject("p".into())));
        assert_eq!(put(&cache, "p", "p.ks", headers(&[(KEY_HEADER, "k")]), vec![]), Err(IngestError::MissingHeader(NAMESPACE_HEADER)));
        let bad_ttl = [(NAMESPACE_HEADER, "n"), (KEY_HEADER, "k"), (TTL_HEADER, "soon")];
        assert_eq!(put(&cache, "p", "p.ks", headers(&bad_ttl), vec![]), Err(IngestError::Ttl("soon".into())));
        let empty_key = [(NAMESPACE_HEADER, "n"), (KEY_HEADER, "")];
        let err = put(&cache, "p", "p.ks", headers(&empty_key), vec![]);
        assert!(matches!(err, Err(IngestError::Cache(CacheError::InvalidKey(_)))));
        let body = String::from_utf8(reply(&err)).unwrap();
        assert!(body.starts_with("{\"error\":\"invalid key"), "{body}");
        assert_eq!(cache.stats().entries, 0);
        // a cache built without a policy takes no puts at all
        let closed = Cache::new(CacheConfig::default());
        let err = put(&closed, "p", "p.video-analytics", headers(&[(NAMESPACE_HEADER, "frames"), (KEY_HEADER, "k")]), vec![1]);
        assert!(matches!(err, Err(IngestError::Closed { .. })), "{err:?}");
    }

    /// However many puts arrive, they evict only older puts: the components' own entries
    /// (here the V2X validator's history and the video actor's stream state) stay.
    #[test]
    fn a_flood_of_puts_evicts_only_puts() {
        let cfg = CacheConfig {
            memory_budget_bytes: 1 << 20,
            shards: 4,
            max_value_bytes: 64 * 1024,
            ingest_budget_bytes: Some(256 * 1024),
            ..CacheConfig::default()
        };
        let cache = Cache::with_ingest(cfg, IngestPolicy::default());
        for i in 0..50 {
            cache.set("v2x-validator", "v2x", &format!("hist/{i}"), vec![1; 2000], None).unwrap();
        }
        cache.set("video-analytics", "state", "cam-1", vec![2; 5000], None).unwrap();
        let own = cache.stats().bytes;
        assert_eq!(cache.stats().ingest_bytes, 0);
        for i in 0..500 {
            let key = format!("cam-1/{i}");
            let h = [(NAMESPACE_HEADER, "frames"), (KEY_HEADER, key.as_str())];
            put(&cache, "p", "p.video-analytics", headers(&h), vec![3; 60_000]).unwrap();
        }
        let s = cache.stats();
        assert!(s.ingest_bytes <= 256 * 1024 && s.ingest_bytes > 60_000, "{s:?}");
        assert_eq!(s.bytes - s.ingest_bytes, own, "the components' bytes are untouched");
        assert!(s.evictions >= 495, "{s:?}");
        for i in 0..50 {
            assert!(cache.get("v2x-validator", "v2x", &format!("hist/{i}")).unwrap().is_some(), "hist/{i}");
        }
        assert!(cache.get("video-analytics", "state", "cam-1").unwrap().is_some());
        // the newest frame is there for the actor to read, through the same get
        assert_eq!(cache.get("video-analytics", "frames", "cam-1/499").unwrap().unwrap().value.len(), 60_000);
    }
}
