//! Reading manifests exactly as wadm 0.21.1 does.

use std::path::{Path, PathBuf};

use wadm_types::validation::{validate_manifest_bytes, ValidationFailure};
use wadm_types::Manifest;

use crate::Error;

/// Parses a manifest the way wadm 0.21.1's API handler does when no content type is given
/// (`server/parser.rs`, `parse_yaml_or_json`): as YAML, else as JSON, into `wadm_types::Manifest`.
pub fn parse(text: &str) -> Result<Manifest, String> {
    serde_yaml::from_str::<Manifest>(text).or_else(|yaml| {
        serde_json::from_str::<Manifest>(text).map_err(|json| format!("YAML: {yaml}; JSON: {json}"))
    })
}

/// wadm's own validation of a manifest, as `wash app validate` runs it:
/// `wadm_types::validation::validate_manifest` (wadm's put handler rejects a manifest on any of
/// its errors) plus `validate_raw_yaml` (deprecated link keys). Warnings are included.
pub fn wadm_validation(text: &str) -> Result<Vec<ValidationFailure>, Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| Error::Validation(format!("no runtime: {e}")))?;
    let (_, failures) = rt
        .block_on(validate_manifest_bytes(text.as_bytes()))
        .map_err(|e| Error::Validation(format!("{e:#}")))?;
    Ok(failures)
}

/// One manifest file: its path, text and parsed form.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub text: String,
    pub manifest: Manifest,
}

impl Loaded {
    /// Reads and parses `path`.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        let manifest = parse(&text).map_err(|message| Error::Parse {
            path: path.to_owned(),
            message,
        })?;
        Ok(Self {
            path: path.to_owned(),
            text,
            manifest,
        })
    }

    /// The file name, e.g. `local.wadm.yaml`.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Every `*.yaml` / `*.yml` manifest in `dir`, sorted by file name.
pub fn load_dir(dir: &Path) -> Result<Vec<Loaded>, Error> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| Error::Io {
                path: dir.to_owned(),
                source,
            })?
            .path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            paths.push(path);
        }
    }
    paths.sort();
    paths.iter().map(|p| Loaded::read(p)).collect()
}

/// The repository root above `start`: the first ancestor holding `wit/worlds.wit` and `wadm/`.
/// `start` is canonicalised first, so a symlinked crate directory still finds the real tree.
pub fn find_repo_root(start: &Path) -> Option<PathBuf> {
    let start = std::fs::canonicalize(start).ok()?;
    start
        .ancestors()
        .find(|d| d.join("wit").join("worlds.wit").is_file() && d.join("wadm").is_dir())
        .map(Path::to_path_buf)
}
