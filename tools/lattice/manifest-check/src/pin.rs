//! `make pin`: rewrite the `@sha256:` digests of a GitOps manifest's images from build outputs,
//! editing only the digest text so comments and layout stay as they are.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::checks::parse_pinned_ref;
use crate::Error;

/// The lowercase hex sha256 of a file's bytes.
pub fn sha256_file(path: &Path) -> Result<String, Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0_u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The last path segment of an image's repository: the name `pin` keys digests by
/// (`registry.example.com/edgecell/kv-cache:0.1.0@sha256:…` → `kv-cache`).
pub fn image_name(reference: &str) -> Option<&str> {
    let (repo, _, _) = parse_pinned_ref(reference)?;
    repo.rsplit('/').next()
}

/// `text` with the digest of every `image:` whose [`image_name`] is a key of `digests` replaced
/// by that digest (64 lowercase hex). Returns the new text and the names whose digest changed.
/// Every name in `digests` must match an image of the manifest.
pub fn pin(text: &str, digests: &BTreeMap<String, String>) -> Result<(String, Vec<String>), Error> {
    for (name, d) in digests {
        if d.len() != 64
            || !d
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Error::Pin(format!(
                "digest for `{name}` is not 64 lowercase hex: `{d}`"
            )));
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut seen = Vec::new();
    let mut changed = Vec::new();
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let value = body.trim_start().strip_prefix("image:").map(str::trim);
        let hit = value
            .and_then(|v| Some((v, image_name(v)?)))
            .and_then(|(v, n)| Some((v, n, digests.get(n)?)));
        match hit {
            Some((value, name, new)) => {
                let (_, _, old) = parse_pinned_ref(value)
                    .ok_or_else(|| Error::Pin(format!("unparsable image `{value}`")))?;
                seen.push(name.to_owned());
                if old != new {
                    changed.push(name.to_owned());
                }
                out.push_str(&line.replacen(
                    &format!("@sha256:{old}"),
                    &format!("@sha256:{new}"),
                    1,
                ));
            }
            None => out.push_str(line),
        }
    }
    if let Some(missing) = digests.keys().find(|n| !seen.contains(n)) {
        return Err(Error::Pin(format!(
            "no pinned image named `{missing}` in the manifest"
        )));
    }
    Ok((out, changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "    - name: a\n      properties:\n        # comment stays\n        image: registry.example.com/edgecell/a:0.1.0@sha256:0000000000000000000000000000000000000000000000000000000000000000\n    - name: b\n      properties:\n        image: registry.example.com/edgecell/b:0.1.0@sha256:1111111111111111111111111111111111111111111111111111111111111111\n    - name: m\n      properties:\n        image: wasmcloud+builtin://messaging-nats\n";

    #[test]
    fn pin_replaces_only_the_named_digest() {
        let d = "ab".repeat(32);
        let (out, changed) = pin(TEXT, &BTreeMap::from([("a".to_owned(), d.clone())])).unwrap();
        assert_eq!(changed, vec!["a"]);
        assert_eq!(out, TEXT.replace(&"0".repeat(64), &d));
        // pinning again changes nothing
        let (again, changed) = pin(&out, &BTreeMap::from([("a".to_owned(), d)])).unwrap();
        assert_eq!((again, changed), (out, Vec::<String>::new()));
    }

    #[test]
    fn pin_refuses_unknown_names_and_bad_digests() {
        let e = pin(TEXT, &BTreeMap::from([("zz".to_owned(), "ab".repeat(32))])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "pinning digests: no pinned image named `zz` in the manifest"
        );
        let e = pin(TEXT, &BTreeMap::from([("a".to_owned(), "AB".repeat(32))])).unwrap_err();
        assert!(e.to_string().contains("is not 64 lowercase hex"), "{e}");
    }

    #[test]
    fn sha256_of_a_known_input() {
        let path = std::env::temp_dir().join(format!("edgecell-pin-{}", std::process::id()));
        std::fs::write(&path, b"abc").unwrap();
        let d = sha256_file(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        // FIPS 180-2 test vector for "abc"
        assert_eq!(
            d,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
