//! Error types of the crate.

use thiserror::Error;

/// Errors of decoding, configuration and validation.
///
/// The variants mirror the WIT `v2x-error` variant (`decode`, `unsupported`, `too-large`,
/// `invalid-config`); security failures are their own variant so callers can tell them apart.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum V2xError {
    /// The bytes are not valid for the format (ASN.1, OER, JSON).
    #[error("decode error: {0}")]
    Decode(String),
    /// A message type or version this validator does not handle.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The payload exceeds the configured limit (bytes).
    #[error("payload too large: {0} bytes")]
    TooLarge(u64),
    /// Configuration could not be parsed or is inconsistent.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// A security (IEEE 1609.2) failure.
    #[error("security: {0}")]
    Security(#[from] SecurityError),
}

/// Failures of IEEE 1609.2 / ETSI TS 103 097 processing.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SecurityError {
    /// The OER bytes do not decode.
    #[error("malformed OER: {0}")]
    Malformed(String),
    /// The bytes decode but are not the canonical COER encoding of the decoded value.
    #[error("non-canonical encoding")]
    NonCanonical,
    /// Protocol or certificate version other than 3.
    #[error("unsupported version {0}")]
    Version(u8),
    /// An algorithm or structure this implementation does not handle.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The content is not signed data.
    #[error("not signed data")]
    NotSigned,
    /// The public key bytes are not a valid curve point.
    #[error("invalid public key")]
    InvalidKey,
    /// The signature encoding is invalid (r or s out of range).
    #[error("invalid signature encoding")]
    InvalidSignature,
    /// The signature does not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// Signature and key use different algorithms, or hash and curve do not match.
    #[error("algorithm mismatch: {0}")]
    AlgorithmMismatch(String),
    /// The signer (certificate or issuer) is not known.
    #[error("unknown signer {0}")]
    UnknownSigner(String),
    /// A certificate is outside its validity period.
    #[error("certificate {0} expired or not yet valid")]
    Validity(String),
    /// A certificate or message lies outside the permitted region.
    #[error("outside permitted region")]
    Region,
    /// The signer is not permitted to sign this PSID.
    #[error("psid {0} not permitted")]
    Permission(u64),
    /// The generation time is too old or in the future.
    #[error("stale or future message: age {0} ms")]
    Freshness(i64),
    /// The message was seen before (same signer and generation time, or older).
    #[error("replayed message")]
    Replay,
    /// A required header field is missing.
    #[error("missing field: {0}")]
    Missing(&'static str),
    /// The certificate chain is longer than allowed or loops.
    #[error("certificate chain too deep")]
    ChainTooDeep,
    /// A certificate its issuer had no right to issue: the issuer lacks issue permissions for
    /// what it grants, or the validity period reaches outside the issuer's.
    #[error("certificate not permitted by its issuer: {0}")]
    Issuance(String),
}
