//! Bounded pre-validation of the OER encodings this crate hands to `rasn`.
//!
//! rasn 0.28's OER decoder calls `Vec::with_capacity(quantity)` on the untrusted quantity of
//! every SEQUENCE OF before decoding a single element. A crafted quantity therefore makes the
//! allocation fail, which aborts the process (native) or traps the wasm instance, instead of
//! returning an error. The guard here walks the OER encoding of the structures we decode
//! (`Certificate`, `Ieee1609Dot2Data`) following exactly the IEEE 1609.2 / TS 103 097 schema of
//! `rasn-its` 0.28 and rejects, **before** rasn sees the bytes:
//!
//! * any input longer than [`MAX_OER_INPUT`];
//! * any SEQUENCE OF whose quantity times the minimum encoded size of one element exceeds the
//!   bytes that remain (every element we decode needs at least one byte);
//! * any length determinant larger than the bytes that remain;
//! * any construct outside the profile it knows (unknown CHOICE alternatives, unknown or
//!   unsupported extension additions, nesting deeper than [`MAX_NESTING`]).
//!
//! Soundness: the walk makes the same structural decisions as rasn (same preambles, tags,
//! length determinants, fixed sizes, open types) on the same bytes, so every SEQUENCE OF that
//! rasn would reach is first reached and bounded here. Where the walk is unsure it rejects: it
//! may refuse inputs rasn would accept (reported as [`SecurityError::Unsupported`]), but it never
//! lets through a quantity that rasn would pre-allocate beyond the input. Value constraints
//! (enumeration ranges, integer ranges, canonical form) are left to rasn and to the crate's
//! COER round-trip check; they cannot cause allocations.

use crate::error::SecurityError;

/// Hard cap on any OER input (certificate or secured data), bytes.
pub const MAX_OER_INPUT: usize = 64 * 1024;

/// Maximum nesting of `Ieee1609Dot2Data` inside signed data payloads.
pub const MAX_NESTING: u32 = 4;

/// Checks that `bytes` is safe to hand to `rasn::coer::decode::<Certificate>`.
///
/// # Errors
/// [`SecurityError::Malformed`] for truncated or over-long encodings and over-large counts,
/// [`SecurityError::Unsupported`] for constructs outside the supported profile.
pub fn check_certificate(bytes: &[u8]) -> Result<(), SecurityError> {
    let mut r = Reader::new(bytes)?;
    r.certificate()
}

/// Checks that `bytes` is safe to hand to `rasn::coer::decode::<Ieee1609Dot2Data>`.
///
/// # Errors
/// As [`check_certificate`].
pub fn check_ieee1609_dot2_data(bytes: &[u8]) -> Result<(), SecurityError> {
    ieee1609_dot2_data_len(bytes).map(|_| ())
}

/// As [`check_ieee1609_dot2_data`] on the leading `Ieee1609Dot2Data` of `bytes`; its length
/// in bytes (what follows it is not looked at).
///
/// # Errors
/// As [`check_ieee1609_dot2_data`].
pub fn ieee1609_dot2_data_len(bytes: &[u8]) -> Result<usize, SecurityError> {
    let mut r = Reader::new(bytes)?;
    r.data(0)?;
    Ok(bytes.len() - r.b.len())
}

fn malformed(what: &str) -> SecurityError {
    SecurityError::Malformed(format!("oer guard: {what}"))
}

fn unsupported(what: &str) -> SecurityError {
    SecurityError::Unsupported(format!("oer guard: {what}"))
}

struct Reader<'a> {
    b: &'a [u8],
}

/// Preamble of a SEQUENCE: the extension bit (if extensible) and the presence bits.
struct Preamble {
    ext: bool,
    bits: u32,
}

impl Preamble {
    const fn has(&self, i: u32) -> bool {
        self.bits & (1 << i) != 0
    }
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Result<Self, SecurityError> {
        if b.len() > MAX_OER_INPUT {
            return Err(malformed(&format!(
                "{} bytes exceed the {MAX_OER_INPUT}-byte limit",
                b.len()
            )));
        }
        Ok(Self { b })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SecurityError> {
        let (h, t) = self
            .b
            .split_at_checked(n)
            .ok_or_else(|| malformed("truncated"))?;
        self.b = t;
        Ok(h)
    }

    fn byte(&mut self) -> Result<u8, SecurityError> {
        let h = self.take(1)?;
        h.first().copied().ok_or_else(|| malformed("truncated"))
    }

    fn skip(&mut self, n: usize) -> Result<(), SecurityError> {
        self.take(n).map(|_| ())
    }

    /// Unsigned big-endian value of at most 8 bytes.
    fn uint(bytes: &[u8]) -> Result<u64, SecurityError> {
        if bytes.len() > 8 {
            return Err(malformed("integer wider than 64 bits"));
        }
        Ok(bytes.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x)))
    }

    /// OER length determinant, checked against the remaining input.
    fn length(&mut self) -> Result<usize, SecurityError> {
        let first = self.byte()?;
        let n = if first < 0x80 {
            u64::from(first)
        } else {
            let k = usize::from(first & 0x7f);
            if k == 0 {
                return Err(malformed("zero length of length"));
            }
            let v = self.take(k)?;
            Self::uint(v)?
        };
        let n = usize::try_from(n).map_err(|_| malformed("length too large"))?;
        if n > self.b.len() {
            return Err(malformed("length exceeds input"));
        }
        Ok(n)
    }

    /// Length-prefixed content (OCTET STRING, UTF8String, unconstrained INTEGER).
    fn skip_len_prefixed(&mut self) -> Result<(), SecurityError> {
        let n = self.length()?;
        self.skip(n)
    }

    /// An open type (extension addition or extension CHOICE alternative): its content.
    fn open(&mut self) -> Result<Reader<'a>, SecurityError> {
        let n = self.length()?;
        Ok(Reader { b: self.take(n)? })
    }

    /// SEQUENCE OF quantity; rejects a quantity whose elements cannot fit in the rest.
    fn quantity(&mut self, min_elem: usize) -> Result<usize, SecurityError> {
        let k = self.length()?;
        let q = Self::uint(self.take(k)?)?;
        let q = usize::try_from(q).map_err(|_| malformed("SEQUENCE OF quantity too large"))?;
        let need = q
            .checked_mul(min_elem.max(1))
            .ok_or_else(|| malformed("SEQUENCE OF quantity too large"))?;
        if need > self.b.len() {
            return Err(malformed("SEQUENCE OF quantity exceeds input"));
        }
        Ok(q)
    }

    fn seq_of(
        &mut self,
        min_elem: usize,
        mut f: impl FnMut(&mut Self) -> Result<(), SecurityError>,
    ) -> Result<(), SecurityError> {
        let q = self.quantity(min_elem)?;
        for _ in 0..q {
            f(self)?;
        }
        Ok(())
    }

    /// SEQUENCE preamble with `optional` OPTIONAL/DEFAULT root components; presence bit `i`
    /// is component `i` in declaration order.
    fn preamble(&mut self, extensible: bool, optional: u32) -> Result<Preamble, SecurityError> {
        let width = optional + u32::from(extensible);
        let nbytes = width.div_ceil(8) as usize;
        let raw = self.take(nbytes)?;
        let mut all = 0u64;
        for &x in raw {
            all = (all << 8) | u64::from(x);
        }
        let total = (nbytes * 8) as u32;
        let bit = |i: u32| (all >> (total - 1 - i)) & 1 == 1;
        for i in width..total {
            if bit(i) {
                return Err(malformed("preamble padding bits set"));
            }
        }
        let ext = extensible && bit(0);
        let mut bits = 0u32;
        for i in 0..optional {
            if bit(i + u32::from(extensible)) {
                bits |= 1 << i;
            }
        }
        Ok(Preamble { ext, bits })
    }

    /// Extension-addition presence bitmap; only the first `known` additions may be present.
    fn ext_bitmap(&mut self, known: u32) -> Result<u32, SecurityError> {
        let n = self.length()?;
        if n < 1 {
            return Err(malformed("empty extension bitmap"));
        }
        let raw = self.take(n)?;
        let (&unused, bitmap) = raw
            .split_first()
            .ok_or_else(|| malformed("empty extension bitmap"))?;
        if unused > 7 || usize::from(unused) > bitmap.len() * 8 {
            return Err(malformed("bad extension bitmap"));
        }
        let mut present = 0u32;
        for (i, &x) in bitmap.iter().enumerate() {
            for j in 0..8u32 {
                if x & (0x80 >> j) != 0 {
                    let idx = i as u64 * 8 + u64::from(j);
                    if idx >= u64::from(known) {
                        return Err(unsupported("unknown extension addition"));
                    }
                    present |= 1 << idx;
                }
            }
        }
        Ok(present)
    }

    /// CHOICE tag of an automatically tagged type: context class, number below 63.
    fn tag(&mut self) -> Result<u8, SecurityError> {
        let t = self.byte()?;
        if t >> 6 != 0b10 || t & 0x3f == 0x3f {
            return Err(unsupported("CHOICE tag outside the profile"));
        }
        Ok(t & 0x3f)
    }

    fn enumerated(&mut self) -> Result<(), SecurityError> {
        let b = self.byte()?;
        if b >= 0x80 {
            self.skip(usize::from(b & 0x7f))?;
        }
        Ok(())
    }

    // ---- base types -------------------------------------------------------------------

    fn p256_point(&mut self) -> Result<(), SecurityError> {
        match self.tag()? {
            0 | 2 | 3 => self.skip(32),
            1 => Ok(()),
            4 => self.skip(64),
            _ => Err(malformed("EccP256CurvePoint tag")),
        }
    }

    fn p384_point(&mut self) -> Result<(), SecurityError> {
        match self.tag()? {
            0 | 2 | 3 => self.skip(48),
            1 => Ok(()),
            4 => self.skip(96),
            _ => Err(malformed("EccP384CurvePoint tag")),
        }
    }

    fn signature(&mut self) -> Result<(), SecurityError> {
        match self.tag()? {
            0 | 1 => {
                self.p256_point()?;
                self.skip(32)
            }
            2 | 3 => {
                let mut o = self.open()?;
                o.p384_point()?;
                o.skip(48)
            }
            4 => {
                let mut o = self.open()?;
                o.skip(64)
            }
            _ => Err(malformed("Signature tag")),
        }
    }

    fn public_verification_key(&mut self) -> Result<(), SecurityError> {
        match self.tag()? {
            0 | 1 => self.p256_point(),
            2 | 3 => self.open()?.p384_point(),
            4 => self.open()?.p256_point(),
            _ => Err(malformed("PublicVerificationKey tag")),
        }
    }

    fn public_encryption_key(&mut self) -> Result<(), SecurityError> {
        self.enumerated()?; // supportedSymmAlg
        match self.tag()? {
            0 | 1 => self.p256_point(),
            2 => self.open()?.p256_point(),
            _ => Err(malformed("BasePublicEncryptionKey tag")),
        }
    }

    fn symmetric_encryption_key(&mut self) -> Result<(), SecurityError> {
        match self.tag()? {
            0 => self.skip(16),
            1 => self.open()?.skip(16),
            _ => Err(malformed("SymmetricEncryptionKey tag")),
        }
    }

    fn encryption_key(&mut self) -> Result<(), SecurityError> {
        match self.tag()? {
            0 => self.public_encryption_key(),
            1 => self.symmetric_encryption_key(),
            _ => Err(malformed("EncryptionKey tag")),
        }
    }

    fn two_d_location(&mut self) -> Result<(), SecurityError> {
        self.skip(8)
    }

    fn geographic_region(&mut self) -> Result<(), SecurityError> {
        match self.tag()? {
            0 => self.skip(10), // center (8) + radius (2)
            1 => self.seq_of(16, |r| r.skip(16)),
            2 => self.seq_of(8, Self::two_d_location),
            3 => self.seq_of(3, Self::identified_region),
            _ => Err(unsupported("GeographicRegion alternative")),
        }
    }

    fn identified_region(&mut self) -> Result<(), SecurityError> {
        match self.tag()? {
            0 => self.skip(2),
            1 => {
                self.skip(2)?;
                self.seq_of(1, |r| r.skip(1))
            }
            2 => {
                self.skip(2)?;
                self.seq_of(2, |r| {
                    r.skip(1)?;
                    r.seq_of(2, |r| r.skip(2))
                })
            }
            _ => Err(unsupported("IdentifiedRegion alternative")),
        }
    }

    fn psid_ssp(&mut self) -> Result<(), SecurityError> {
        let p = self.preamble(false, 1)?;
        self.skip_len_prefixed()?; // psid
        if p.has(0) {
            match self.tag()? {
                0 => self.skip_len_prefixed()?,
                1 => self.open()?.skip_len_prefixed()?,
                _ => return Err(unsupported("ServiceSpecificPermissions alternative")),
            }
        }
        Ok(())
    }

    fn psid_ssp_range(&mut self) -> Result<(), SecurityError> {
        let p = self.preamble(false, 1)?;
        self.skip_len_prefixed()?; // psid
        if p.has(0) {
            match self.tag()? {
                0 => self.seq_of(1, Self::skip_len_prefixed)?,
                1 => {}
                2 => {
                    let mut o = self.open()?;
                    o.skip_len_prefixed()?;
                    o.skip_len_prefixed()?;
                }
                _ => return Err(unsupported("SspRange alternative")),
            }
        }
        Ok(())
    }

    fn psid_group_permissions(&mut self) -> Result<(), SecurityError> {
        let p = self.preamble(false, 3)?;
        match self.tag()? {
            0 => self.seq_of(2, Self::psid_ssp_range)?,
            1 => {}
            _ => return Err(unsupported("SubjectPermissions alternative")),
        }
        if p.has(0) {
            self.skip_len_prefixed()?; // minChainLength
        }
        if p.has(1) {
            self.skip_len_prefixed()?; // chainLengthRange
        }
        if p.has(2) {
            self.skip(1)?; // eeType
        }
        Ok(())
    }

    // ---- certificates -----------------------------------------------------------------

    fn certificate(&mut self) -> Result<(), SecurityError> {
        let p = self.preamble(false, 1)?;
        self.skip(1)?; // version
        self.enumerated()?; // type
        match self.tag()? {
            0 => self.skip(8)?,
            1 => self.enumerated()?,
            2 | 3 => self.open()?.skip(8)?,
            _ => return Err(unsupported("IssuerIdentifier alternative")),
        }
        self.tbs_certificate()?;
        if p.has(0) {
            self.signature()?;
        }
        Ok(())
    }

    fn tbs_certificate(&mut self) -> Result<(), SecurityError> {
        let p = self.preamble(true, 7)?;
        // id
        match self.tag()? {
            0 => {
                let lp = self.preamble(false, 1)?;
                self.skip(2 + 9)?;
                if lp.has(0) {
                    self.skip(4 + 9)?;
                }
            }
            1 | 2 => self.skip_len_prefixed()?,
            3 => {}
            _ => return Err(unsupported("CertificateId alternative")),
        }
        self.skip(3 + 2)?; // cracaId, crlSeries
        self.skip(4)?; // validityPeriod.start
        match self.tag()? {
            0..=6 => self.skip(2)?,
            _ => return Err(malformed("Duration tag")),
        }
        if p.has(0) {
            self.geographic_region()?;
        }
        if p.has(1) {
            self.skip(1)?; // assuranceLevel
        }
        if p.has(2) {
            self.seq_of(2, Self::psid_ssp)?;
        }
        if p.has(3) {
            self.seq_of(2, Self::psid_group_permissions)?;
        }
        if p.has(4) {
            self.seq_of(2, Self::psid_group_permissions)?;
        }
        // 5: canRequestRollover (NULL, no content)
        if p.has(6) {
            self.public_encryption_key()?;
        }
        match self.tag()? {
            0 => self.public_verification_key()?,
            1 => self.p256_point()?,
            _ => return Err(unsupported("VerificationKeyIndicator alternative")),
        }
        if p.ext {
            // flags, appExtensions, certIssueExtensions, certRequestExtension
            let present = self.ext_bitmap(4)?;
            if present & !1 != 0 {
                return Err(unsupported("certificate extensions (1609.2-2022)"));
            }
            if present & 1 != 0 {
                self.open()?.skip(1)?; // flags: BIT STRING (SIZE (8))
            }
        }
        Ok(())
    }

    // ---- secured data -----------------------------------------------------------------

    fn data(&mut self, depth: u32) -> Result<(), SecurityError> {
        if depth > MAX_NESTING {
            return Err(unsupported("Ieee1609Dot2Data nested too deeply"));
        }
        self.skip(1)?; // protocolVersion
        match self.tag()? {
            0 | 3 => self.skip_len_prefixed(),
            1 => self.signed_data(depth),
            2 => self.encrypted_data(),
            4 => self.open()?.skip_len_prefixed(),
            _ => Err(unsupported("Ieee1609Dot2Content alternative")),
        }
    }

    fn signed_data(&mut self, depth: u32) -> Result<(), SecurityError> {
        self.enumerated()?; // hashId
        // tbsData.payload
        let p = self.preamble(true, 2)?;
        if p.has(0) {
            self.data(depth + 1)?;
        }
        if p.has(1) {
            match self.tag()? {
                0 => self.skip(32)?,
                1 => self.open()?.skip(48)?,
                2 => self.open()?.skip(32)?,
                _ => return Err(unsupported("HashedData alternative")),
            }
        }
        if p.ext {
            let present = self.ext_bitmap(1)?;
            if present & 1 != 0 {
                self.open()?; // omitted: NULL
            }
        }
        self.header_info()?;
        // signer
        match self.tag()? {
            0 => self.skip(8)?,
            1 => self.seq_of(16, Self::certificate)?,
            2 => {}
            _ => return Err(unsupported("SignerIdentifier alternative")),
        }
        self.signature()
    }

    fn header_info(&mut self) -> Result<(), SecurityError> {
        let p = self.preamble(true, 6)?;
        self.skip_len_prefixed()?; // psid
        if p.has(0) {
            self.skip(8)?;
        }
        if p.has(1) {
            self.skip(8)?;
        }
        if p.has(2) {
            self.skip(4 + 4 + 2)?;
        }
        if p.has(3) {
            self.skip(3)?;
        }
        if p.has(4) {
            let m = self.preamble(true, 0)?;
            if m.ext {
                return Err(unsupported("MissingCrlIdentifier extension"));
            }
            self.skip(3 + 2)?;
        }
        if p.has(5) {
            self.encryption_key()?;
        }
        if p.ext {
            // inlineP2pcdRequest, requestedCertificate, pduFunctionalType, contributedExtensions
            let present = self.ext_bitmap(4)?;
            if present & 1 != 0 {
                self.open()?.seq_of(3, |r| r.skip(3))?;
            }
            if present & 2 != 0 {
                self.open()?.certificate()?;
            }
            if present & 4 != 0 {
                self.open()?.skip(1)?;
            }
            if present & 8 != 0 {
                return Err(unsupported("contributedExtensions"));
            }
        }
        Ok(())
    }

    fn symmetric_ciphertext(&mut self) -> Result<(), SecurityError> {
        let body = |r: &mut Self| {
            r.skip(12)?;
            r.skip_len_prefixed()
        };
        match self.tag()? {
            0 => body(self),
            1 => body(&mut self.open()?),
            _ => Err(unsupported("SymmetricCiphertext alternative")),
        }
    }

    fn encrypted_data(&mut self) -> Result<(), SecurityError> {
        self.seq_of(9, |r| match r.tag()? {
            0 => r.skip(8),
            1 => {
                r.skip(8)?;
                r.symmetric_ciphertext()
            }
            2..=4 => {
                r.skip(8)?;
                match r.tag()? {
                    0 | 1 => {
                        r.p256_point()?;
                        r.skip(32)
                    }
                    2 => {
                        let mut o = r.open()?;
                        o.p256_point()?;
                        o.skip(48)
                    }
                    _ => Err(unsupported("EncryptedDataEncryptionKey alternative")),
                }
            }
            _ => Err(malformed("RecipientInfo tag")),
        })?;
        self.symmetric_ciphertext()
    }
}
