//! IEEE 1609.2 / ETSI TS 103 097 security: certificates and signed data in COER, ECDSA over
//! NIST P-256/P-384 and brainpoolP256r1/P384r1 with the 1609.2 construction
//! `e = H( H(tbs) || H(signer certificate or "") )`, HashedId8 digests, chains to configured
//! trust anchors and a verified-certificate cache behind [`CertCache`].
//!
//! An issuer must be allowed to issue what it signs (`certIssuePermissions`: the PSIDs, the
//! SSPs within its `sspRange`, the chain lengths of its groups for tickets at every level
//! above), and a certificate's validity and region must lie within its issuer's. What signed
//! data may say beyond its PSID (special vehicle containers, DENM causes) is checked against
//! the ticket's SSP by the validator ([`crate::ssp`]).

use std::collections::HashMap;

use ecdsa::signature::hazmat::PrehashVerifier;
use rasn_its::ieee1609dot2::base_types::{
    Duration, EccP256CurvePoint, EccP384CurvePoint, GeographicRegion, HashAlgorithm,
    PublicVerificationKey, ServiceSpecificPermissions, Signature as AsnSignature, SspRange,
};
use rasn_its::ieee1609dot2::{
    Certificate, CertificateId, CertificateType, Ieee1609Dot2Content, Ieee1609Dot2Data,
    IssuerIdentifier, PsidGroupPermissions, SequenceOfPsidGroupPermissions, SignerIdentifier, SubjectPermissions,
    VerificationKeyIndicator,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha384};

use crate::error::SecurityError;

/// The low-order eight bytes of a certificate hash (1609.2 6.4.3).
pub type HashedId8 = [u8; 8];

/// Hash algorithms of 1609.2 in use here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HashAlg {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
}

impl HashAlg {
    /// Hash of `data`.
    #[must_use]
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha384 => Sha384::digest(data).to_vec(),
        }
    }
    fn from_asn(h: HashAlgorithm) -> Result<Self, SecurityError> {
        match h {
            HashAlgorithm::Sha256 => Ok(Self::Sha256),
            HashAlgorithm::Sha384 => Ok(Self::Sha384),
            _ => Err(SecurityError::Unsupported("hash algorithm SM3".into())),
        }
    }
}

/// Signature curves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Curve {
    /// NIST P-256 (secp256r1).
    NistP256,
    /// brainpoolP256r1.
    BrainpoolP256r1,
    /// brainpoolP384r1.
    BrainpoolP384r1,
    /// NIST P-384.
    NistP384,
}

impl Curve {
    /// Hash paired with the curve (SHA-256 for 256-bit curves, SHA-384 for 384-bit ones).
    #[must_use]
    pub const fn hash(self) -> HashAlg {
        match self {
            Self::NistP256 | Self::BrainpoolP256r1 => HashAlg::Sha256,
            Self::BrainpoolP384r1 | Self::NistP384 => HashAlg::Sha384,
        }
    }
}

/// A public verification key: curve + SEC1 point bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// Curve.
    pub curve: Curve,
    /// SEC1 encoding (compressed or uncompressed).
    pub sec1: Vec<u8>,
}

/// A parsed verifying key.
#[derive(Debug, Clone)]
pub enum VerifyingKey {
    /// P-256.
    NistP256(p256::ecdsa::VerifyingKey),
    /// brainpoolP256r1.
    BrainpoolP256r1(ecdsa::VerifyingKey<bp256::BrainpoolP256r1>),
    /// brainpoolP384r1.
    BrainpoolP384r1(ecdsa::VerifyingKey<bp384::BrainpoolP384r1>),
    /// P-384.
    NistP384(p384::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// Parses the point.
    ///
    /// # Errors
    /// [`SecurityError::InvalidKey`] when the bytes are not a point on the curve.
    pub fn parse(&self) -> Result<VerifyingKey, SecurityError> {
        let e = |_| SecurityError::InvalidKey;
        Ok(match self.curve {
            Curve::NistP256 => VerifyingKey::NistP256(
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&self.sec1).map_err(e)?,
            ),
            Curve::BrainpoolP256r1 => VerifyingKey::BrainpoolP256r1(
                ecdsa::VerifyingKey::from_sec1_bytes(&self.sec1).map_err(e)?,
            ),
            Curve::BrainpoolP384r1 => VerifyingKey::BrainpoolP384r1(
                ecdsa::VerifyingKey::from_sec1_bytes(&self.sec1).map_err(e)?,
            ),
            Curve::NistP384 => VerifyingKey::NistP384(
                p384::ecdsa::VerifyingKey::from_sec1_bytes(&self.sec1).map_err(e)?,
            ),
        })
    }
}

/// A signature as (curve, r, s) big-endian scalars.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSignature {
    /// Curve.
    pub curve: Curve,
    /// r (the x coordinate of R).
    pub r: Vec<u8>,
    /// s.
    pub s: Vec<u8>,
}

impl VerifyingKey {
    /// Curve of the key.
    #[must_use]
    pub const fn curve(&self) -> Curve {
        match self {
            Self::NistP256(_) => Curve::NistP256,
            Self::BrainpoolP256r1(_) => Curve::BrainpoolP256r1,
            Self::BrainpoolP384r1(_) => Curve::BrainpoolP384r1,
            Self::NistP384(_) => Curve::NistP384,
        }
    }

    /// Verifies `sig` over the 1609.2 signature input `H(tbs) || H(signer)`
    /// ([`signature_input`]), hashing it with the curve's hash.
    ///
    /// On native targets P-256 and P-384 go through ring (about 4× faster than the RustCrypto
    /// curves); the Brainpool curves, and every curve on wasm32, through
    /// [`Self::verify_prehash`]. Both give the same answer and the same error for the same
    /// input (tests check it).
    ///
    /// # Errors
    /// As [`Self::verify_prehash`].
    pub fn verify_input(&self, input: &[u8], sig: &RawSignature) -> Result<(), SecurityError> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let ring_alg: Option<(
                &'static ring::signature::EcdsaVerificationAlgorithm,
                Vec<u8>,
            )> = match self {
                Self::NistP256(k) => Some((
                    &ring::signature::ECDSA_P256_SHA256_FIXED,
                    k.to_sec1_point(false).as_bytes().to_vec(),
                )),
                Self::NistP384(k) => Some((
                    &ring::signature::ECDSA_P384_SHA384_FIXED,
                    k.to_sec1_point(false).as_bytes().to_vec(),
                )),
                Self::BrainpoolP256r1(_) | Self::BrainpoolP384r1(_) => None,
            };
            if let Some((alg, point)) = ring_alg {
                let rs = self.checked_signature_bytes(sig)?;
                return ring::signature::UnparsedPublicKey::new(alg, &point)
                    .verify(input, &rs)
                    .map_err(|_| SecurityError::BadSignature);
            }
        }
        self.verify_prehash(&self.curve().hash().digest(input), sig)
    }

    /// `r || s` once the signature is known to suit the key: same curve, and both scalars in
    /// [1, n) (the RustCrypto parse, so both paths refuse the same signatures the same way).
    #[cfg(not(target_arch = "wasm32"))]
    fn checked_signature_bytes(&self, sig: &RawSignature) -> Result<Vec<u8>, SecurityError> {
        self.check_curve(sig)?;
        let rs = [&sig.r[..], &sig.s[..]].concat();
        let inv = |_| SecurityError::InvalidSignature;
        match self {
            Self::NistP256(_) => drop(p256::ecdsa::Signature::from_slice(&rs).map_err(inv)?),
            Self::NistP384(_) => drop(p384::ecdsa::Signature::from_slice(&rs).map_err(inv)?),
            Self::BrainpoolP256r1(_) | Self::BrainpoolP384r1(_) => {}
        }
        Ok(rs)
    }

    fn check_curve(&self, sig: &RawSignature) -> Result<(), SecurityError> {
        if sig.curve != self.curve() {
            return Err(SecurityError::AlgorithmMismatch(format!(
                "{:?} signature, {:?} key",
                sig.curve,
                self.curve()
            )));
        }
        Ok(())
    }

    /// Verifies `sig` over the prehash `digest` (already `H(H(tbs) || H(signer))`), with the
    /// RustCrypto curve implementations on every target.
    ///
    /// # Errors
    /// [`SecurityError::AlgorithmMismatch`], [`SecurityError::InvalidSignature`] or
    /// [`SecurityError::BadSignature`].
    pub fn verify_prehash(&self, digest: &[u8], sig: &RawSignature) -> Result<(), SecurityError> {
        self.check_curve(sig)?;
        let mut rs = Vec::with_capacity(sig.r.len() + sig.s.len());
        rs.extend_from_slice(&sig.r);
        rs.extend_from_slice(&sig.s);
        let bad = |_| SecurityError::BadSignature;
        let inv = |_| SecurityError::InvalidSignature;
        match self {
            Self::NistP256(k) => k
                .verify_prehash(
                    digest,
                    &p256::ecdsa::Signature::from_slice(&rs).map_err(inv)?,
                )
                .map_err(bad),
            Self::BrainpoolP256r1(k) => k
                .verify_prehash(
                    digest,
                    &ecdsa::Signature::<bp256::BrainpoolP256r1>::from_slice(&rs).map_err(inv)?,
                )
                .map_err(bad),
            Self::BrainpoolP384r1(k) => k
                .verify_prehash(
                    digest,
                    &ecdsa::Signature::<bp384::BrainpoolP384r1>::from_slice(&rs).map_err(inv)?,
                )
                .map_err(bad),
            Self::NistP384(k) => k
                .verify_prehash(
                    digest,
                    &p384::ecdsa::Signature::from_slice(&rs).map_err(inv)?,
                )
                .map_err(bad),
        }
    }
}

fn p256_point(p: &EccP256CurvePoint) -> Result<Vec<u8>, SecurityError> {
    Ok(match p {
        EccP256CurvePoint::CompressedY0(x) => [&[2u8][..], &x[..]].concat(),
        EccP256CurvePoint::CompressedY1(x) => [&[3u8][..], &x[..]].concat(),
        EccP256CurvePoint::Uncompressed(u) => [&[4u8][..], &u.x[..], &u.y[..]].concat(),
        EccP256CurvePoint::XOnly(_) | EccP256CurvePoint::Fill(()) => {
            return Err(SecurityError::InvalidKey);
        }
    })
}

fn p384_point(p: &EccP384CurvePoint) -> Result<Vec<u8>, SecurityError> {
    Ok(match p {
        EccP384CurvePoint::CompressedY0(x) => [&[2u8][..], &x[..]].concat(),
        EccP384CurvePoint::CompressedY1(x) => [&[3u8][..], &x[..]].concat(),
        EccP384CurvePoint::Uncompressed(u) => [&[4u8][..], &u.x[..], &u.y[..]].concat(),
        EccP384CurvePoint::XOnly(_) | EccP384CurvePoint::Fill(()) => {
            return Err(SecurityError::InvalidKey);
        }
    })
}

fn r256(p: &EccP256CurvePoint) -> Result<Vec<u8>, SecurityError> {
    // 1609.2 canonical form of rSig is x-only; other forms are malleable (the y choice is not
    // covered by the signature), so they are rejected.
    match p {
        EccP256CurvePoint::XOnly(x) => Ok(x.to_vec()),
        _ => Err(SecurityError::InvalidSignature),
    }
}

fn r384(p: &EccP384CurvePoint) -> Result<Vec<u8>, SecurityError> {
    match p {
        EccP384CurvePoint::XOnly(x) => Ok(x.to_vec()),
        _ => Err(SecurityError::InvalidSignature),
    }
}

/// Converts a 1609.2 signature.
///
/// # Errors
/// [`SecurityError::Unsupported`] for SM2, [`SecurityError::InvalidSignature`] for a `fill` r.
pub fn raw_signature(sig: &AsnSignature) -> Result<RawSignature, SecurityError> {
    Ok(match sig {
        AsnSignature::EcdsaNistP256(s) => RawSignature {
            curve: Curve::NistP256,
            r: r256(&s.r_sig)?,
            s: s.s_sig.to_vec(),
        },
        AsnSignature::EcdsaBrainpoolP256r1(s) => RawSignature {
            curve: Curve::BrainpoolP256r1,
            r: r256(&s.r_sig)?,
            s: s.s_sig.to_vec(),
        },
        AsnSignature::EcdsaBrainpoolP384r1(s) => RawSignature {
            curve: Curve::BrainpoolP384r1,
            r: r384(&s.r_sig)?,
            s: s.s_sig.to_vec(),
        },
        AsnSignature::EcdsaNistP384(s) => RawSignature {
            curve: Curve::NistP384,
            r: r384(&s.r_sig)?,
            s: s.s_sig.to_vec(),
        },
        _ => return Err(SecurityError::Unsupported("SM2 signature".into())),
    })
}

/// Converts a 1609.2 public verification key.
///
/// # Errors
/// [`SecurityError::Unsupported`] for SM2, [`SecurityError::InvalidKey`] for x-only points.
pub fn public_key(k: &PublicVerificationKey) -> Result<PublicKey, SecurityError> {
    Ok(match k {
        PublicVerificationKey::EcdsaNistP256(p) => PublicKey {
            curve: Curve::NistP256,
            sec1: p256_point(p)?,
        },
        PublicVerificationKey::EcdsaBrainpoolP256r1(p) => PublicKey {
            curve: Curve::BrainpoolP256r1,
            sec1: p256_point(p)?,
        },
        PublicVerificationKey::EcdsaBrainpoolP384r1(p) => PublicKey {
            curve: Curve::BrainpoolP384r1,
            sec1: p384_point(p)?,
        },
        PublicVerificationKey::EcdsaNistP384(p) => PublicKey {
            curve: Curve::NistP384,
            sec1: p384_point(p)?,
        },
        _ => return Err(SecurityError::Unsupported("SM2 key".into())),
    })
}

/// The message 1609.2 signs with ECDSA: `H(tbs) || H(signer_input)` (ECDSA hashes it once more).
#[must_use]
pub fn signature_input(alg: HashAlg, tbs: &[u8], signer_input_hash: &[u8]) -> Vec<u8> {
    let mut m = alg.digest(tbs);
    m.extend_from_slice(signer_input_hash);
    m
}

/// The 1609.2 signature digest: `H( H(tbs) || H(signer_input) )`.
#[must_use]
pub fn signature_digest(alg: HashAlg, tbs: &[u8], signer_input_hash: &[u8]) -> Vec<u8> {
    alg.digest(&signature_input(alg, tbs, signer_input_hash))
}

/// HashedId8 of an encoded certificate with the given whole-certificate hash.
#[must_use]
pub fn hashed_id8(alg: HashAlg, cert_bytes: &[u8]) -> HashedId8 {
    let h = alg.digest(cert_bytes);
    let mut out = [0u8; 8];
    if let Some(tail) = h.get(h.len().saturating_sub(8)..) {
        out.copy_from_slice(tail);
    }
    out
}

fn coer_decode<T: rasn::Decode + rasn::Encode>(bytes: &[u8]) -> Result<T, SecurityError> {
    let v: T = rasn::coer::decode(bytes).map_err(|e| SecurityError::Malformed(e.to_string()))?;
    let again = rasn::coer::encode(&v).map_err(|e| SecurityError::Malformed(e.to_string()))?;
    if again != bytes {
        return Err(SecurityError::NonCanonical);
    }
    Ok(v)
}

fn coer_encode<T: rasn::Encode>(v: &T) -> Result<Vec<u8>, SecurityError> {
    rasn::coer::encode(v).map_err(|e| SecurityError::Malformed(e.to_string()))
}

/// A geographic region of a certificate (degrees; longitudes in [-180, 180]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Region {
    /// Centre and radius (m).
    Circle {
        /// Latitude.
        lat: f64,
        /// Longitude.
        lon: f64,
        /// Radius, m.
        radius_m: f64,
    },
    /// Union of rectangles `(north, west, south, east)`; west > east crosses the antimeridian.
    Rectangles(Vec<(f64, f64, f64, f64)>),
    /// Polygon vertices `(lat, lon)`, edges straight in latitude/longitude.
    Polygon(Vec<(f64, f64)>),
    /// Identified regions (UN M.49 country codes): not placed on the map here.
    Identified {
        /// Whole countries.
        countries: Vec<u16>,
        /// Countries listed with regions or subregions (a part of each).
        #[serde(default)]
        partial: Vec<u16>,
        /// An alternative this build does not read was present.
        #[serde(default)]
        unknown: bool,
    },
}

/// Tolerance for points on a boundary (degrees, about 1 cm).
const ON_EDGE_DEG: f64 = 1e-7;

/// Rectangles `(n, w, s, e)` with the ones crossing the antimeridian split in two.
fn unwrapped(rects: &[(f64, f64, f64, f64)]) -> Vec<(f64, f64, f64, f64)> {
    rects
        .iter()
        .flat_map(|&(n, w, s, e)| if w > e { vec![(n, w, s, 180.0), (n, -180.0, s, e)] } else { vec![(n, w, s, e)] })
        .collect()
}

fn in_rect(&(n, w, s, e): &(f64, f64, f64, f64), lat: f64, lon: f64) -> bool {
    lat <= n + ON_EDGE_DEG && lat >= s - ON_EDGE_DEG && lon >= w - ON_EDGE_DEG && lon <= e + ON_EDGE_DEG
}

fn on_segment(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> bool {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 { (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0) } else { 0.0 };
    let (qx, qy) = (a.0 + t * dx - p.0, a.1 + t * dy - p.1);
    qx * qx + qy * qy <= ON_EDGE_DEG * ON_EDGE_DEG
}

/// Point in polygon, points on an edge counting as inside.
fn in_polygon(poly: &[(f64, f64)], lat: f64, lon: f64) -> bool {
    let n = poly.len();
    let edges = (0..n).filter_map(|i| Some((*poly.get(i)?, *poly.get((i + n - 1) % n)?)));
    let mut inside = false;
    for ((yi, xi), (yj, xj)) in edges {
        if on_segment((lat, lon), (yi, xi), (yj, xj)) {
            return true;
        }
        if (yi > lat) != (yj > lat) && lon < (xj - xi) * (lat - yi) / (yj - yi) + xi {
            inside = !inside;
        }
    }
    inside
}

/// Whether segments ab and cd cross at a point inside both (touching does not count).
fn crosses(a: (f64, f64), b: (f64, f64), c: (f64, f64), d: (f64, f64)) -> bool {
    let orient = |p: (f64, f64), q: (f64, f64), r: (f64, f64)| (q.0 - p.0) * (r.1 - p.1) - (q.1 - p.1) * (r.0 - p.0);
    let (d1, d2, d3, d4) = (orient(c, d, a), orient(c, d, b), orient(a, b, c), orient(a, b, d));
    let eps = 1e-18;
    ((d1 > eps && d2 < -eps) || (d1 < -eps && d2 > eps)) && ((d3 > eps && d4 < -eps) || (d3 < -eps && d4 > eps))
}

fn edges(poly: &[(f64, f64)]) -> impl Iterator<Item = ((f64, f64), (f64, f64))> + '_ {
    let n = poly.len();
    (0..n).filter_map(move |i| Some((*poly.get(i)?, *poly.get((i + 1) % n)?)))
}

fn rect_polygon(&(n, w, s, e): &(f64, f64, f64, f64)) -> Vec<(f64, f64)> {
    vec![(n, w), (n, e), (s, e), (s, w)]
}

/// Whether rectangle `r` lies in the union `outer` (all without antimeridian crossing): every
/// cell of the grid the rectangles' edges cut `r` into has its centre in some outer rectangle.
fn rect_in_union(r: &(f64, f64, f64, f64), outer: &[(f64, f64, f64, f64)]) -> bool {
    let &(n, w, s, e) = r;
    let mut lats = vec![s, n];
    let mut lons = vec![w, e];
    for &(on, ow, os, oe) in outer {
        lats.extend([on, os].into_iter().filter(|v| *v > s && *v < n));
        lons.extend([ow, oe].into_iter().filter(|v| *v > w && *v < e));
    }
    lats.sort_by(f64::total_cmp);
    lons.sort_by(f64::total_cmp);
    lats.windows(2).all(|la| {
        lons.windows(2).all(|lo| {
            let (Some(&la0), Some(&la1), Some(&lo0), Some(&lo1)) = (la.first(), la.get(1), lo.first(), lo.get(1)) else {
                return true;
            };
            let (lat, lon) = (0.5 * (la0 + la1), 0.5 * (lo0 + lo1));
            outer.iter().any(|o| in_rect(o, lat, lon))
        })
    })
}

impl Region {
    /// Whether a point lies inside (boundary included); `None` when this cannot be decided
    /// (identified regions, a non-finite position).
    #[must_use]
    pub fn contains(&self, lat: f64, lon: f64) -> Option<bool> {
        if !(lat.is_finite() && lon.is_finite()) {
            return None;
        }
        match self {
            Self::Circle { lat: clat, lon: clon, radius_m } => Some(crate::geo::haversine_m(*clat, *clon, lat, lon) <= *radius_m * (1.0 + 1e-9)),
            Self::Rectangles(r) => Some(unwrapped(r).iter().any(|rect| in_rect(rect, lat, lon))),
            Self::Polygon(p) => Some(in_polygon(p, lat, lon)),
            Self::Identified { .. } => None,
        }
    }

    /// A circle's bounding rectangles (it lies within them): one, two across the antimeridian,
    /// or a polar cap.
    fn circle_bounds(lat: f64, lon: f64, radius_m: f64) -> Vec<(f64, f64, f64, f64)> {
        let d = radius_m / crate::geo::EARTH_RADIUS_M;
        let dlat = d.to_degrees();
        let (n, s) = (lat + dlat, lat - dlat);
        if n >= 90.0 || s <= -90.0 || lat.to_radians().cos() <= d.sin() {
            return vec![(n.min(90.0), -180.0, s.max(-90.0), 180.0)];
        }
        let dlon = (d.sin() / lat.to_radians().cos()).clamp(-1.0, 1.0).asin().to_degrees();
        let wrap = |x: f64| if x > 180.0 { x - 360.0 } else if x < -180.0 { x + 360.0 } else { x };
        unwrapped(&[(n, wrap(lon - dlon), s, wrap(lon + dlon))])
    }

    /// Whether this region lies within `outer` (1609.2: a certificate's region within its
    /// issuer's). Exact for circles in circles, rectangles in rectangle unions, polygons and
    /// rectangles in polygons (vertices inside, no edges crossing) and anything in a circle
    /// (vertices inside); a circle inside a rectangle union or polygon is judged by its
    /// bounding rectangle (so one hugging the boundary is refused), a polygon inside a union of
    /// several rectangles, and identified regions against geometric ones, are not decided
    /// (`None`). Identified regions: every country, whole or in part, must be a whole country
    /// of `outer`; parts inside parts of a country, and alternatives this build does not read,
    /// are not decided.
    #[must_use]
    pub fn within(&self, outer: &Region) -> Option<bool> {
        // the inner region as polygons it lies within (exactly, but a circle's bounds)
        let inner: Vec<Vec<(f64, f64)>> = match (self, outer) {
            (Self::Circle { lat, lon, radius_m }, Self::Circle { lat: olat, lon: olon, radius_m: orad }) => {
                return Some(crate::geo::haversine_m(*lat, *lon, *olat, *olon) + radius_m <= orad * (1.0 + 1e-9));
            }
            (Self::Identified { countries, partial, unknown }, Self::Identified { countries: whole, partial: parts, .. }) => {
                if *unknown || partial.iter().any(|c| !whole.contains(c) && parts.contains(c)) {
                    return None;
                }
                return Some(countries.iter().chain(partial).all(|c| whole.contains(c)));
            }
            (Self::Identified { .. }, _) | (_, Self::Identified { .. }) => return None,
            (Self::Circle { lat, lon, radius_m }, Self::Rectangles(_) | Self::Polygon(_)) => {
                Self::circle_bounds(*lat, *lon, *radius_m).iter().map(rect_polygon).collect()
            }
            (Self::Rectangles(r), _) => unwrapped(r).iter().map(rect_polygon).collect(),
            (Self::Polygon(p), _) => vec![p.clone()],
        };
        match outer {
            Self::Circle { .. } => Some(inner.iter().flatten().all(|&(la, lo)| outer.contains(la, lo) == Some(true))),
            Self::Rectangles(rs) => {
                let rs = unwrapped(rs);
                let mut all = true;
                for poly in &inner {
                    let rect = match (self, poly.as_slice()) {
                        (Self::Polygon(_), _) => None,
                        (_, [(n, w), _, (s, e), _]) => Some((*n, *w, *s, *e)),
                        _ => None,
                    };
                    all &= match (rect, rs.as_slice()) {
                        (Some(r), _) => rect_in_union(&r, &rs),
                        // a polygon inside one rectangle (convex): its vertices
                        (None, [one]) => poly.iter().all(|&(la, lo)| in_rect(one, la, lo)),
                        (None, _) => return None,
                    };
                }
                Some(all)
            }
            Self::Polygon(op) => Some(inner.iter().all(|poly| {
                poly.iter().all(|&(la, lo)| in_polygon(op, la, lo)) && edges(poly).all(|(a, b)| edges(op).all(|(c, d)| !crosses(a, b, c, d)))
            })),
            Self::Identified { .. } => None,
        }
    }
}

fn deg(v: i32) -> f64 {
    f64::from(v) * 1e-7
}

fn region(r: &GeographicRegion) -> Region {
    match r {
        GeographicRegion::CircularRegion(c) => Region::Circle {
            lat: deg(*c.center.latitude.0),
            lon: deg(*c.center.longitude.0),
            radius_m: f64::from(c.radius),
        },
        GeographicRegion::RectangularRegion(rs) => Region::Rectangles(
            rs.0.iter()
                .map(|r| {
                    (
                        deg(*r.north_west.latitude.0),
                        deg(*r.north_west.longitude.0),
                        deg(*r.south_east.latitude.0),
                        deg(*r.south_east.longitude.0),
                    )
                })
                .collect(),
        ),
        GeographicRegion::PolygonalRegion(p) => Region::Polygon(
            p.0.iter()
                .map(|l| (deg(*l.latitude.0), deg(*l.longitude.0)))
                .collect(),
        ),
        GeographicRegion::IdentifiedRegion(ids) => {
            use rasn_its::ieee1609dot2::base_types::IdentifiedRegion as Id;
            let (mut countries, mut partial, mut unknown) = (Vec::new(), Vec::new(), false);
            for i in &ids.0 {
                match i {
                    Id::CountryOnly(c) => countries.push(c.0),
                    Id::CountryAndRegions(c) => partial.push(c.country_only.0),
                    Id::CountryAndSubregions(c) => partial.push(c.country_only.0),
                    _ => unknown = true,
                }
            }
            Region::Identified { countries, partial, unknown }
        }
        _ => Region::Identified { countries: Vec::new(), partial: Vec::new(), unknown: true },
    }
}

fn duration_s(d: &Duration) -> u64 {
    match d {
        Duration::Microseconds(v) => u64::from(*v) / 1_000_000,
        Duration::Milliseconds(v) => u64::from(*v) / 1_000,
        Duration::Seconds(v) => u64::from(*v),
        Duration::Minutes(v) => u64::from(*v) * 60,
        Duration::Hours(v) => u64::from(*v) * 3_600,
        Duration::SixtyHours(v) => u64::from(*v) * 216_000,
        Duration::Years(v) => u64::from(*v) * 31_556_952,
    }
}

/// What is remembered about a certificate once its signature chain has been verified; this is
/// what a [`CertCache`] stores (serde, so the actor can keep it in the kv-cache).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifiedCert {
    /// HashedId8 of the certificate.
    pub id: HashedId8,
    /// Issuer's HashedId8 (`None` for self-signed).
    pub issuer: Option<HashedId8>,
    /// Subject name (`id.name`), when present.
    pub name: Option<String>,
    /// Verification key.
    pub key: PublicKey,
    /// SHA-256 of the encoded certificate (signer input for SHA-256 signatures).
    pub sha256: Vec<u8>,
    /// SHA-384 of the encoded certificate (signer input for SHA-384 signatures).
    pub sha384: Vec<u8>,
    /// Validity start, TAI seconds since 2004.
    pub valid_from_s: u64,
    /// Validity end, TAI seconds since 2004.
    pub valid_until_s: u64,
    /// PSIDs the certificate may sign (`None` = no app permissions: a CA certificate).
    pub app_psids: Option<Vec<u64>>,
    /// The service specific permissions of its app permissions that carry one (opaque or
    /// bitmap), by PSID (see [`crate::ssp`]). Absent in entries cached before it was
    /// recorded, which therefore grant no special permission until verified again.
    #[serde(default)]
    pub app_ssps: Vec<(u64, Ssp)>,
    /// Region restriction.
    pub region: Option<Region>,
    /// Is a trust anchor.
    pub anchor: bool,
    /// What the certificate may issue (1609.2 `certIssuePermissions`); `None`: it may issue
    /// nothing, as an authorization ticket. Absent in entries cached before it was recorded,
    /// which therefore issue nothing until verified again.
    #[serde(default)]
    pub issue: Option<IssuePermissions>,
    /// What tickets the chain down to this certificate may end in: for this certificate and
    /// each issuer above it (nearest first), the `certIssuePermissions` groups for tickets
    /// (end entity type `app`), their chain lengths as distances from this certificate (see
    /// [`IssueGroup`]). Empty for a ticket.
    #[serde(default)]
    pub issue_levels: Vec<Vec<IssueGroup>>,
    /// HashedId8 of the trust anchor the chain ends at (its own for an anchor). A cached
    /// certificate counts only while this anchor is still configured, so removing an anchor
    /// revokes everything verified under it.
    #[serde(default)]
    pub root: Option<HashedId8>,
}

/// PSIDs a certificate may grant in the certificates it issues: the union of the subject
/// permissions of its `certIssuePermissions` groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IssuePermissions {
    /// `all`: any PSID.
    All,
    /// These PSIDs only.
    Psids(Vec<u64>),
}

impl IssuePermissions {
    fn from_groups(groups: &SequenceOfPsidGroupPermissions) -> Self {
        let mut psids = Vec::new();
        for g in &groups.0 {
            match &g.subject_permissions {
                SubjectPermissions::All(()) => return Self::All,
                SubjectPermissions::Explicit(ranges) => {
                    psids.extend(ranges.0.iter().filter_map(|r| u64::try_from(&r.psid.0).ok()));
                }
                // a future extension of the choice grants nothing we can vouch for
                _ => {}
            }
        }
        Self::Psids(psids)
    }

    fn allows(&self, psid: u64) -> bool {
        match self {
            Self::All => true,
            Self::Psids(p) => p.contains(&psid),
        }
    }

    /// Whether a certificate that `self` issues may carry `sub` as its own issue permissions.
    fn covers(&self, sub: &Self) -> bool {
        match (self, sub) {
            (Self::All, _) => true,
            (Self::Psids(_), Self::All) => false,
            (Self::Psids(_), Self::Psids(p)) => p.iter().all(|&x| self.allows(x)),
        }
    }
}

/// The SSPs an issuer may grant for one PSID (1609.2 `PsidSspRange.sspRange`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SspLimit {
    /// `all`, or no range given: any SSP.
    Any,
    /// One of these opaque values.
    Opaque(Vec<Vec<u8>>),
    /// `bitmapSspRange`: every bit set in `mask` must equal that bit of `value`; the others
    /// are free.
    Bitmap {
        /// required bit values
        value: Vec<u8>,
        /// which bits are constrained
        mask: Vec<u8>,
    },
}

impl SspLimit {
    fn from_range(r: Option<&SspRange>) -> Self {
        match r {
            None | Some(SspRange::All(())) => Self::Any,
            Some(SspRange::Opaque(values)) => Self::Opaque(values.iter().map(|v| v.to_vec()).collect()),
            Some(SspRange::BitmapSspRange(b)) => Self::Bitmap { value: b.ssp_value.to_vec(), mask: b.ssp_bitmask.to_vec() },
            // a future form: no SSP is known to be allowed (and the PSID stays named, so no
            // `all` group covers it instead)
            #[allow(unreachable_patterns)]
            Some(_) => Self::Opaque(Vec::new()),
        }
    }

    /// Whether a certificate may carry `ssp` under this limit (1609.2 §6.4.28–6.4.30): a
    /// missing SSP asks for nothing; an opaque range holds opaque SSPs, a bitmap range bitmap
    /// ones.
    #[must_use]
    pub fn allows(&self, ssp: Option<&Ssp>) -> bool {
        match (self, ssp) {
            (_, None) | (Self::Any, _) => true,
            (Self::Opaque(values), Some(Ssp::Opaque(b))) => values.iter().any(|v| v == b),
            (Self::Bitmap { value, mask }, Some(Ssp::Bitmap(b))) => {
                // a bit past the end of the SSP is absent, so it cannot equal a constrained one
                value.len() == mask.len()
                    && value.iter().zip(mask).enumerate().all(|(i, (v, m))| b.get(i).map_or(*m == 0, |s| (s ^ v) & m == 0))
            }
            (Self::Opaque(_) | Self::Bitmap { .. }, Some(_)) => false,
        }
    }
}

/// A certificate's service specific permissions for one PSID, in the form it carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ssp {
    /// `opaque`
    Opaque(Vec<u8>),
    /// `bitmapSsp`
    Bitmap(Vec<u8>),
}

impl Ssp {
    /// The octets.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::Opaque(b) | Self::Bitmap(b) => b,
        }
    }
}

/// One `certIssuePermissions` group for tickets, as seen from a certificate at or below its
/// holder: a ticket for one of its PSIDs, with an SSP within the PSID's limit, must lie between
/// `min` and `max` certificates below (1609.2 `minChainLength`, `chainLengthRange`; -1 meaning
/// any length: `max` `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueGroup {
    /// The PSIDs and the SSPs it allows for each (`None`: `all`, any PSID no other group of its
    /// holder names).
    pub psids: Option<Vec<(u64, SspLimit)>>,
    /// Fewest certificates down to the ticket.
    pub min: i64,
    /// Most, `None` for any number.
    pub max: Option<i64>,
}

impl IssueGroup {
    /// The group at its holder; `None` for a group without end entity type `app` (it governs
    /// enrolment certificate chains, not tickets).
    ///
    /// # Errors
    /// [`SecurityError::Issuance`] for a minChainLength below 1, which invalidates the
    /// certificate (1609.2), or a range below -1.
    fn from_group(g: &PsidGroupPermissions) -> Result<Option<Self>, SecurityError> {
        let min = i64::try_from(&g.min_chain_length).map_err(|_| SecurityError::Malformed("minChainLength out of range".into()))?;
        let range = i64::try_from(&g.chain_length_range).map_err(|_| SecurityError::Malformed("chainLengthRange out of range".into()))?;
        if min < 1 || range < -1 {
            return Err(SecurityError::Issuance(format!("certIssuePermissions with minChainLength {min}, chainLengthRange {range}")));
        }
        if g.ee_type.0.first().is_some_and(|app| !*app) {
            return Ok(None);
        }
        let psids = match &g.subject_permissions {
            SubjectPermissions::All(()) => None,
            SubjectPermissions::Explicit(ranges) => Some(
                ranges
                    .0
                    .iter()
                    .filter_map(|r| Some((u64::try_from(&r.psid.0).ok()?, SspLimit::from_range(r.ssp_range.as_ref()))))
                    .collect(),
            ),
            // a future form grants nothing we can vouch for
            #[allow(unreachable_patterns)]
            _ => Some(Vec::new()),
        };
        Ok(Some(Self { psids, min, max: (range >= 0).then(|| min.saturating_add(range)) }))
    }

    /// The group seen one certificate further down.
    fn below(&self) -> Self {
        Self { psids: self.psids.clone(), min: self.min - 1, max: self.max.map(|m| m - 1) }
    }
}

/// Checks a ticket issued by `issuer` against every issuer above it: at each level, some group
/// must cover each of the ticket's PSIDs (a group naming the PSID, else an `all` group) and
/// allow both its SSP and its distance down to the ticket, the same group for both.
fn check_ticket_levels(issuer: &VerifiedCert, ticket: &VerifiedCert) -> Result<(), SecurityError> {
    // the ticket is one certificate below its issuer; `below` shifted the levels above
    let fits = |g: &IssueGroup| g.min <= 1 && g.max.is_none_or(|m| m >= 1);
    for &psid in ticket.app_psids.iter().flatten() {
        let ssp = ticket.app_ssps.iter().find(|(p, _)| *p == psid).map(|(_, s)| s);
        for (height, level) in issuer.issue_levels.iter().enumerate() {
            let named: Vec<(&IssueGroup, &SspLimit)> = level
                .iter()
                .flat_map(|g| g.psids.iter().flatten().filter(|(p, _)| *p == psid).map(move |(_, l)| (g, l)))
                .collect();
            let ok = if named.is_empty() {
                level.iter().any(|g| g.psids.is_none() && fits(g))
            } else {
                named.iter().any(|(g, l)| fits(g) && l.allows(ssp))
            };
            if !ok {
                return Err(SecurityError::Issuance(format!(
                    "{} for psid {psid}: no certIssuePermissions group of the issuer {height} level(s) above its own issuer allows its SSP at its chain length",
                    hex::encode(ticket.id)
                )));
            }
        }
    }
    Ok(())
}

impl VerifiedCert {
    fn signer_input_hash(&self, alg: HashAlg) -> &[u8] {
        match alg {
            HashAlg::Sha256 => &self.sha256,
            HashAlg::Sha384 => &self.sha384,
        }
    }
    /// Whether `now_s` (TAI seconds since 2004) lies in the validity period.
    #[must_use]
    pub const fn valid_at(&self, now_s: u64) -> bool {
        now_s >= self.valid_from_s && now_s <= self.valid_until_s
    }
}

/// Cache of verified certificates keyed by HashedId8; the actor backs it with the kv-cache
/// provider so each certificate is verified once.
pub trait CertCache {
    /// A verified certificate.
    fn get(&self, id: &HashedId8) -> Option<VerifiedCert>;
    /// Remembers a verified certificate.
    fn put(&mut self, cert: VerifiedCert);
}

/// In-memory [`CertCache`].
#[derive(Debug, Clone, Default)]
pub struct MemoryCertCache {
    certs: HashMap<HashedId8, VerifiedCert>,
}

impl MemoryCertCache {
    /// Number of certificates.
    #[must_use]
    pub fn len(&self) -> usize {
        self.certs.len()
    }
    /// True when empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }
}

impl CertCache for MemoryCertCache {
    fn get(&self, id: &HashedId8) -> Option<VerifiedCert> {
        self.certs.get(id).cloned()
    }
    fn put(&mut self, cert: VerifiedCert) {
        if self.certs.len() >= 100_000 {
            self.certs.clear();
        }
        self.certs.insert(cert.id, cert);
    }
}

/// A decoded (not yet verified) certificate with the pieces verification needs.
#[derive(Debug, Clone)]
pub struct ParsedCert {
    /// The decoded structure.
    pub cert: Certificate,
    /// Its canonical COER encoding.
    pub bytes: Vec<u8>,
    /// Whole-certificate hash algorithm (from the verification key's curve).
    pub hash: HashAlg,
    /// HashedId8.
    pub id: HashedId8,
}

/// Decodes a certificate (COER), rejecting non-canonical encodings.
///
/// # Errors
/// [`SecurityError::Malformed`], [`SecurityError::NonCanonical`], [`SecurityError::Version`].
pub fn parse_certificate(bytes: &[u8]) -> Result<ParsedCert, SecurityError> {
    crate::oer_guard::check_certificate(bytes)?;
    let cert: Certificate = coer_decode(bytes)?;
    parsed(cert, bytes.to_vec())
}

fn parsed(cert: Certificate, bytes: Vec<u8>) -> Result<ParsedCert, SecurityError> {
    if cert.version != 3 {
        return Err(SecurityError::Version(cert.version));
    }
    let hash = match &cert.to_be_signed.verify_key_indicator {
        VerificationKeyIndicator::VerificationKey(k) => public_key(k)?.curve.hash(),
        _ => HashAlg::Sha256,
    };
    let id = hashed_id8(hash, &bytes);
    Ok(ParsedCert {
        cert,
        bytes,
        hash,
        id,
    })
}

impl ParsedCert {
    /// Issuer digest (`None` for self-signed) and the signature hash algorithm.
    ///
    /// # Errors
    /// [`SecurityError::Unsupported`] for SM3.
    pub fn issuer(&self) -> Result<(Option<HashedId8>, HashAlg), SecurityError> {
        let d = |h: &rasn_its::ieee1609dot2::base_types::HashedId8| {
            let mut o = [0u8; 8];
            o.copy_from_slice(&h.0[..]);
            o
        };
        match &self.cert.issuer {
            IssuerIdentifier::Sha256AndDigest(h) => Ok((Some(d(h)), HashAlg::Sha256)),
            IssuerIdentifier::Sha384AndDigest(h) => Ok((Some(d(h)), HashAlg::Sha384)),
            IssuerIdentifier::VSelf(a) => Ok((None, HashAlg::from_asn(*a)?)),
            _ => Err(SecurityError::Unsupported("SM3 issuer digest".into())),
        }
    }

    /// Verifies the certificate's signature with the issuer (`None` = self-signed), and with an
    /// issuer the 1609.2 issuer rules (`check_issued`), and returns what the cache keeps. Does
    /// not check the validity period at any date (see [`VerifiedCert::valid_at`]).
    ///
    /// # Errors
    /// Any [`SecurityError`] of the chain step.
    pub fn verify(&self, issuer: Option<&VerifiedCert>) -> Result<VerifiedCert, SecurityError> {
        let c = &self.cert;
        if c.r#type != CertificateType::Explicit {
            return Err(SecurityError::Unsupported("implicit certificate".into()));
        }
        let VerificationKeyIndicator::VerificationKey(vk) = &c.to_be_signed.verify_key_indicator
        else {
            return Err(SecurityError::Unsupported(
                "reconstruction value in explicit certificate".into(),
            ));
        };
        let key = public_key(vk)?;
        let sig = raw_signature(
            c.signature
                .as_ref()
                .ok_or(SecurityError::Missing("certificate signature"))?,
        )?;
        let (issuer_id, alg) = self.issuer()?;
        if alg != sig.curve.hash() {
            return Err(SecurityError::AlgorithmMismatch(format!(
                "{alg:?} with {:?}",
                sig.curve
            )));
        }
        let tbs = coer_encode(&c.to_be_signed)?;
        let (signer_key, signer_hash) = match (issuer_id, issuer) {
            (None, _) => (key.parse()?, alg.digest(&[])),
            (Some(id), Some(iss)) if iss.id == id => {
                (iss.key.parse()?, iss.signer_input_hash(alg).to_vec())
            }
            (Some(id), _) => return Err(SecurityError::UnknownSigner(hex::encode(id))),
        };
        signer_key.verify_input(&signature_input(alg, &tbs, &signer_hash), &sig)?;
        let v = self.info(issuer)?;
        if let Some(i) = issuer {
            check_issued(i, &v)?;
        }
        Ok(v)
    }

    /// What a verified certificate would record, WITHOUT checking any signature (for an
    /// issuer given out of band, e.g. `verify-cert --issuer`).
    ///
    /// # Errors
    /// [`SecurityError`] for unsupported keys or issuers.
    pub fn info(&self, issuer: Option<&VerifiedCert>) -> Result<VerifiedCert, SecurityError> {
        let c = &self.cert;
        let VerificationKeyIndicator::VerificationKey(vk) = &c.to_be_signed.verify_key_indicator
        else {
            return Err(SecurityError::Unsupported("implicit certificate".into()));
        };
        let key = public_key(vk)?;
        let (issuer_id, _) = self.issuer()?;
        let vp = &c.to_be_signed.validity_period;
        let from = u64::from(vp.start.0);
        let app_psids = c.to_be_signed.app_permissions.as_ref().map(|ps| {
            ps.0.iter()
                .filter_map(|p| u64::try_from(&p.psid.0).ok())
                .collect::<Vec<_>>()
        });
        let app_ssps = c.to_be_signed.app_permissions.iter().flat_map(|ps| &ps.0).filter_map(|p| {
            let ssp = match p.ssp.as_ref()? {
                ServiceSpecificPermissions::Opaque(o) => Ssp::Opaque(o.to_vec()),
                ServiceSpecificPermissions::BitmapSsp(b) => Ssp::Bitmap(b.0.to_vec()),
                // a future form grants nothing we can read
                #[allow(unreachable_patterns)]
                _ => return None,
            };
            Some((u64::try_from(&p.psid.0).ok()?, ssp))
        });
        let app_ssps = app_ssps.collect();
        let name = match &c.to_be_signed.id {
            CertificateId::Name(n) => Some(n.0.clone()),
            _ => None,
        };
        let own_region = c.to_be_signed.region.as_ref().map(region);
        let issue = c.to_be_signed.cert_issue_permissions.as_ref().map(IssuePermissions::from_groups);
        let mut issue_levels = Vec::new();
        if let Some(groups) = &c.to_be_signed.cert_issue_permissions {
            let own: Vec<IssueGroup> = groups.0.iter().filter_map(|g| IssueGroup::from_group(g).transpose()).collect::<Result<_, _>>()?;
            issue_levels.push(own);
            if let Some(i) = issuer {
                issue_levels.extend(i.issue_levels.iter().map(|level| level.iter().map(IssueGroup::below).collect()));
            }
        }
        Ok(VerifiedCert {
            id: self.id,
            issuer: issuer_id,
            name,
            key,
            sha256: Sha256::digest(&self.bytes).to_vec(),
            sha384: Sha384::digest(&self.bytes).to_vec(),
            valid_from_s: from,
            valid_until_s: from.saturating_add(duration_s(&vp.duration)),
            app_psids,
            app_ssps,
            region: own_region.or_else(|| issuer.and_then(|i| i.region.clone())),
            anchor: issuer_id.is_none(),
            issue,
            issue_levels,
            root: if issuer_id.is_none() { Some(self.id) } else { issuer.and_then(|i| i.root) },
        })
    }
}

/// Verifies one certificate's signature: self-signed when `issuer` is `None`, otherwise with
/// the given issuer certificate (whose own signature is not checked here). This is
/// `edgecell v2x verify-cert CERT.oer [--issuer ISSUER.oer]`; the validity period is reported
/// in the result, not enforced at any date, but with an issuer the 1609.2 issuer rules hold
/// between the two (issue permissions, SSP ranges, chain length and region, validity inside
/// the issuer's); the issuers above the given one are unknown here, so their rules are not
/// checked (a [`TrustStore`] checks them).
///
/// # Errors
/// [`SecurityError`] naming why it does not verify.
pub fn verify_certificate(
    cert: &[u8],
    issuer: Option<&[u8]>,
) -> Result<VerifiedCert, SecurityError> {
    let p = parse_certificate(cert)?;
    match issuer {
        None => p.verify(None),
        Some(i) => {
            let ip = parse_certificate(i)?;
            let info = ip.info(None)?;
            p.verify(Some(&info))
        }
    }
}

/// Result of verifying signed data.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedData {
    /// The unsecured payload carried in `tbsData.payload.data`.
    pub payload: Vec<u8>,
    /// PSID of the header.
    pub psid: u64,
    /// 1609.2 generation time, µs since 2004 (TAI), when present.
    pub generation_time_us: Option<u64>,
    /// 1609.2 expiry time (µs since 2004, TAI), when present: the data is no longer relevant
    /// after it.
    pub expiry_time_us: Option<u64>,
    /// 1609.2 generation location (latitude, longitude in degrees), when present and
    /// available; inside the signer's region (checked).
    pub generation_location: Option<(f64, f64)>,
    /// The signing certificate's HashedId8.
    pub signer: HashedId8,
    /// Signing certificate as verified.
    pub signer_cert: VerifiedCert,
}

/// Trust anchors + policy: verifies certificates and signed data, caching verified
/// certificates in a [`CertCache`] and parsed keys in memory.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    anchors: HashMap<HashedId8, VerifiedCert>,
    /// CA certificates below the anchors (AA, EA) given by configuration, verified the first
    /// time a certificate they issued is checked (COER bytes by id).
    known: HashMap<HashedId8, Vec<u8>>,
    keys: HashMap<HashedId8, VerifyingKey>,
    /// Check certificate validity periods.
    pub check_validity: bool,
    /// Maximum chain length below an anchor.
    pub max_chain_depth: usize,
}

impl TrustStore {
    /// An empty store that checks validity periods.
    #[must_use]
    pub fn new() -> Self {
        Self {
            anchors: HashMap::new(),
            known: HashMap::new(),
            keys: HashMap::new(),
            check_validity: true,
            max_chain_depth: 4,
        }
    }

    /// Adds a self-signed root certificate after verifying its self-signature.
    ///
    /// # Errors
    /// [`SecurityError`] when it does not decode or verify, or is not self-signed.
    pub fn add_anchor(&mut self, cert_bytes: &[u8]) -> Result<VerifiedCert, SecurityError> {
        let v = parse_anchor(cert_bytes)?.verify(None)?;
        self.anchors.insert(v.id, v.clone());
        Ok(v)
    }

    /// As [`Self::add_anchor`] for an anchor whose self-signature was verified before (by an
    /// earlier instance with the same configuration): parsed and trusted, not verified again.
    ///
    /// # Errors
    /// A certificate that does not parse or is not self-signed.
    pub fn add_anchor_verified_before(
        &mut self,
        cert_bytes: &[u8],
    ) -> Result<VerifiedCert, SecurityError> {
        let v = parse_anchor(cert_bytes)?.info(None)?;
        self.anchors.insert(v.id, v.clone());
        Ok(v)
    }

    /// Adds a CA certificate below the anchors (an authorization or enrolment authority, as a
    /// certificate trust list gives them). Nothing is verified here: the certificate is checked
    /// against its issuer (signature, validity, depth) and cached the first time a certificate
    /// it issued is, so a validator built per message (a lattice instance) costs no signature
    /// check for it. Returns its HashedId8.
    ///
    /// # Errors
    /// A certificate that does not parse, or a self-signed one (that is an anchor).
    pub fn add_known_ca(&mut self, cert_bytes: &[u8]) -> Result<HashedId8, SecurityError> {
        let p = parse_certificate(cert_bytes)?;
        if p.issuer()?.0.is_none() {
            return Err(SecurityError::Unsupported(
                "a self-signed certificate is a trust anchor, not a CA below one".into(),
            ));
        }
        self.known.insert(p.id, cert_bytes.to_vec());
        Ok(p.id)
    }

    /// The anchors.
    pub fn anchors(&self) -> impl Iterator<Item = &VerifiedCert> {
        self.anchors.values()
    }

    /// An anchor, or a cached certificate whose chain ends at an anchor still configured.
    fn lookup(&self, id: &HashedId8, cache: &dyn CertCache) -> Option<VerifiedCert> {
        self.anchors.get(id).cloned().or_else(|| {
            cache.get(id).filter(|c| c.root.is_some_and(|r| self.anchors.contains_key(&r)))
        })
    }

    /// Verifies a certificate issued by an anchor or an already verified certificate, checks
    /// the validity period at `now_s` (TAI seconds since 2004) and caches it.
    ///
    /// # Errors
    /// [`SecurityError::UnknownSigner`] when the issuer is unknown, [`SecurityError::Validity`],
    /// [`SecurityError::ChainTooDeep`] or a signature error.
    pub fn add_certificate(
        &self,
        cert_bytes: &[u8],
        now_s: u64,
        cache: &mut dyn CertCache,
    ) -> Result<VerifiedCert, SecurityError> {
        let p = parse_certificate(cert_bytes)?;
        self.verify_parsed(&p, now_s, cache)
    }

    fn verify_parsed(
        &self,
        p: &ParsedCert,
        now_s: u64,
        cache: &mut dyn CertCache,
    ) -> Result<VerifiedCert, SecurityError> {
        self.verify_parsed_below(p, now_s, cache, 0)
    }

    /// As [`Self::verify_parsed`], `hops` certificates below the one that asked (a configured
    /// CA verified on the way); more than the chain depth allows is refused, so configured CAs
    /// that name each other as issuer end.
    fn verify_parsed_below(
        &self,
        p: &ParsedCert,
        now_s: u64,
        cache: &mut dyn CertCache,
        hops: usize,
    ) -> Result<VerifiedCert, SecurityError> {
        if hops > self.max_chain_depth {
            return Err(SecurityError::ChainTooDeep);
        }
        if let Some(v) = self.lookup(&p.id, cache) {
            self.check_time(&v, now_s)?;
            return Ok(v);
        }
        let (issuer_id, _) = p.issuer()?;
        let Some(issuer_id) = issuer_id else {
            return Err(SecurityError::UnknownSigner(format!(
                "untrusted self-signed {}",
                hex::encode(p.id)
            )));
        };
        let issuer = match self.lookup(&issuer_id, cache) {
            Some(i) => i,
            None => {
                let bytes = self
                    .known
                    .get(&issuer_id)
                    .ok_or_else(|| SecurityError::UnknownSigner(hex::encode(issuer_id)))?;
                let ca = parse_certificate(bytes)?;
                self.verify_parsed_below(&ca, now_s, cache, hops + 1)?
            }
        };
        self.check_time(&issuer, now_s)?;
        let v = p.verify(Some(&issuer))?;
        self.check_time(&v, now_s)?;
        // authorities between the certificate and its anchor: the issuer's levels of issue
        // permissions count it and every authority above it (so no walk through the cache,
        // whose entries may have been evicted)
        if issuer.issue_levels.len().saturating_sub(1) > self.max_chain_depth {
            return Err(SecurityError::ChainTooDeep);
        }
        cache.put(v.clone());
        Ok(v)
    }

    fn check_time(&self, c: &VerifiedCert, now_s: u64) -> Result<(), SecurityError> {
        if self.check_validity && !c.valid_at(now_s) {
            return Err(SecurityError::Validity(hex::encode(c.id)));
        }
        Ok(())
    }

    fn key(&mut self, c: &VerifiedCert) -> Result<VerifyingKey, SecurityError> {
        if let Some(k) = self.keys.get(&c.id) {
            return Ok(k.clone());
        }
        let k = c.key.parse()?;
        if self.keys.len() >= 10_000 {
            self.keys.clear();
        }
        self.keys.insert(c.id, k.clone());
        Ok(k)
    }

    /// Verifies `Ieee1609Dot2Data` carrying `signedData` (COER): resolves the signer (digest
    /// from the cache/anchors, or the certificate it carries, verified against its issuer),
    /// checks validity at `now_us` (µs since 2004 TAI) and the signature, and returns the
    /// payload. Freshness and replay are policy and left to the caller
    /// ([`crate::validator::Validator`] does them).
    ///
    /// # Errors
    /// Any [`SecurityError`].
    pub fn verify_signed_data(
        &mut self,
        bytes: &[u8],
        now_us: u64,
        cache: &mut dyn CertCache,
    ) -> Result<VerifiedData, SecurityError> {
        crate::oer_guard::check_ieee1609_dot2_data(bytes)?;
        let data: Ieee1609Dot2Data = coer_decode(bytes)?;
        if data.protocol_version != 3 {
            return Err(SecurityError::Version(data.protocol_version));
        }
        let Ieee1609Dot2Content::SignedData(sd) = &data.content else {
            return Err(SecurityError::NotSigned);
        };
        let alg = HashAlg::from_asn(sd.hash_id)?;
        let now_s = now_us / 1_000_000;
        let signer = match &sd.signer {
            SignerIdentifier::Digest(h) => {
                let mut id = [0u8; 8];
                id.copy_from_slice(&h.0[..]);
                let c = self
                    .lookup(&id, cache)
                    .ok_or_else(|| SecurityError::UnknownSigner(hex::encode(id)))?;
                self.check_time(&c, now_s)?;
                c
            }
            SignerIdentifier::Certificate(certs) => {
                let first = certs
                    .0
                    .first()
                    .ok_or(SecurityError::Missing("signer certificate"))?;
                let enc = coer_encode(first)?;
                let p = parsed(first.clone(), enc)?;
                self.verify_parsed(&p, now_s, cache)?
            }
            _ => return Err(SecurityError::Unsupported("self-signed data".into())),
        };
        let sig = raw_signature(&sd.signature)?;
        if sig.curve.hash() != alg {
            return Err(SecurityError::AlgorithmMismatch(format!(
                "{alg:?} with {:?}",
                sig.curve
            )));
        }
        let tbs = coer_encode(&sd.tbs_data)?;
        let key = self.key(&signer)?;
        key.verify_input(
            &signature_input(alg, &tbs, signer.signer_input_hash(alg)),
            &sig,
        )?;
        let hi = &sd.tbs_data.header_info;
        let psid = u64::try_from(&hi.psid.0)
            .map_err(|_| SecurityError::Malformed("psid out of range".into()))?;
        let payload = match &sd.tbs_data.payload.data {
            Some(Ieee1609Dot2Data {
                content: Ieee1609Dot2Content::UnsecuredData(o),
                ..
            }) => o.0.to_vec(),
            Some(_) => return Err(SecurityError::Unsupported("nested secured payload".into())),
            None => return Err(SecurityError::Missing("payload data")),
        };
        // a certificate without app permissions (a CA) signs no data
        if !signer.app_psids.as_ref().is_some_and(|p| p.contains(&psid)) {
            return Err(SecurityError::Permission(psid));
        }
        // 1609.2: data signed where the certificate is not valid is not valid (a latitude of
        // 900000001 says "unavailable")
        let generation_location = hi
            .generation_location
            .as_ref()
            .filter(|l| (-900_000_000..=900_000_000).contains(&*l.latitude.0) && (-1_800_000_000..=1_800_000_000).contains(&*l.longitude.0))
            .map(|l| (deg(*l.latitude.0), deg(*l.longitude.0)));
        if let (Some((lat, lon)), Some(r)) = (generation_location, &signer.region)
            && r.contains(lat, lon) == Some(false)
        {
            return Err(SecurityError::Region);
        }
        Ok(VerifiedData {
            payload,
            psid,
            generation_location,
            generation_time_us: hi.generation_time.as_ref().map(|t| t.0),
            expiry_time_us: hi.expiry_time.as_ref().map(|t| t.0),
            signer: signer.id,
            signer_cert: signer,
        })
    }
}

/// 1609.2's consistency rules between an issuer and a certificate it signed: the issuer must
/// hold issue permissions covering the PSIDs the certificate may sign and may issue, and the
/// certificate's validity period must lie within the issuer's.
fn check_issued(issuer: &VerifiedCert, sub: &VerifiedCert) -> Result<(), SecurityError> {
    let name = || hex::encode(sub.id);
    let Some(may) = &issuer.issue else {
        return Err(SecurityError::Issuance(format!("{} issued by {}, which may issue nothing", name(), hex::encode(issuer.id))));
    };
    // an issuer recorded without its levels (a form cached before they existed) proves no
    // chain rule: refused rather than trusted
    if issuer.issue_levels.is_empty() {
        return Err(SecurityError::Issuance(format!("{}'s issuer {} was recorded without its issue rules", name(), hex::encode(issuer.id))));
    }
    if let Some(psid) = sub.app_psids.iter().flatten().find(|&&p| !may.allows(p)) {
        return Err(SecurityError::Issuance(format!("{} grants psid {psid}, which its issuer may not", name())));
    }
    // a ticket's PSIDs, SSPs and chain length, against every issuer above it. An authority's
    // own app permissions (e.g. 623 for certificate requests) are not held to the ticket
    // chain lengths: PKIs that give their root a single `all` group two levels deep issue
    // such authorities, and they sign no CAM or DENM
    if sub.app_psids.is_some() && sub.issue.is_none() {
        check_ticket_levels(issuer, sub)?;
    }
    if let Some(own) = &sub.issue
        && !may.covers(own)
    {
        return Err(SecurityError::Issuance(format!("{} may issue more than its issuer", name())));
    }
    if sub.valid_from_s < issuer.valid_from_s || sub.valid_until_s > issuer.valid_until_s {
        return Err(SecurityError::Issuance(format!("{} is valid outside its issuer's validity period", name())));
    }
    // a region of its own must lie within the issuer's (without one it inherits the issuer's,
    // the same value); what cannot be decided is refused
    if let (Some(own), Some(outer)) = (&sub.region, &issuer.region)
        && own != outer
    {
        match own.within(outer) {
            Some(true) => {}
            Some(false) => return Err(SecurityError::Issuance(format!("{}'s region is not within its issuer's", name()))),
            None => return Err(SecurityError::Issuance(format!("{}'s region cannot be shown to lie within its issuer's", name()))),
        }
    }
    Ok(())
}

/// A certificate that may be a trust anchor: parsed, and self-signed.
fn parse_anchor(cert_bytes: &[u8]) -> Result<ParsedCert, SecurityError> {
    let p = parse_certificate(cert_bytes)?;
    if p.issuer()?.0.is_some() {
        return Err(SecurityError::Unsupported(
            "trust anchor must be self-signed".into(),
        ));
    }
    Ok(p)
}

/// 1609.2 data decoded without verifying anything: what it carries and who says they signed
/// it, for reporting on messages whose signature cannot be checked and for reading ahead,
/// never for trust. One decode serves both questions.
#[derive(Debug, Clone)]
pub struct UnverifiedData(Ieee1609Dot2Data);

impl UnverifiedData {
    /// Decodes (after the OER guard); `None` when it does not decode.
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        crate::oer_guard::check_ieee1609_dot2_data(bytes).ok()?;
        rasn::coer::decode(bytes).ok().map(Self)
    }

    /// The unsecured payload (of signed data, or of unsecured data itself).
    #[must_use]
    pub fn payload(&self) -> Option<Vec<u8>> {
        match &self.0.content {
            Ieee1609Dot2Content::SignedData(sd) => match &sd.tbs_data.payload.data {
                Some(Ieee1609Dot2Data {
                    content: Ieee1609Dot2Content::UnsecuredData(o),
                    ..
                }) => Some(o.0.to_vec()),
                _ => None,
            },
            Ieee1609Dot2Content::UnsecuredData(o) => Some(o.0.to_vec()),
            _ => None,
        }
    }

    /// The HashedId8 of the signer of signed data: the digest it names, or the id of the
    /// certificate it carries.
    #[must_use]
    pub fn signer(&self) -> Option<HashedId8> {
        let Ieee1609Dot2Content::SignedData(sd) = &self.0.content else {
            return None;
        };
        match &sd.signer {
            SignerIdentifier::Digest(h) => h.0[..].try_into().ok(),
            SignerIdentifier::Certificate(certs) => {
                let first = certs.0.first()?;
                Some(parsed(first.clone(), coer_encode(first).ok()?).ok()?.id)
            }
            _ => None,
        }
    }
}

/// The unsecured payload of signed data without verifying anything (see [`UnverifiedData`]).
#[must_use]
pub fn unverified_payload(bytes: &[u8]) -> Option<Vec<u8>> {
    UnverifiedData::decode(bytes)?.payload()
}

/// The HashedId8 of the signer of 1609.2 signed data without verifying anything (see
/// [`UnverifiedData`]). `None` when it cannot be read.
#[must_use]
pub fn unverified_signer(bytes: &[u8]) -> Option<HashedId8> {
    UnverifiedData::decode(bytes)?.signer()
}

/// Builders for certificates and signed data with NIST P-256 keys (tests, benchmarks, the
/// attack simulator and tools that need signed traffic).
pub mod build {
    use ecdsa::signature::hazmat::PrehashSigner;
    use rasn::types::{FixedBitString, FixedOctetString, Integer, OctetString};
    use rasn_its::ieee1609dot2::base_types::{
        BitmapSsp, BitmapSspRange, CircularRegion, CrlSeries, EcdsaP256Signature, PsidSspRange, SequenceOfPsidSspRange, SspRange, Elevation, GeographicRegion, HashedId3, Hostname, IdentifiedRegion, Latitude, Longitude,
        SequenceOfIdentifiedRegion, UnCountryId,
        NinetyDegreeInt, OneEightyDegreeInt, Opaque, Psid, PsidSsp, SequenceOfPsidSsp, ThreeDLocation, Time32, Time64, TwoDLocation,
        ValidityPeriod,
    };
    use rasn_its::ieee1609dot2::{
        CertificateBase, EndEntityType, ExplicitCertificate, HeaderInfo, PsidGroupPermissions,
        SequenceOfCertificate, SequenceOfPsidGroupPermissions, SignedData, SignedDataPayload,
        SubjectPermissions, ToBeSignedCertificate, ToBeSignedData,
    };

    use super::{
        AsnSignature, Certificate, CertificateId, CertificateType, Duration, EccP256CurvePoint,
        HashAlg, HashAlgorithm, HashedId8, Ieee1609Dot2Content, Ieee1609Dot2Data, IssuerIdentifier,
        PublicVerificationKey, SecurityError, ServiceSpecificPermissions, SignerIdentifier, VerificationKeyIndicator,
        coer_encode, hashed_id8, signature_digest,
    };

    /// A P-256 signing identity: key + its encoded certificate.
    #[derive(Debug, Clone)]
    pub struct P256Identity {
        /// Private key.
        pub key: p256::ecdsa::SigningKey,
        /// COER-encoded certificate.
        pub cert: Vec<u8>,
        /// HashedId8 of the certificate.
        pub id: HashedId8,
    }

    fn err<E: core::fmt::Display>(e: E) -> SecurityError {
        SecurityError::Malformed(e.to_string())
    }

    fn point(key: &p256::ecdsa::SigningKey) -> Result<EccP256CurvePoint, SecurityError> {
        let enc = key.verifying_key().to_sec1_point(true);
        let bytes = enc.as_bytes();
        let x: [u8; 32] = bytes
            .get(1..33)
            .and_then(|s| s.try_into().ok())
            .ok_or(SecurityError::InvalidKey)?;
        Ok(match bytes.first() {
            Some(2) => EccP256CurvePoint::CompressedY0(FixedOctetString::from(x)),
            Some(3) => EccP256CurvePoint::CompressedY1(FixedOctetString::from(x)),
            _ => return Err(SecurityError::InvalidKey),
        })
    }

    fn sign(key: &p256::ecdsa::SigningKey, digest: &[u8]) -> Result<AsnSignature, SecurityError> {
        let sig: p256::ecdsa::Signature = key.sign_prehash(digest).map_err(err)?;
        let bytes = sig.to_bytes();
        let r: [u8; 32] = bytes
            .get(..32)
            .and_then(|s| s.try_into().ok())
            .ok_or(SecurityError::InvalidSignature)?;
        let s: [u8; 32] = bytes
            .get(32..)
            .and_then(|s| s.try_into().ok())
            .ok_or(SecurityError::InvalidSignature)?;
        Ok(AsnSignature::EcdsaNistP256(EcdsaP256Signature {
            r_sig: EccP256CurvePoint::XOnly(FixedOctetString::from(r)),
            s_sig: FixedOctetString::from(s),
        }))
    }

    /// A signing key from 32 seed bytes (deterministic; tests and simulators).
    ///
    /// # Errors
    /// [`SecurityError::InvalidKey`] when the bytes are not a valid scalar.
    pub fn key_from_seed(seed: [u8; 32]) -> Result<p256::ecdsa::SigningKey, SecurityError> {
        p256::ecdsa::SigningKey::from_slice(&seed).map_err(|_| SecurityError::InvalidKey)
    }

    /// Issues an explicit P-256 certificate for `subject_key`, signed by `issuer` (or self-signed).
    /// `app_psids` empty = a CA certificate (issue permissions for all).
    ///
    /// # Errors
    /// Encoding or key errors.
    pub fn certificate(
        name: &str,
        subject_key: &p256::ecdsa::SigningKey,
        issuer: Option<&P256Identity>,
        valid_from_s: u32,
        valid_hours: u16,
        app_psids: &[u64],
    ) -> Result<P256Identity, SecurityError> {
        certificate_in(name, subject_key, issuer, valid_from_s, valid_hours, app_psids, None)
    }

    fn two_d(lat: f64, lon: f64) -> Result<TwoDLocation, SecurityError> {
        let tenth_micro = |v: f64, max: f64| {
            let x = (v * 1e7).round();
            #[allow(clippy::cast_possible_truncation)]
            (x.abs() <= max).then_some(x as i32).ok_or_else(|| err(format!("coordinate {v} out of range")))
        };
        let lat = NinetyDegreeInt::new(tenth_micro(lat, 9e8)?).ok_or_else(|| err("latitude out of range"))?;
        Ok(TwoDLocation { latitude: Latitude(lat), longitude: Longitude(OneEightyDegreeInt(tenth_micro(lon, 1.8e9)?)) })
    }

    /// A circular certificate region: centre in degrees, radius in metres.
    ///
    /// # Errors
    /// Coordinates out of range.
    pub fn circle(lat: f64, lon: f64, radius_m: u16) -> Result<GeographicRegion, SecurityError> {
        Ok(GeographicRegion::CircularRegion(CircularRegion { center: two_d(lat, lon)?, radius: radius_m }))
    }

    /// An identified certificate region: whole countries (UN M.49 codes).
    #[must_use]
    pub fn countries(codes: &[u16]) -> GeographicRegion {
        GeographicRegion::IdentifiedRegion(SequenceOfIdentifiedRegion(codes.iter().map(|c| IdentifiedRegion::CountryOnly(UnCountryId(*c))).collect()))
    }

    /// As [`certificate`], restricted to `region` (see [`circle`], [`countries`]).
    ///
    /// # Errors
    /// Encoding or key errors.
    pub fn certificate_in(
        name: &str,
        subject_key: &p256::ecdsa::SigningKey,
        issuer: Option<&P256Identity>,
        valid_from_s: u32,
        valid_hours: u16,
        app_psids: &[u64],
        region: Option<GeographicRegion>,
    ) -> Result<P256Identity, SecurityError> {
        let app: Vec<(u64, Option<&[u8]>)> = app_psids.iter().map(|&p| (p, None)).collect();
        certificate_with_ssp(name, subject_key, issuer, valid_from_s, valid_hours, &app, region)
    }

    /// As [`certificate_in`], each app permission with a bitmap SSP when given (see
    /// [`crate::ssp`]).
    ///
    /// # Errors
    /// Encoding or key errors.
    pub fn certificate_with_ssp(
        name: &str,
        subject_key: &p256::ecdsa::SigningKey,
        issuer: Option<&P256Identity>,
        valid_from_s: u32,
        valid_hours: u16,
        app: &[(u64, Option<&[u8]>)],
        region: Option<GeographicRegion>,
    ) -> Result<P256Identity, SecurityError> {
        // a CA: any PSID, at any depth above the ticket
        let cert_issue_permissions = if app.is_empty() {
            Some(SequenceOfPsidGroupPermissions(vec![
                PsidGroupPermissions::builder()
                    .subject_permissions(SubjectPermissions::All(()))
                    .chain_length_range(Integer::from(-1))
                    .build(),
            ]))
        } else {
            None
        };
        issue_certificate(name, subject_key, issuer, valid_from_s, valid_hours, app_permissions(app), cert_issue_permissions, region)
    }

    /// `appPermissions` for these PSIDs, each with a bitmap SSP when given; `None` for none.
    fn app_permissions(app: &[(u64, Option<&[u8]>)]) -> Option<SequenceOfPsidSsp> {
        (!app.is_empty()).then(|| {
            SequenceOfPsidSsp(
                app.iter()
                    .map(|(p, ssp)| PsidSsp {
                        psid: Psid(Integer::from(*p)),
                        ssp: ssp.map(|b| ServiceSpecificPermissions::BitmapSsp(BitmapSsp(OctetString::from_slice(b)))),
                    })
                    .collect(),
            )
        })
    }

    /// A bitmap SSP range: `sspValue`, `sspBitmask`.
    pub type BitmapRange<'a> = (&'a [u8], &'a [u8]);

    /// One `certIssuePermissions` group of [`authority_with_groups`].
    #[derive(Debug, Clone, Copy)]
    pub struct Group<'a> {
        /// PSIDs with a bitmap SSP range each (`None`: any SSP); `None`: `all`.
        pub psids: Option<&'a [(u64, Option<BitmapRange<'a>>)]>,
        /// (minChainLength, chainLengthRange)
        pub chain: (i64, i64),
        /// end entity type `app` (else `enrol` only)
        pub app: bool,
    }

    /// A CA certificate that may issue only `ranges`: per PSID, any SSP (`None`) or those
    /// matching a bitmap range (`sspValue`, `sspBitmask`), for tickets `chain` = (min, range)
    /// certificates below it (1609.2 `minChainLength`, `chainLengthRange`; -1: any).
    ///
    /// # Errors
    /// Encoding or key errors.
    pub fn authority_with_ranges(
        name: &str,
        subject_key: &p256::ecdsa::SigningKey,
        issuer: Option<&P256Identity>,
        valid_from_s: u32,
        valid_hours: u16,
        ranges: &[(u64, Option<BitmapRange<'_>>)],
        chain: (i64, i64),
    ) -> Result<P256Identity, SecurityError> {
        authority_with_groups(name, subject_key, issuer, valid_from_s, valid_hours, &[Group { psids: Some(ranges), chain, app: true }], &[])
    }

    /// A CA certificate with these `certIssuePermissions` groups, that may also sign data for
    /// `app_psids` itself (as an authority's certificate-request PSID 623).
    ///
    /// # Errors
    /// Encoding or key errors.
    pub fn authority_with_groups(
        name: &str,
        subject_key: &p256::ecdsa::SigningKey,
        issuer: Option<&P256Identity>,
        valid_from_s: u32,
        valid_hours: u16,
        groups: &[Group<'_>],
        app_psids: &[u64],
    ) -> Result<P256Identity, SecurityError> {
        let app: Vec<(u64, Option<&[u8]>)> = app_psids.iter().map(|&p| (p, None)).collect();
        let groups = groups
            .iter()
            .map(|g| {
                let subject = match g.psids {
                    None => SubjectPermissions::All(()),
                    Some(ranges) => SubjectPermissions::Explicit(SequenceOfPsidSspRange(
                        ranges
                            .iter()
                            .map(|(psid, r)| PsidSspRange {
                                psid: Psid(Integer::from(*psid)),
                                ssp_range: r.map(|(value, mask)| {
                                    SspRange::BitmapSspRange(BitmapSspRange { ssp_value: OctetString::from_slice(value), ssp_bitmask: OctetString::from_slice(mask) })
                                }),
                            })
                            .collect(),
                    )),
                };
                let ee = if g.app { EndEntityType::APP } else { EndEntityType::ENROLL };
                PsidGroupPermissions::builder()
                    .subject_permissions(subject)
                    .min_chain_length(Integer::from(g.chain.0))
                    .chain_length_range(Integer::from(g.chain.1))
                    .ee_type(EndEntityType(FixedBitString::new([ee, 0, 0, 0, 0, 0, 0, 0])))
                    .build()
            })
            .collect();
        issue_certificate(name, subject_key, issuer, valid_from_s, valid_hours, app_permissions(&app), Some(SequenceOfPsidGroupPermissions(groups)), None)
    }

    #[allow(clippy::too_many_arguments)]
    fn issue_certificate(
        name: &str,
        subject_key: &p256::ecdsa::SigningKey,
        issuer: Option<&P256Identity>,
        valid_from_s: u32,
        valid_hours: u16,
        app_permissions: Option<SequenceOfPsidSsp>,
        cert_issue_permissions: Option<SequenceOfPsidGroupPermissions>,
        region: Option<GeographicRegion>,
    ) -> Result<P256Identity, SecurityError> {
        let tbs = ToBeSignedCertificate::builder()
            .id(CertificateId::Name(Hostname(name.into())))
            .craca_id(HashedId3(FixedOctetString::from([0u8; 3])))
            .crl_series(CrlSeries(0))
            .validity_period(ValidityPeriod {
                start: Time32(valid_from_s),
                duration: Duration::Hours(valid_hours),
            })
            .maybe_app_permissions(app_permissions)
            .maybe_cert_issue_permissions(cert_issue_permissions)
            .maybe_region(region)
            .verify_key_indicator(VerificationKeyIndicator::VerificationKey(
                PublicVerificationKey::EcdsaNistP256(point(subject_key)?),
            ))
            .build()
            .map_err(err)?;
        let tbs_bytes = coer_encode(&tbs)?;
        let (issuer_id, signer_hash, signing_key) = match issuer {
            Some(i) => (
                IssuerIdentifier::Sha256AndDigest(rasn_its::ieee1609dot2::base_types::HashedId8(
                    FixedOctetString::from(i.id),
                )),
                HashAlg::Sha256.digest(&i.cert),
                &i.key,
            ),
            None => (
                IssuerIdentifier::VSelf(HashAlgorithm::Sha256),
                HashAlg::Sha256.digest(&[]),
                subject_key,
            ),
        };
        let signature = sign(
            signing_key,
            &signature_digest(HashAlg::Sha256, &tbs_bytes, &signer_hash),
        )?;
        let base = CertificateBase::builder()
            .r#type(CertificateType::Explicit)
            .issuer(issuer_id)
            .to_be_signed(tbs)
            .signature(signature)
            .build();
        let cert: Certificate = ExplicitCertificate::new(base).map_err(err)?.into();
        let bytes = coer_encode(&cert)?;
        let id = hashed_id8(HashAlg::Sha256, &bytes);
        Ok(P256Identity {
            key: subject_key.clone(),
            cert: bytes,
            id,
        })
    }

    /// Signs `payload` as 1609.2 signed data (COER) with `psid` and a generation time (µs since
    /// 2004 TAI); the signer is given as digest, or as the full certificate when `with_cert`.
    ///
    /// # Errors
    /// Encoding errors.
    pub fn signed_data(
        signer: &P256Identity,
        payload: &[u8],
        psid: u64,
        generation_time_us: u64,
        with_cert: bool,
    ) -> Result<Vec<u8>, SecurityError> {
        signed_data_at(signer, payload, psid, generation_time_us, with_cert, None)
    }

    /// As [`signed_data`], with a generation location (degrees) in the header.
    ///
    /// # Errors
    /// Encoding errors, coordinates out of range.
    pub fn signed_data_at(
        signer: &P256Identity,
        payload: &[u8],
        psid: u64,
        generation_time_us: u64,
        with_cert: bool,
        location: Option<(f64, f64)>,
    ) -> Result<Vec<u8>, SecurityError> {
        signed_data_with(signer, payload, psid, generation_time_us, with_cert, location, None)
    }

    /// As [`signed_data_at`], with an expiry time (µs since 2004 TAI) in the header.
    ///
    /// # Errors
    /// Encoding errors, coordinates out of range.
    pub fn signed_data_with(
        signer: &P256Identity,
        payload: &[u8],
        psid: u64,
        generation_time_us: u64,
        with_cert: bool,
        location: Option<(f64, f64)>,
        expiry_time_us: Option<u64>,
    ) -> Result<Vec<u8>, SecurityError> {
        let location = match location {
            Some((lat, lon)) => {
                let l = two_d(lat, lon)?;
                Some(ThreeDLocation { latitude: l.latitude, longitude: l.longitude, elevation: Elevation(0) })
            }
            None => None,
        };
        let inner = Ieee1609Dot2Data {
            protocol_version: 3,
            content: Ieee1609Dot2Content::UnsecuredData(Opaque(OctetString::from(
                payload.to_vec(),
            ))),
        };
        let header_info = HeaderInfo::builder()
            .psid(Psid(Integer::from(psid)))
            .generation_time(Time64(generation_time_us))
            .maybe_generation_location(location)
            .maybe_expiry_time(expiry_time_us.map(Time64))
            .build();
        let tbs = ToBeSignedData {
            payload: SignedDataPayload::builder()
                .data(inner)
                .build()
                .map_err(err)?,
            header_info,
        };
        let tbs_bytes = coer_encode(&tbs)?;
        let signature = sign(
            &signer.key,
            &signature_digest(
                HashAlg::Sha256,
                &tbs_bytes,
                &HashAlg::Sha256.digest(&signer.cert),
            ),
        )?;
        let signer_id = if with_cert {
            crate::oer_guard::check_certificate(&signer.cert)?;
            let cert: Certificate = rasn::coer::decode(&signer.cert).map_err(err)?;
            SignerIdentifier::Certificate(SequenceOfCertificate(vec![cert]))
        } else {
            SignerIdentifier::Digest(rasn_its::ieee1609dot2::base_types::HashedId8(
                FixedOctetString::from(signer.id),
            ))
        };
        let sd = SignedData {
            hash_id: HashAlgorithm::Sha256,
            tbs_data: tbs,
            signer: signer_id,
            signature,
        };
        coer_encode(&Ieee1609Dot2Data {
            protocol_version: 3,
            content: Ieee1609Dot2Content::SignedData(Box::new(sd)),
        })
    }

    /// A root CA → authorization authority → authorization ticket chain of P-256 certificates
    /// (keys from seeds 1, 2 and 3), the AT allowed to sign CAMs (PSID 36). Benchmarks, tests
    /// and the kernels use it as their signed-traffic fixture.
    #[derive(Debug, Clone)]
    pub struct CamChain {
        /// Self-signed root (valid 10,000 h from the start).
        pub root: P256Identity,
        /// Issued by the root (10,000 h).
        pub aa: P256Identity,
        /// Issued by the AA (100 h), PSID 36.
        pub at: P256Identity,
    }

    impl CamChain {
        /// The chain, valid from `start_s` (seconds since 2004 TAI).
        ///
        /// # Errors
        /// Encoding or key errors.
        pub fn new(start_s: u32) -> Result<Self, SecurityError> {
            let root = certificate("root", &key_from_seed([1; 32])?, None, start_s, 10_000, &[])?;
            let aa = certificate(
                "aa",
                &key_from_seed([2; 32])?,
                Some(&root),
                start_s,
                10_000,
                &[],
            )?;
            let at = certificate(
                "at",
                &key_from_seed([3; 32])?,
                Some(&aa),
                start_s,
                100,
                &[36],
            )?;
            Ok(Self { root, aa, at })
        }

        /// A validator `[security]` section trusting the root.
        #[must_use]
        pub fn trust_toml(&self) -> String {
            trust_toml(&self.root, &[])
        }

        /// [`Self::trust_toml`] that also names the AA as a CA certificate, so a validator
        /// configured with it alone verifies messages carrying the AT.
        #[must_use]
        pub fn trust_toml_with_aa(&self) -> String {
            trust_toml(&self.root, &[&self.aa])
        }
    }

    /// A validator `[security]` section trusting `anchor`, with `cas` as CA certificates (as a
    /// certificate trust list would give them).
    #[must_use]
    pub fn trust_toml(anchor: &P256Identity, cas: &[&P256Identity]) -> String {
        let mut toml = format!("[security]\ntrust_anchors_hex = [\"{}\"]\n", hex::encode(&anchor.cert));
        if !cas.is_empty() {
            let list: Vec<String> = cas.iter().map(|c| format!("\"{}\"", hex::encode(&c.cert))).collect();
            toml.push_str(&format!("ca_certificates_hex = [{}]\n", list.join(", ")));
        }
        toml
    }
}

#[cfg(test)]
mod tests {
    use super::IssuePermissions::{All, Psids};

    #[test]
    fn issue_permissions_cover_only_what_they_list() {
        let cam_denm = Psids(vec![36, 37]);
        assert!(cam_denm.allows(36) && cam_denm.allows(37) && !cam_denm.allows(639));
        assert!(All.allows(639));
        assert!(cam_denm.covers(&Psids(vec![37])) && cam_denm.covers(&Psids(vec![])));
        assert!(!cam_denm.covers(&Psids(vec![36, 639])));
        assert!(!cam_denm.covers(&All));
        assert!(All.covers(&All) && All.covers(&cam_denm));
        assert!(!Psids(vec![]).allows(36));
    }

    #[test]
    fn ssp_limits_follow_1609_2() {
        use super::{Ssp, SspLimit};
        let (o, b) = (|v: &[u8]| Ssp::Opaque(v.to_vec()), |v: &[u8]| Ssp::Bitmap(v.to_vec()));
        let opaque = SspLimit::Opaque(vec![vec![1, 2], vec![3]]);
        assert!(opaque.allows(Some(&o(&[3]))) && opaque.allows(Some(&o(&[1, 2]))) && opaque.allows(None));
        assert!(!opaque.allows(Some(&o(&[1]))) && !opaque.allows(Some(&o(&[1, 2, 0]))));
        assert!(!opaque.allows(Some(&b(&[3]))), "a bitmap SSP under an opaque range");
        let bitmap = SspLimit::Bitmap { value: vec![1, 0x80], mask: vec![0xff, 0x80] };
        assert!(bitmap.allows(Some(&b(&[1, 0xff]))) && bitmap.allows(Some(&b(&[1, 0x80, 7]))));
        assert!(!bitmap.allows(Some(&b(&[1, 0x7f]))) && !bitmap.allows(Some(&b(&[1]))) && !bitmap.allows(Some(&b(&[2, 0x80]))));
        assert!(!bitmap.allows(Some(&o(&[1, 0xff]))), "an opaque SSP under a bitmap range");
        assert!(!SspLimit::Bitmap { value: vec![1], mask: vec![0xff, 0] }.allows(Some(&b(&[1, 0]))), "value and mask differ in length");
        assert!(SspLimit::Any.allows(Some(&o(&[9; 31]))) && SspLimit::Any.allows(Some(&b(&[9; 31]))));
    }
}
