//! A minimal, dependency-free UPER reader for the CAM (EN 302 637-2 v1.4.1, protocol version
//! 1–2) fields the validator needs. Used on wasm32, where `c-its-parser` 2.4.2 does not build
//! (it assumes wasm-bindgen on every wasm32 target); natively it is cross-checked against
//! `c-its-parser` on the test vectors.

use crate::error::V2xError;

/// Fields of a CAM up to the high-frequency container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct CamFields {
    pub protocol_version: u8,
    pub station_id: u32,
    pub generation_delta_time: u16,
    pub station_type: u8,
    pub latitude: i32,
    pub longitude: i32,
    pub semi_major: u16,
    pub altitude: i32,
    /// (heading, heading conf, speed, speed conf, length, width, long. accel, yaw rate)
    pub vehicle: Option<VehicleHf>,
}

/// Basic vehicle high-frequency container values (ETSI units).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub struct VehicleHf {
    pub heading: u16,
    pub heading_conf: u8,
    pub speed: u16,
    pub speed_conf: u8,
    pub length: u16,
    pub width: u8,
    pub long_accel: i16,
    pub yaw_rate: i16,
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: u32) -> Result<u64, V2xError> {
        let mut v = 0u64;
        for _ in 0..n {
            let byte = self
                .data
                .get(self.pos / 8)
                .ok_or_else(|| V2xError::Decode("UPER: truncated CAM".into()))?;
            let bit = (byte >> (7 - (self.pos % 8))) & 1;
            v = (v << 1) | u64::from(bit);
            self.pos += 1;
        }
        Ok(v)
    }
    /// Constrained whole number in `lb..=ub`.
    fn int(&mut self, lb: i64, ub: i64) -> Result<i64, V2xError> {
        let range = u64::try_from(ub - lb).unwrap_or(0) + 1;
        let bits = 64 - (range - 1).leading_zeros();
        let v = i64::try_from(self.read(bits)?)
            .map_err(|_| V2xError::Decode("UPER: integer".into()))?;
        let out = lb + v;
        if out > ub {
            return Err(V2xError::Decode("UPER: value out of range".into()));
        }
        Ok(out)
    }
    fn skip(&mut self, n: usize) -> Result<(), V2xError> {
        if self.pos + n > self.data.len() * 8 {
            return Err(V2xError::Decode("UPER: truncated CAM".into()));
        }
        self.pos += n;
        Ok(())
    }
    /// Skips the extension additions of a SEQUENCE whose extension bit was set.
    fn skip_extensions(&mut self) -> Result<(), V2xError> {
        if self.read(1)? != 0 {
            return Err(V2xError::Unsupported("UPER: large extension bitmap".into()));
        }
        let n = usize::try_from(self.read(6)?).unwrap_or(0) + 1;
        let mut present = 0;
        for _ in 0..n {
            present += usize::try_from(self.read(1)?).unwrap_or(0);
        }
        for _ in 0..present {
            let len = if self.read(1)? == 0 {
                self.read(7)?
            } else if self.read(1)? == 0 {
                self.read(14)?
            } else {
                return Err(V2xError::Unsupported("UPER: fragmented open type".into()));
            };
            self.skip(usize::try_from(len).unwrap_or(usize::MAX / 16) * 8)?;
        }
        Ok(())
    }
}

fn narrow<T: TryFrom<i64>>(v: i64) -> Result<T, V2xError> {
    T::try_from(v).map_err(|_| V2xError::Decode("UPER: value out of range".into()))
}

/// Decodes the CAM fields from UPER bytes (no headers).
///
/// # Errors
/// [`V2xError::Decode`] for truncated or invalid input, [`V2xError::Unsupported`] for other
/// message types or extension alternatives.
pub fn decode_cam(bytes: &[u8]) -> Result<CamFields, V2xError> {
    let mut b = Bits {
        data: bytes,
        pos: 0,
    };
    let protocol_version = narrow(b.int(0, 255)?)?;
    let message_id = b.int(0, 255)?;
    let station_id = narrow(b.int(0, 4_294_967_295)?)?;
    if message_id != 2 {
        return Err(V2xError::Unsupported(format!(
            "ITS message id {message_id} (only CAM on this target)"
        )));
    }
    let generation_delta_time = narrow(b.int(0, 65_535)?)?;
    // CamParameters: extension bit + lowFrequency / specialVehicle presence
    let _cp_ext = b.read(1)?;
    b.read(2)?;
    // BasicContainer
    let bc_ext = b.read(1)?;
    let station_type = narrow(b.int(0, 255)?)?;
    let latitude = narrow(b.int(-900_000_000, 900_000_001)?)?;
    let longitude = narrow(b.int(-1_800_000_000, 1_800_000_001)?)?;
    let semi_major = narrow(b.int(0, 4095)?)?;
    b.int(0, 4095)?;
    b.int(0, 3601)?;
    let altitude = narrow(b.int(-100_000, 800_001)?)?;
    b.int(0, 15)?;
    if bc_ext == 1 {
        b.skip_extensions()?;
    }
    // HighFrequencyContainer CHOICE (extensible, 2 root alternatives)
    if b.read(1)? == 1 {
        return Err(V2xError::Unsupported(
            "CAM high-frequency container extension".into(),
        ));
    }
    let vehicle = if b.read(1)? == 0 {
        b.read(7)?; // optional field presence
        let heading = narrow(b.int(0, 3601)?)?;
        let heading_conf = narrow(b.int(1, 127)?)?;
        let speed = narrow(b.int(0, 16_383)?)?;
        let speed_conf = narrow(b.int(1, 127)?)?;
        b.int(0, 2)?; // driveDirection
        let length = narrow(b.int(1, 1023)?)?;
        b.int(0, 4)?;
        let width = narrow(b.int(1, 62)?)?;
        let long_accel = narrow(b.int(-160, 161)?)?;
        b.int(0, 102)?;
        b.int(-1023, 1023)?; // curvature
        b.int(0, 7)?;
        if b.read(1)? == 0 {
            b.int(0, 2)?; // curvatureCalculationMode
        } else {
            return Err(V2xError::Unsupported(
                "curvatureCalculationMode extension".into(),
            ));
        }
        let yaw_rate = narrow(b.int(-32_766, 32_767)?)?;
        b.int(0, 8)?;
        Some(VehicleHf {
            heading,
            heading_conf,
            speed,
            speed_conf,
            length,
            width,
            long_accel,
            yaw_rate,
        })
    } else {
        None
    };
    Ok(CamFields {
        protocol_version,
        station_id,
        generation_delta_time,
        station_type,
        latitude,
        longitude,
        semi_major,
        altitude,
        vehicle,
    })
}
