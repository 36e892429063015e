//! Checks for edgecell's wadm manifests (`wadm/*.yaml`), with the manifest types and the
//! validation wadm 0.21.1 itself uses (`wadm-types` 0.8.3) and the project's WIT (`wit/`,
//! resolved with `wit-parser`): link targets, link interfaces against the actors' worlds,
//! configuration, scalers, image references and the per-actor manifests' consistency with
//! `local.wadm.yaml`. Also pins the OCI digests of `edgecell.wadm.yaml` (`make pin`).
//!
//! Every check returns the problems it found as sentences; an empty list means the manifest
//! passes. The tests in `tests/manifests.rs` run them over the real manifests.
#![forbid(unsafe_code)]

use std::path::PathBuf;

pub mod checks;
pub mod manifest;
pub mod pin;
pub mod wit;

pub use manifest::{find_repo_root, load_dir, parse, wadm_validation, Loaded};
pub use wit::WitIndex;

/// Why a manifest, the WIT or an artifact could not be read at all (problems found in a
/// readable manifest are reported by the [`checks`] instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a wadm manifest: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("resolving the WIT in {path}: {message}")]
    Wit { path: PathBuf, message: String },
    #[error("running wadm's validation: {0}")]
    Validation(String),
    #[error("pinning digests: {0}")]
    Pin(String),
}
