//! Local manifests name artifacts relative to themselves (`file://../build/…`), as wasmCloud's
//! own examples do; wadm and the host need absolute `file:///` URLs. This rewrites every string
//! value of the form `file://<relative path>` into an absolute `file://` URL.

use std::path::Path;

use anyhow::Context as _;
use serde_yaml::Value;

fn resolve(v: &mut Value, base: &Path) -> anyhow::Result<()> {
    match v {
        Value::String(s) => {
            if let Some(rel) = s.strip_prefix("file://").filter(|r| !r.starts_with('/')) {
                let abs = base.join(rel);
                let abs = abs.canonicalize().with_context(|| format!("`{s}` → {}: not found (build it first)", abs.display()))?;
                *s = url::Url::from_file_path(&abs)
                    .map_err(|()| anyhow::anyhow!("{} cannot be a file:// URL", abs.display()))?
                    .to_string();
            }
        }
        Value::Sequence(seq) => {
            for item in seq {
                resolve(item, base)?;
            }
        }
        Value::Mapping(map) => {
            for (_, item) in map.iter_mut() {
                resolve(item, base)?;
            }
        }
        Value::Tagged(t) => resolve(&mut t.value, base)?,
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
    Ok(())
}

/// The manifest text with relative `file://` references made absolute against `base`.
pub fn resolve_file_refs(text: &str, base: &Path) -> anyhow::Result<String> {
    let mut doc: Value = serde_yaml::from_str(text).context("manifest is not YAML")?;
    resolve(&mut doc, base)?;
    serde_yaml::to_string(&doc).context("failed to re-encode the manifest")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_file_refs_become_absolute_and_others_stay() {
        let dir = std::env::temp_dir().join(format!("edgecell-resolve-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("m/build")).unwrap();
        std::fs::write(dir.join("m/build/a.wasm"), b"x").unwrap();
        let text = "spec:\n  components:\n    - properties:\n        image: file://./build/a.wasm\n        other: file:///abs/x\n        oci: registry.example.com/a@sha256:00\n";
        let out = resolve_file_refs(text, &dir.join("m")).unwrap();
        let abs = dir.join("m/build/a.wasm").canonicalize().unwrap();
        assert!(out.contains(&format!("image: file://{}", abs.display())), "{out}");
        assert!(out.contains("other: file:///abs/x"));
        assert!(out.contains("registry.example.com/a@sha256:00"));
        let missing = resolve_file_refs("image: file://./nope.wasm\n", &dir.join("m")).unwrap_err();
        assert!(format!("{missing:#}").contains("not found"), "{missing:#}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
