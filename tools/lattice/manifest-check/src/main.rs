//! `edgecell-manifest-check pin <manifest> <name>=<artifact>...`: set the `@sha256:` digest of
//! each named image (the last segment of its repository) to the sha256 of the artifact file.
//! Used by `make pin` on `wadm/edgecell.wadm.yaml` after a build. The checks themselves run as
//! this crate's tests (`cargo test -p edgecell-manifest-check`).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use edgecell_manifest_check::pin::{pin, sha256_file};

const USAGE: &str =
    "usage: edgecell-manifest-check pin <manifest.yaml> <image-name>=<artifact-file>...";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some("pin"), Some(manifest)) = (args.first().map(String::as_str), args.get(1)) else {
        bail!("{USAGE}");
    };
    let mut digests = BTreeMap::new();
    for pair in &args[2..] {
        let Some((name, file)) = pair.split_once('=') else {
            bail!("`{pair}` is not <image-name>=<file>\n{USAGE}")
        };
        let digest = sha256_file(&PathBuf::from(file))
            .with_context(|| format!("hashing the artifact of `{name}`"))?;
        digests.insert(name.to_owned(), digest);
    }
    if digests.is_empty() {
        bail!("nothing to pin\n{USAGE}");
    }
    let text = std::fs::read_to_string(manifest).with_context(|| format!("reading {manifest}"))?;
    let (out, changed) = pin(&text, &digests).with_context(|| format!("pinning {manifest}"))?;
    if out != text {
        std::fs::write(manifest, out).with_context(|| format!("writing {manifest}"))?;
    }
    for (name, d) in &digests {
        let mark = if changed.contains(name) {
            "updated"
        } else {
            "unchanged"
        };
        println!("{name}: sha256:{d} ({mark})");
    }
    Ok(())
}
