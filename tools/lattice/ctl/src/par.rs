//! Provider archives (`.par.gz`) written byte for byte the same from the same inputs.
//!
//! `ProviderArchive::write` signs claims with a random token id and the current time, and the
//! packager used to sign with keys made afresh for every archive, so every build gave every
//! provider a new digest: the digests pinned in `wadm/edgecell.wadm.yaml` could never be
//! rebuilt or checked. Here the archive is written in the same layout (a gzip'd tar holding
//! `claims.jwt`, then `<arch>-<os>.bin`) from:
//! - signing keys read from a directory (made there the first time, kept private),
//! - an issue time given by the caller (the Makefile's `PAR_ISSUED_AT`),
//! - a token id derived from what is signed,
//!
//! so the same binary, keys and time give the same archive. What was written is read back
//! with the provider-archive crate, which checks the claims' signature and the binary's hash
//! the way the host does.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use nkeys::KeyPair;
use sha2::{Digest as _, Sha256};
use wascap::jwt::{CapabilityProvider, Claims};

const CLAIMS_FILE: &str = "claims.jwt";

/// What goes into one archive.
#[derive(Debug)]
pub struct Package<'a> {
    pub name: &'a str,
    pub vendor: &'a str,
    pub version: &'a str,
    /// `<arch>-<os>` as the host looks it up
    pub target: &'a str,
    pub binary: &'a [u8],
    /// Seconds since the epoch recorded as the claims' issue time.
    pub issued_at: u64,
}

/// The signing keys of one provider: the issuer (an nkeys account key, shared by our
/// providers) and the subject (a service key, one per provider).
pub struct Keys {
    pub issuer: KeyPair,
    pub subject: KeyPair,
}

impl Keys {
    /// Fresh keys for one archive (no key directory given: the archive cannot be rebuilt).
    pub fn fresh() -> Self {
        Self { issuer: KeyPair::new_account(), subject: KeyPair::new_service() }
    }

    /// The keys in `dir`: `issuer.nk` and `<provider>.nk`, each an nkeys seed. A missing one
    /// is made and written readable by the owner only; a file of the wrong kind is refused.
    pub fn in_dir(dir: &Path, provider: &str) -> anyhow::Result<Self> {
        if provider.is_empty() || !provider.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            bail!("provider name `{provider}` cannot name a key file (letters, digits, - and _ only)");
        }
        create_private_dir(dir)?;
        let issuer = seed_file(&dir.join("issuer.nk"), 'A', KeyPair::new_account)?;
        let subject = seed_file(&dir.join(format!("{provider}.nk")), 'V', KeyPair::new_service)?;
        Ok(Self { issuer, subject })
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).with_context(|| format!("failed to create {}", dir.display()))
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))
}

/// Reads the seed in `path` (`S` + `kind` + …), or makes one with `new` and writes it there.
fn seed_file(path: &Path, kind: char, new: fn() -> KeyPair) -> anyhow::Result<KeyPair> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let seed = text.trim();
            if seed.as_bytes().get(1).map(|b| char::from(*b)) != Some(kind) {
                bail!("{} does not hold an nkeys seed of kind {kind} (S{kind}…)", path.display());
            }
            KeyPair::from_seed(seed).map_err(|e| anyhow::anyhow!("{} is not a valid nkeys seed: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = new();
            let seed = key.seed().map_err(|e| anyhow::anyhow!("failed to read the new key's seed: {e}"))?;
            write_private(path, &format!("{seed}\n"))?;
            eprintln!("made signing key {} ({})", path.display(), key.public_key());
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("failed to read {}", path.display())),
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).with_context(|| format!("failed to create {}", path.display()))?;
    file.write_all(text.as_bytes()).with_context(|| format!("failed to write {}", path.display()))
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// The archive's bytes: signed claims, then the binary, in a gzip'd tar whose headers carry
/// nothing of the machine or the moment.
pub fn archive(package: &Package<'_>, keys: &Keys) -> anyhow::Result<Vec<u8>> {
    let binary_hash = hex_upper(&Sha256::digest(package.binary));
    let hashes = std::iter::once((package.target.to_owned(), binary_hash.clone())).collect();
    let mut claims = Claims::<CapabilityProvider>::new(
        package.name.to_owned(),
        keys.issuer.public_key(),
        keys.subject.public_key(),
        package.vendor.to_owned(),
        None,
        Some(package.version.to_owned()),
        hashes,
    );
    claims.issued_at = package.issued_at;
    // the token id names this signing: the same for the same content, keys and time
    let mut id = Sha256::new();
    for part in [package.name, package.vendor, package.version, package.target, &binary_hash, &keys.subject.public_key()] {
        id.update((part.len() as u64).to_le_bytes());
        id.update(part.as_bytes());
    }
    id.update(package.issued_at.to_le_bytes());
    claims.id = hex_upper(&id.finalize()[..16]);
    let jwt = claims.encode(&keys.issuer).map_err(|e| anyhow::anyhow!("failed to sign the claims: {e}"))?;

    let gzip = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::best());
    let mut tar = tar::Builder::new(gzip);
    for (path, bytes) in [(CLAIMS_FILE.to_owned(), jwt.as_bytes()), (format!("{}.bin", package.target), package.binary)] {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, &path, bytes).with_context(|| format!("failed to add {path} to the archive"))?;
    }
    let gzip = tar.into_inner().context("failed to finish the archive")?;
    gzip.finish().context("failed to compress the archive")
}

/// Checks `bytes` the way the host will read them (the binary's hash for `target`; also the
/// claims' signature, name and subject), then writes them to `out`.
pub async fn write_checked(out: &PathBuf, bytes: &[u8], package: &Package<'_>, keys: &Keys) -> anyhow::Result<()> {
    check(bytes, package, keys).await.with_context(|| format!("the archive for {} does not read back as written", out.display()))?;
    if let Some(dir) = out.parent() {
        tokio::fs::create_dir_all(dir).await.with_context(|| format!("failed to create {}", dir.display()))?;
    }
    tokio::fs::write(out, bytes).await.with_context(|| format!("failed to write {}", out.display()))
}

async fn check(bytes: &[u8], package: &Package<'_>, keys: &Keys) -> anyhow::Result<()> {
    let par = provider_archive::ProviderArchive::try_load(bytes).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let claims = par.claims().context("no claims")?;
    let provider = claims.metadata.as_ref().context("claims without provider metadata")?;
    if claims.subject != keys.subject.public_key() || claims.issuer != keys.issuer.public_key() {
        bail!("claims name other keys");
    }
    if provider.name.as_deref() != Some(package.name) || provider.target_hashes.len() != 1 {
        bail!("claims describe another provider");
    }
    if par.targets().iter().map(String::as_str).ne([package.target]) {
        bail!("archive holds targets {:?}", par.targets());
    }
    wascap::jwt::validate_token::<CapabilityProvider>(&par.claims_token().context("no token")?.jwt)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .and_then(|v| if v.signature_valid { Ok(()) } else { bail!("claims signature does not verify") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(binary: &[u8]) -> Package<'_> {
        Package { name: "edgecell-test", vendor: "edgecell", version: "0.1.0", target: "x86_64-linux", binary, issued_at: 1_700_000_000 }
    }

    #[tokio::test]
    async fn the_same_binary_keys_and_time_give_the_same_archive_which_the_host_reader_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let keys = Keys::in_dir(&dir.path().join("keys"), "edgecell-test").unwrap();
        let binary = b"\x7fELF a provider".repeat(1000);
        let a = archive(&package(&binary), &keys).unwrap();
        // keys read back from their files sign the same
        let again = Keys::in_dir(&dir.path().join("keys"), "edgecell-test").unwrap();
        assert_eq!(again.subject.public_key(), keys.subject.public_key());
        let b = archive(&package(&binary), &again).unwrap();
        assert_eq!(a, b);
        let out = dir.path().join("out/p.par.gz");
        write_checked(&out, &a, &package(&binary), &keys).await.unwrap();
        let par = provider_archive::ProviderArchive::try_load_file(&out).await.unwrap();
        assert_eq!(par.targets(), vec!["x86_64-linux".to_owned()]);
        let claims = par.claims().unwrap();
        assert_eq!(claims.issued_at, 1_700_000_000);
        assert_eq!(claims.subject, keys.subject.public_key());

        // another binary, time or key gives another archive
        let other = b"\x7fELF another one".repeat(1000);
        assert_ne!(archive(&package(&other), &keys).unwrap(), a);
        assert_ne!(archive(&Package { issued_at: 1_700_000_001, ..package(&binary) }, &keys).unwrap(), a);
        let second = Keys::in_dir(&dir.path().join("keys"), "edgecell-other").unwrap();
        assert_eq!(second.issuer.public_key(), keys.issuer.public_key(), "one issuer for all providers");
        assert_ne!(archive(&package(&binary), &second).unwrap(), a);
    }

    #[tokio::test]
    async fn a_tampered_archive_does_not_pass_the_read_back() {
        use std::io::Read as _;
        let keys = Keys::fresh();
        let binary = b"provider".repeat(100);
        let good = archive(&package(&binary), &keys).unwrap();
        check(&good, &package(&binary), &keys).await.unwrap();
        // read back against other keys than it was signed with
        assert!(check(&good, &package(&binary), &Keys::fresh()).await.is_err());
        // a binary changed after signing no longer has the hash the claims give
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&good[..]).read_to_end(&mut tar).unwrap();
        let at = tar.windows(8).rposition(|w| w == b"provider").unwrap();
        tar[at] ^= 1;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&tar).unwrap();
        let err = check(&gz.finish().unwrap(), &package(&binary), &keys).await.unwrap_err();
        assert!(err.to_string().contains("hash"), "{err}");
    }

    #[test]
    fn key_files_of_the_wrong_kind_or_name_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("issuer.nk"), format!("{}\n", KeyPair::new_service().seed().unwrap())).unwrap();
        let err = Keys::in_dir(dir.path(), "p").err().unwrap().to_string();
        assert!(err.contains("kind A"), "{err}");
        assert!(Keys::in_dir(dir.path(), "../p").is_err());
        std::fs::write(dir.path().join("issuer.nk"), "SAnot a seed\n").unwrap();
        assert!(Keys::in_dir(dir.path(), "p").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn new_keys_are_readable_by_the_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("keys");
        Keys::in_dir(&keys, "p").unwrap();
        assert_eq!(std::fs::metadata(&keys).unwrap().permissions().mode() & 0o777, 0o700);
        for f in ["issuer.nk", "p.nk"] {
            assert_eq!(std::fs::metadata(keys.join(f)).unwrap().permissions().mode() & 0o777, 0o600, "{f}");
        }
    }
}
