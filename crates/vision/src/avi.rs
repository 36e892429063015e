//! A minimal RIFF/AVI reader for MJPEG streams: parses `hdrl` (main and stream headers) and
//! walks the `movi` list, yielding each video chunk (one JPEG per frame) with its timestamp.

use crate::error::{Result, VisionError};

/// Stream-level facts from the AVI headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AviInfo {
    /// Frame width (from the stream format, else the main header).
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frame rate numerator (`dwRate`).
    pub rate: u32,
    /// Frame rate denominator (`dwScale`).
    pub scale: u32,
    /// Frames the header announces (`dwLength` of the stream, else `dwTotalFrames`).
    pub declared_frames: u32,
    /// Index of the video stream; its chunks are `NNdc` / `NNdb`.
    pub stream_index: u32,
    /// Compression FourCC of the video stream (e.g. `MJPG`).
    pub handler: [u8; 4],
}

impl AviInfo {
    /// Frames per second (rate / scale).
    #[must_use]
    pub fn fps(&self) -> f64 {
        f64::from(self.rate) / f64::from(self.scale.max(1))
    }

    /// Presentation time of frame `index` in nanoseconds: `index * scale / rate` seconds.
    #[must_use]
    pub fn timestamp_ns(&self, index: u64) -> u64 {
        let num = u128::from(index) * u128::from(self.scale) * 1_000_000_000;
        let ts = num / u128::from(self.rate.max(1));
        u64::try_from(ts).unwrap_or(u64::MAX)
    }
}

/// One video frame of the stream: its encoded bytes and presentation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AviFrame<'a> {
    /// 0-based frame number within the video stream.
    pub index: u64,
    /// Presentation time in nanoseconds from the stream start.
    pub timestamp_ns: u64,
    /// The chunk payload (a JPEG for MJPEG).
    pub data: &'a [u8],
}

/// An MJPEG AVI file held in memory.
#[derive(Debug, Clone)]
pub struct MjpegAvi<'a> {
    bytes: &'a [u8],
    info: AviInfo,
    movi: (usize, usize),
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes([
        *s.first()?,
        *s.get(1)?,
        *s.get(2)?,
        *s.get(3)?,
    ]))
}

fn fourcc_at(b: &[u8], off: usize) -> Option<[u8; 4]> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some([*s.first()?, *s.get(1)?, *s.get(2)?, *s.get(3)?])
}

/// A chunk header: id, payload start, payload length, start of the next chunk.
struct Chunk {
    id: [u8; 4],
    data: usize,
    len: usize,
    next: usize,
}

/// Reads the chunk header at `off` within `[.., end)`; `None` at the end of the region.
fn chunk_at(b: &[u8], off: usize, end: usize) -> Result<Option<Chunk>> {
    if off >= end {
        return Ok(None);
    }
    let available = end - off;
    if available < 8 {
        return Err(VisionError::AviTruncated {
            offset: off,
            needed: 8,
            available,
        });
    }
    let (Some(id), Some(len)) = (fourcc_at(b, off), u32_at(b, off + 4)) else {
        return Err(VisionError::AviTruncated {
            offset: off,
            needed: 8,
            available,
        });
    };
    let len = usize::try_from(len).map_err(|_| VisionError::Avi("chunk size overflows".into()))?;
    let data = off + 8;
    let needed = len
        .checked_add(8)
        .ok_or_else(|| VisionError::Avi("chunk size overflows".into()))?;
    if needed > available {
        return Err(VisionError::AviTruncated {
            offset: off,
            needed,
            available,
        });
    }
    // Chunks are word aligned; the pad byte may be missing on the very last chunk.
    let next = (data + len + (len & 1)).min(end);
    Ok(Some(Chunk {
        id,
        data,
        len,
        next,
    }))
}

impl<'a> MjpegAvi<'a> {
    /// Parses the RIFF structure and headers. Frame data is read lazily by [`Self::frames`].
    ///
    /// # Errors
    /// [`VisionError::Avi`] when it is not an AVI with an MJPEG video stream,
    /// [`VisionError::AviTruncated`] when a header chunk is cut off.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() < 12 {
            return Err(VisionError::AviTruncated {
                offset: 0,
                needed: 12,
                available: bytes.len(),
            });
        }
        if fourcc_at(bytes, 0) != Some(*b"RIFF") || fourcc_at(bytes, 8) != Some(*b"AVI ") {
            return Err(VisionError::Avi("not a RIFF AVI file".into()));
        }
        let riff_len = u32_at(bytes, 4)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0);
        // Tolerate a RIFF size larger than the file only as truncation of the movi data,
        // which surfaces when the frame is read.
        let end = riff_len.saturating_add(8).min(bytes.len());
        let mut off = 12;
        let mut main: Option<(u32, u32, u32, u32)> = None; // us/frame, total, w, h
        let mut video: Option<AviInfo> = None;
        let mut movi = None;
        loop {
            let c = match chunk_at(bytes, off, end) {
                Ok(Some(c)) => c,
                Ok(None) => break,
                // A file cut inside the movi list keeps the frames before the cut; the
                // truncated frame chunk surfaces as an error from the frame iterator.
                Err(e) => {
                    if fourcc_at(bytes, off) == Some(*b"LIST")
                        && fourcc_at(bytes, off + 8) == Some(*b"movi")
                    {
                        movi = Some((off + 12, end));
                        break;
                    }
                    return Err(e);
                }
            };
            if &c.id == b"LIST" {
                match fourcc_at(bytes, c.data) {
                    Some(t) if &t == b"hdrl" => {
                        Self::parse_hdrl(bytes, c.data + 4, c.data + c.len, &mut main, &mut video)?;
                    }
                    Some(t) if &t == b"movi" => movi = Some((c.data + 4, c.data + c.len)),
                    _ => {}
                }
            }
            off = c.next;
        }
        let mut info = video.ok_or_else(|| VisionError::Avi("no video stream header".into()))?;
        if let Some((us_per_frame, total, w, h)) = main {
            if info.width == 0 || info.height == 0 {
                info.width = w;
                info.height = h;
            }
            if info.rate == 0 && us_per_frame > 0 {
                info.rate = 1_000_000;
                info.scale = us_per_frame;
            }
            if info.declared_frames == 0 {
                info.declared_frames = total;
            }
        }
        if info.rate == 0 || info.scale == 0 {
            return Err(VisionError::Avi("stream has no frame rate".into()));
        }
        let handler = info.handler.to_ascii_uppercase();
        if &handler != b"MJPG" && &handler != b"AVRN" && &handler != b"JPEG" && &handler != b"LJPG"
        {
            return Err(VisionError::Avi(format!(
                "video stream is {}, not MJPEG",
                String::from_utf8_lossy(&info.handler)
            )));
        }
        let movi = movi.ok_or_else(|| VisionError::Avi("no movi list".into()))?;
        Ok(Self { bytes, info, movi })
    }

    fn parse_hdrl(
        b: &[u8],
        start: usize,
        end: usize,
        main: &mut Option<(u32, u32, u32, u32)>,
        video: &mut Option<AviInfo>,
    ) -> Result<()> {
        let mut off = start;
        let mut stream_no = 0u32;
        while let Some(c) = chunk_at(b, off, end)? {
            if &c.id == b"avih" && c.len >= 40 {
                *main = Some((
                    u32_at(b, c.data).unwrap_or(0),
                    u32_at(b, c.data + 16).unwrap_or(0),
                    u32_at(b, c.data + 32).unwrap_or(0),
                    u32_at(b, c.data + 36).unwrap_or(0),
                ));
            } else if &c.id == b"LIST" && fourcc_at(b, c.data) == Some(*b"strl") {
                if video.is_none() {
                    *video = Self::parse_strl(b, c.data + 4, c.data + c.len, stream_no)?;
                    // frame chunks are named by two decimal digits of the stream (`00dc`)
                    if video.is_some() && stream_no >= 100 {
                        return Err(VisionError::Avi(format!("the video is stream {stream_no}: chunk names hold streams 0-99")));
                    }
                }
                stream_no += 1;
            }
            off = c.next;
        }
        Ok(())
    }

    fn parse_strl(
        b: &[u8],
        start: usize,
        end: usize,
        stream_index: u32,
    ) -> Result<Option<AviInfo>> {
        let mut off = start;
        let mut info: Option<AviInfo> = None;
        while let Some(c) = chunk_at(b, off, end)? {
            if &c.id == b"strh" && c.len >= 36 {
                if fourcc_at(b, c.data) != Some(*b"vids") {
                    return Ok(None);
                }
                info = Some(AviInfo {
                    width: 0,
                    height: 0,
                    scale: u32_at(b, c.data + 20).unwrap_or(0),
                    rate: u32_at(b, c.data + 24).unwrap_or(0),
                    declared_frames: u32_at(b, c.data + 32).unwrap_or(0),
                    stream_index,
                    handler: fourcc_at(b, c.data + 4).unwrap_or([0; 4]),
                });
            } else if &c.id == b"strf"
                && c.len >= 20
                && let Some(i) = info.as_mut()
            {
                // BITMAPINFOHEADER: biWidth (i32) at 4, biHeight (i32, negative = top-down) at 8,
                // biCompression at 16.
                let w = u32_at(b, c.data + 4).unwrap_or(0);
                let h = u32_at(b, c.data + 8).unwrap_or(0);
                i.width = w;
                #[allow(clippy::cast_possible_wrap)]
                let h = (h as i32).unsigned_abs();
                i.height = h;
                if i.handler == [0; 4]
                    && let Some(f) = fourcc_at(b, c.data + 16)
                {
                    i.handler = f;
                }
            }
            off = c.next;
        }
        Ok(info)
    }

    /// Stream facts (size, rate, declared frame count).
    #[must_use]
    pub fn info(&self) -> AviInfo {
        self.info
    }

    /// Iterates the video frames in file order. Each item is a frame or the error that stopped
    /// the walk (after an error the iterator ends).
    #[must_use]
    pub fn frames(&self) -> AviFrames<'a> {
        let n = self.info.stream_index;
        let tens = u8::try_from(n / 10 % 10).unwrap_or(0);
        let ones = u8::try_from(n % 10).unwrap_or(0);
        AviFrames {
            bytes: self.bytes,
            info: self.info,
            stack: vec![self.movi],
            prefix: [b'0' + tens, b'0' + ones],
            index: 0,
            done: false,
        }
    }
}

/// Iterator over the frames of an [`MjpegAvi`].
#[derive(Debug, Clone)]
pub struct AviFrames<'a> {
    bytes: &'a [u8],
    info: AviInfo,
    /// Regions being walked: the movi list and any nested `LIST rec` inside it.
    stack: Vec<(usize, usize)>,
    prefix: [u8; 2],
    index: u64,
    done: bool,
}

impl<'a> Iterator for AviFrames<'a> {
    type Item = Result<AviFrame<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            let &(off, end) = self.stack.last()?;
            let chunk = match chunk_at(self.bytes, off, end) {
                Ok(Some(c)) => c,
                Ok(None) => {
                    self.stack.pop();
                    continue;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            if let Some(top) = self.stack.last_mut() {
                top.0 = chunk.next;
            }
            if &chunk.id == b"LIST" {
                if fourcc_at(self.bytes, chunk.data) == Some(*b"rec ") {
                    self.stack.push((chunk.data + 4, chunk.data + chunk.len));
                }
                continue;
            }
            let [a, b, c, d] = chunk.id;
            if [a, b] == self.prefix && c == b'd' && (d == b'c' || d == b'b') {
                let Some(data) = self.bytes.get(chunk.data..chunk.data + chunk.len) else {
                    self.done = true;
                    return Some(Err(VisionError::AviTruncated {
                        offset: chunk.data,
                        needed: chunk.len,
                        available: self.bytes.len().saturating_sub(chunk.data),
                    }));
                };
                if data.is_empty() {
                    // A zero-length chunk repeats the previous frame; it still takes a time slot.
                    self.index += 1;
                    continue;
                }
                let frame = AviFrame {
                    index: self.index,
                    timestamp_ns: self.info.timestamp_ns(self.index),
                    data,
                };
                self.index += 1;
                return Some(Ok(frame));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AviInfo;

    #[test]
    fn timestamps_follow_rate_over_scale() {
        let ntsc = AviInfo {
            width: 2,
            height: 2,
            rate: 30_000,
            scale: 1001,
            declared_frames: 0,
            stream_index: 0,
            handler: *b"MJPG",
        };
        assert_eq!(ntsc.timestamp_ns(0), 0);
        assert_eq!(ntsc.timestamp_ns(1), 33_366_666);
        assert_eq!(ntsc.timestamp_ns(30_000), 1_001_000_000_000);
        assert!((ntsc.fps() - 29.97).abs() < 0.01);
    }
}
