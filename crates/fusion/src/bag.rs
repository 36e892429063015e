//! A small ROS1 bag (format 2.0) reader: uncompressed and bz2 chunks, plus decoders for
//! `sensor_msgs/Imu`, `nav_msgs/Odometry` and `sensor_msgs/NavSatFix`.

use std::io::Read;

use crate::error::{FusionError, Result};
use crate::localizer::{Header, ImuMessage, NavSatFixMessage, OdometryMessage};

const MAGIC: &[u8] = b"#ROSBAG V2.0\n";
const OP_MSG_DATA: u8 = 0x02;
const OP_CHUNK: u8 = 0x05;
const OP_CONNECTION: u8 = 0x07;
/// Largest chunk we agree to decompress (guards against decompression bombs).
const MAX_CHUNK: usize = 256 * 1024 * 1024;
/// How many times its own size a bag's compressed chunks may unpack to in all (at least
/// [`MAX_CHUNK`]): sensor data compresses by far less.
const UNPACK_RATIO: usize = 64;

/// A topic in the bag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// connection id
    pub id: u32,
    /// topic name
    pub topic: String,
    /// message type, e.g. `sensor_msgs/Imu`
    pub msg_type: String,
}

/// One serialised message.
#[derive(Debug, Clone, PartialEq)]
pub struct BagMessage {
    /// connection id
    pub conn: u32,
    /// receive (record) time (s)
    pub record_time: f64,
    /// serialised message
    pub data: Vec<u8>,
}

/// Everything read from a bag.
#[derive(Debug, Clone, Default)]
pub struct Bag {
    /// connections (topics)
    pub connections: Vec<Connection>,
    /// messages in file order
    pub messages: Vec<BagMessage>,
}

impl Bag {
    /// Connection for an id.
    #[must_use]
    pub fn connection(&self, id: u32) -> Option<&Connection> {
        self.connections.iter().find(|c| c.id == id)
    }

    /// Parses a bag held in memory.
    ///
    /// # Errors
    /// [`FusionError::Parse`] on a bad magic, truncated records, unknown compression.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let body = bytes.strip_prefix(MAGIC).ok_or_else(|| FusionError::Parse("not a ROS bag v2.0".into()))?;
        let mut bag = Bag::default();
        let mut unpack = Unpack { total: 0, limit: bytes.len().saturating_mul(UNPACK_RATIO).max(MAX_CHUNK) };
        read_records(body, &mut bag, &mut unpack, true)?;
        Ok(bag)
    }

    /// Reads a bag from any reader.
    ///
    /// # Errors
    /// I/O errors as [`FusionError::Parse`], then as [`Bag::parse`].
    pub fn read(mut r: impl Read) -> Result<Self> {
        let mut v = Vec::new();
        r.read_to_end(&mut v).map_err(|e| FusionError::Parse(format!("read: {e}")))?;
        Self::parse(&v)
    }
}

/// What the compressed chunks of one bag have unpacked to so far, and how much they may.
struct Unpack {
    total: usize,
    limit: usize,
}

impl Unpack {
    /// Counts a chunk that unpacks to `size` bytes; refused past the limit.
    fn claim(&mut self, size: usize) -> Result<()> {
        self.total = self.total.saturating_add(size);
        if self.total > self.limit {
            return Err(FusionError::Parse(format!(
                "bz2 chunks unpack to more than {} bytes ({UNPACK_RATIO}× the file, at least {MAX_CHUNK})",
                self.limit
            )));
        }
        Ok(())
    }
}

fn parse_err(msg: &str) -> FusionError {
    FusionError::Parse(msg.into())
}

/// `b[pos..pos + len]` without overflow or out-of-bounds panics.
fn slice(b: &[u8], pos: usize, len: usize) -> Option<&[u8]> {
    b.get(pos..pos.checked_add(len)?)
}

fn read_u32(b: &[u8], pos: usize) -> Result<u32> {
    let s = slice(b, pos, 4).ok_or_else(|| parse_err("truncated u32"))?;
    let mut a = [0u8; 4];
    a.copy_from_slice(s);
    Ok(u32::from_le_bytes(a))
}

/// Header fields `name=value`.
fn header_fields(h: &[u8]) -> Result<Vec<(&[u8], &[u8])>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < h.len() {
        let len = read_u32(h, i)? as usize;
        i += 4;
        let f = slice(h, i, len).ok_or_else(|| parse_err("truncated header field"))?;
        i += len;
        let eq = f.iter().position(|&c| c == b'=').ok_or_else(|| parse_err("header field without '='"))?;
        out.push((&f[..eq], &f[eq + 1..]));
    }
    Ok(out)
}

fn field<'a>(fields: &[(&[u8], &'a [u8])], name: &[u8]) -> Option<&'a [u8]> {
    fields.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
}

fn field_u32(fields: &[(&[u8], &[u8])], name: &[u8]) -> Result<u32> {
    let v = field(fields, name).ok_or_else(|| FusionError::Parse(format!("missing {}", String::from_utf8_lossy(name))))?;
    read_u32(v, 0)
}

fn field_time(fields: &[(&[u8], &[u8])], name: &[u8]) -> Result<f64> {
    let v = field(fields, name).ok_or_else(|| parse_err("missing time"))?;
    Ok(f64::from(read_u32(v, 0)?) + f64::from(read_u32(v, 4)?) * 1e-9)
}

fn read_records(b: &[u8], bag: &mut Bag, unpack: &mut Unpack, top_level: bool) -> Result<()> {
    let mut pos = 0usize;
    while pos < b.len() {
        let hlen = read_u32(b, pos)? as usize;
        pos += 4;
        let h = slice(b, pos, hlen).ok_or_else(|| parse_err("truncated record header"))?;
        pos += hlen;
        let dlen = read_u32(b, pos)? as usize;
        pos += 4;
        let data = slice(b, pos, dlen).ok_or_else(|| parse_err("truncated record data"))?;
        pos += dlen;
        let fields = header_fields(h)?;
        let op = field(&fields, b"op").and_then(|v| v.first().copied()).ok_or_else(|| parse_err("record without op"))?;
        match op {
            OP_CHUNK if top_level => {
                let comp = field(&fields, b"compression").unwrap_or(b"none");
                let size = field_u32(&fields, b"size")? as usize;
                if size > MAX_CHUNK {
                    return Err(parse_err("chunk too large"));
                }
                match comp {
                    b"none" => read_records(data, bag, unpack, false)?,
                    b"bz2" => {
                        // a few KB of bz2 can claim a chunk of 256 MiB: the chunks together may
                        // not unpack to more than a multiple of the file (a bomb would take
                        // the machine's memory), and nothing is reserved before it is written
                        unpack.claim(size)?;
                        let mut out = Vec::new();
                        bzip2::read::BzDecoder::new(data)
                            .take(size as u64 + 1)
                            .read_to_end(&mut out)
                            .map_err(|e| FusionError::Parse(format!("bz2: {e}")))?;
                        if out.len() != size {
                            return Err(parse_err("bz2 chunk size mismatch"));
                        }
                        read_records(&out, bag, unpack, false)?;
                    }
                    other => {
                        return Err(FusionError::Parse(format!(
                            "unsupported chunk compression {:?}",
                            String::from_utf8_lossy(other)
                        )));
                    }
                }
            }
            OP_CONNECTION => {
                let id = field_u32(&fields, b"conn")?;
                if bag.connections.iter().any(|c| c.id == id) {
                    continue;
                }
                let topic = String::from_utf8_lossy(field(&fields, b"topic").unwrap_or_default()).into_owned();
                let inner = header_fields(data)?;
                let msg_type = String::from_utf8_lossy(field(&inner, b"type").unwrap_or_default()).into_owned();
                bag.connections.push(Connection { id, topic, msg_type });
            }
            OP_MSG_DATA => {
                let conn = field_u32(&fields, b"conn")?;
                let record_time = field_time(&fields, b"time")?;
                bag.messages.push(BagMessage { conn, record_time, data: data.to_vec() });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Little-endian ROS serialisation cursor with bounds checks.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(b: &'a [u8]) -> Self {
        Self { b, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let s = slice(self.b, self.pos, n).ok_or_else(|| parse_err("truncated message"))?;
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }
    fn u16(&mut self) -> Result<u16> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let v = read_u32(self.b, self.pos)?;
        self.pos += 4;
        Ok(v)
    }
    fn f64(&mut self) -> Result<f64> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(f64::from_le_bytes(a))
    }
    fn string(&mut self) -> Result<String> {
        let n = self.u32()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
    fn f64s<const N: usize>(&mut self) -> Result<[f64; N]> {
        let mut a = [0.0; N];
        for v in &mut a {
            *v = self.f64()?;
        }
        Ok(a)
    }
    fn header(&mut self) -> Result<Header> {
        let _seq = self.u32()?;
        let sec = self.u32()?;
        let nsec = self.u32()?;
        if nsec >= 1_000_000_000 {
            return Err(parse_err("header stamp nanoseconds of a second or more"));
        }
        let frame_id = self.string()?;
        Ok(Header { stamp: f64::from(sec) + f64::from(nsec) * 1e-9, frame_id })
    }
}

/// Decodes a serialised `sensor_msgs/Imu`.
///
/// # Errors
/// Truncated input.
pub fn decode_imu(b: &[u8]) -> Result<ImuMessage> {
    let mut c = Cursor::new(b);
    Ok(ImuMessage {
        header: c.header()?,
        orientation: c.f64s()?,
        orientation_covariance: c.f64s()?,
        angular_velocity: c.f64s()?,
        angular_velocity_covariance: c.f64s()?,
        linear_acceleration: c.f64s()?,
        linear_acceleration_covariance: c.f64s()?,
    })
}

/// Decodes a serialised `nav_msgs/Odometry`.
///
/// # Errors
/// Truncated input.
pub fn decode_odometry(b: &[u8]) -> Result<OdometryMessage> {
    let mut c = Cursor::new(b);
    let header = c.header()?;
    let child_frame_id = c.string()?;
    let position = c.f64s::<3>()?;
    let orientation = c.f64s::<4>()?;
    let pose_covariance = c.f64s::<36>()?.to_vec();
    let linear = c.f64s::<3>()?;
    let angular = c.f64s::<3>()?;
    let twist_covariance = c.f64s::<36>()?.to_vec();
    Ok(OdometryMessage { header, child_frame_id, position, orientation, pose_covariance, linear, angular, twist_covariance })
}

/// Decodes a serialised `sensor_msgs/NavSatFix`.
///
/// # Errors
/// Truncated input.
pub fn decode_navsatfix(b: &[u8]) -> Result<NavSatFixMessage> {
    let mut c = Cursor::new(b);
    let header = c.header()?;
    let status = i8::from_le_bytes([c.u8()?]);
    let _service = c.u16()?;
    let latitude = c.f64()?;
    let longitude = c.f64()?;
    let altitude = c.f64()?;
    let position_covariance = c.f64s()?;
    let position_covariance_type = c.u8()?;
    Ok(NavSatFixMessage { header, status, latitude, longitude, altitude, position_covariance, position_covariance_type })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEST2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/fusion/test2.bag");

    #[test]
    fn reads_real_bag_topics_and_messages() {
        let bag = Bag::parse(&std::fs::read(TEST2).unwrap()).unwrap();
        let topics: Vec<_> = bag.connections.iter().map(|c| (c.topic.as_str(), c.msg_type.as_str())).collect();
        assert!(topics.contains(&("/imu/data", "sensor_msgs/Imu")));
        assert!(topics.contains(&("/jackal_velocity_controller/odom", "nav_msgs/Odometry")));
        assert_eq!(bag.messages.len(), 3061 + 3060);
        let first_imu = bag
            .messages
            .iter()
            .find(|m| bag.connection(m.conn).is_some_and(|c| c.topic == "/imu/data"))
            .unwrap();
        let imu = decode_imu(&first_imu.data).unwrap();
        assert_eq!(imu.header.frame_id, "base_link");
        assert!((imu.header.stamp - 47.58).abs() < 1e-9);
        assert!((imu.linear_acceleration[2] - 9.703_827_518_41).abs() < 1e-9);
        assert!((imu.orientation_covariance[8] - 2.5e-5).abs() < 1e-15);
    }

    #[test]
    fn compressed_chunks_may_not_unpack_past_a_multiple_of_the_file() {
        let mut u = Unpack { total: 0, limit: 100 };
        assert!(u.claim(60).is_ok());
        assert!(u.claim(40).is_ok());
        assert!(u.claim(1).is_err());
        assert!(Unpack { total: 0, limit: 10 }.claim(usize::MAX).is_err());
        // the real bags are far inside the limit
        let bytes = std::fs::read(TEST2).unwrap();
        assert!(Bag::parse(&bytes).is_ok());
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(Bag::parse(b"hello").is_err());
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[200, 0, 0, 0, 1, 2]);
        assert!(Bag::parse(&b).is_err());
        let bytes = std::fs::read(TEST2).unwrap();
        for cut in [20usize, 4100, 9000, 200_000] {
            assert!(Bag::parse(&bytes[..cut]).is_err());
        }
        assert!(decode_imu(&[1, 2, 3]).is_err());
        // a stamp's nanoseconds must stay under a second
        let bag = Bag::parse(&bytes).unwrap();
        let imu = bag.messages.iter().find(|m| bag.connection(m.conn).is_some_and(|c| c.topic == "/imu/data")).unwrap();
        assert!(decode_imu(&imu.data).is_ok());
        let mut bad = imu.data.clone();
        bad[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_imu(&bad).is_err());
        assert!(decode_odometry(&[0; 40]).is_err());
        assert!(decode_navsatfix(&[]).is_err());
    }
}
