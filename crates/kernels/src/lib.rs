//! Kernels that run the same domain code natively and inside the `kernels` test component, so
//! `cargo bench -p edgecell --bench kernels` can state "wasm ÷ native" from one run.
//!
//! Each kernel builds its inputs deterministically, runs `iterations` steps and returns a
//! checksum, so neither side can skip work and both can be compared for equality.

#![forbid(unsafe_code)]

use edgecell_fusion::localizer::{Header, ImuMessage};
use edgecell_fusion::{Localizer, preset};
use edgecell_v2x::config::Config;
use edgecell_v2x::decode::{Framing, decode_its};
use edgecell_v2x::validator::Validator;
use edgecell_vision::{
    BBox, Detection, Letterbox, Line, NanoDetHead, NmsConfig, Normalization, Point, PreprocessScratch, RgbImage, StreamConfig,
    StreamProcessor, TensorView, Zone, letterbox_into, postprocess_nanodet,
};

/// Names accepted by [`run`].
pub const KERNELS: [&str; 8] = [
    "ekf_imu_update",
    "v2x_unsigned_cam",
    "v2x_signed_cam",
    "trig",
    "video_frame",
    "video_preprocess",
    "video_decode_nms",
    "video_track",
];

/// How many steps a benchmark should run of kernel `name` for a run of tens of milliseconds
/// (a video frame is about a thousand times a filter step).
#[must_use]
pub fn bench_steps(name: &str) -> u32 {
    match name {
        "video_frame" | "video_preprocess" => 20,
        "v2x_signed_cam" => 200,
        "video_decode_nms" => 100,
        _ => 2000,
    }
}

/// Why a kernel could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelError(pub String);

impl std::fmt::Display for KernelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KernelError {}

/// Run kernel `name` for `iterations` steps; returns its checksum.
///
/// # Errors
/// An unknown kernel name or a domain error.
pub fn run(name: &str, iterations: u32) -> Result<f64, KernelError> {
    match name {
        "ekf_imu_update" => ekf_imu_update(iterations),
        "v2x_unsigned_cam" => v2x_unsigned_cam(iterations),
        "v2x_signed_cam" => v2x_signed_cam(iterations),
        "trig" => Ok(trig(iterations)),
        "video_frame" => video(iterations, VideoStage::All),
        "video_preprocess" => video(iterations, VideoStage::Preprocess),
        "video_decode_nms" => video(iterations, VideoStage::DecodeNms),
        "video_track" => video(iterations, VideoStage::Track),
        other => Err(KernelError(format!("unknown kernel {other:?} (known: {})", KERNELS.join(", ")))),
    }
}

/// A unit phasor turned by a fixed angle each step: the test signals below without a `sin` or
/// `cos` call per step, so the EKF kernel times the filter and not the harness's libm (which
/// [`trig`] measures on its own).
struct Phasor {
    sin: f64,
    cos: f64,
    step_sin: f64,
    step_cos: f64,
}

impl Phasor {
    fn new(step: f64) -> Self {
        Self { sin: 0.0, cos: 1.0, step_sin: step.sin(), step_cos: step.cos() }
    }

    fn advance(&mut self) {
        let (s, c) = (self.sin, self.cos);
        self.sin = s * self.step_cos + c * self.step_sin;
        self.cos = c * self.step_cos - s * self.step_sin;
    }
}

/// The 15-state EKF of robot_localization's test2 preset: predict to each 100 Hz IMU message and
/// update orientation, angular velocity and acceleration (9 fields) in Joseph form. The vehicle
/// turns at 0.05 rad/s and accelerates along x with 0.2 sin(0.3 t) m/s².
fn ekf_imu_update(iterations: u32) -> Result<f64, KernelError> {
    const DT: f64 = 0.01;
    const YAW_RATE: f64 = 0.05;
    let cfg = preset("robot-localization-test2").map_err(|e| KernelError(e.to_string()))?;
    let mut loc = Localizer::new(cfg).map_err(|e| KernelError(e.to_string()))?;
    let idx = loc.sensor_index("imu0").map_err(|e| KernelError(e.to_string()))?;
    let cov = [1e-3, 0.0, 0.0, 0.0, 1e-3, 0.0, 0.0, 0.0, 1e-3];
    // half the yaw angle (the quaternion's z and w) and the acceleration's phase
    let mut half_yaw = Phasor::new(YAW_RATE * DT / 2.0);
    let mut accel = Phasor::new(0.3 * DT);
    let mut msg = ImuMessage {
        header: Header { stamp: 1.0, frame_id: "base_link".into() },
        orientation: [0.0, 0.0, 0.0, 1.0],
        orientation_covariance: cov,
        angular_velocity: [0.0, 0.0, YAW_RATE],
        angular_velocity_covariance: cov,
        linear_acceleration: [0.0, 0.0, 9.80665],
        linear_acceleration_covariance: cov,
    };
    let mut checksum = 0.0;
    for k in 0..iterations {
        msg.header.stamp = 1.0 + f64::from(k) * DT;
        msg.orientation[2] = half_yaw.sin;
        msg.orientation[3] = half_yaw.cos;
        msg.linear_acceleration[0] = 0.2 * accel.sin;
        let reports = loc.process_imu(idx, &msg).map_err(|e| KernelError(e.to_string()))?;
        checksum += reports.iter().map(|r| r.nis).sum::<f64>();
        half_yaw.advance();
        accel.advance();
    }
    let p = loc.pose();
    Ok(checksum + p.x + p.y + p.yaw)
}

/// c-its-parser's test CAM (UPER), the V2X kernels' message.
const CAM: &[u8] = include_bytes!("../../v2x/testdata/c-its-parser-cam.uper");

/// An ITS time (ms) 10 ms after [`CAM`]'s generationDeltaTime (51,136): when it is received.
fn cam_receive_its_ms() -> u64 {
    let base = 700_000_000_000u64;
    base - base % 65_536 + 51_136 + 10
}

/// A real UPER CAM (c-its-parser's test message) decoded and validated with the default
/// configuration each step, through the code the component runs on both sides: the CAM
/// decoder (`cam_v2`, rasn UPER), then the plausibility checks and the sender's history.
fn v2x_unsigned_cam(iterations: u32) -> Result<f64, KernelError> {
    let now_ms = cam_receive_its_ms();
    #[allow(clippy::cast_precision_loss)]
    let rcv_s = now_ms as f64 / 1000.0;
    let mut v = Validator::new(Config::default()).map_err(|e| KernelError(e.to_string()))?;
    let mut checksum = 0.0;
    for _ in 0..iterations {
        let obs = decode_its(CAM, Framing::Uper, now_ms).map_err(|e| KernelError(e.to_string()))?;
        let r = v.validate_observation(&obs, rcv_s, None, false, Vec::new());
        #[allow(clippy::cast_precision_loss)]
        let checks = r.checks.len() as f64;
        checksum += r.score + f64::from(r.generation_delta_time) + checks;
    }
    Ok(checksum)
}

/// A real UPER CAM signed with P-256 (IEEE 1609.2, signer given by digest, its authorization
/// ticket already verified and cached) validated with `Validator::validate` each step: COER
/// decoding, the ECDSA verification, then the CAM's checks. Natively the signature goes
/// through ring, in the component through the RustCrypto `p256`; the CAM through `cam_v2` on
/// both, so this is what each side really runs.
///
/// The certificates and up to [`SIGNED_POOL`] messages are signed once per process (signing
/// costs as much as verifying and is not what is measured); each run builds a fresh validator,
/// so replay detection sees every message once.
fn v2x_signed_cam(iterations: u32) -> Result<f64, KernelError> {
    use edgecell_v2x::validator::MessageFormat;
    static SETUP: std::sync::OnceLock<Result<SignedSetup, KernelError>> = std::sync::OnceLock::new();
    let setup = SETUP.get_or_init(SignedSetup::new).as_ref().map_err(Clone::clone)?;
    let msgs = setup.messages.get(..iterations as usize).ok_or_else(|| KernelError(format!("at most {SIGNED_POOL} steps")))?;
    let e = |e: edgecell_v2x::V2xError| KernelError(e.to_string());
    let mut v = Validator::from_toml(&setup.config).map_err(e)?;
    v.add_certificate(&setup.aa_cert, setup.ctx.received_at_ns).map_err(e)?;
    v.validate(MessageFormat::Secured, &setup.first, &setup.ctx).map_err(e)?;
    let mut checksum = 0.0;
    for msg in msgs {
        let r = v.validate(MessageFormat::Secured, msg, &setup.ctx).map_err(e)?;
        if !r.signed {
            return Err(KernelError("a signed CAM was not verified as signed".into()));
        }
        checksum += r.score + f64::from(r.generation_delta_time);
    }
    Ok(checksum)
}

/// Signed CAMs [`v2x_signed_cam`] can validate per run.
pub const SIGNED_POOL: usize = 256;

/// A root → AA → AT chain and CAMs signed by the AT.
struct SignedSetup {
    config: String,
    aa_cert: Vec<u8>,
    /// Carries the AT certificate (verified once, then cached); later ones name it by digest.
    first: Vec<u8>,
    messages: Vec<Vec<u8>>,
    ctx: edgecell_v2x::validator::ReceiveContext,
}

impl SignedSetup {
    fn new() -> Result<Self, KernelError> {
        use edgecell_v2x::observation::its_ms_to_unix_ns;
        use edgecell_v2x::security::build;
        let e = |e: edgecell_v2x::SecurityError| KernelError(e.to_string());
        let now_ms = cam_receive_its_ms();
        let ctx = edgecell_v2x::validator::ReceiveContext { received_at_ns: its_ms_to_unix_ns(now_ms), receiver: None };
        let start = u32::try_from(now_ms / 1000 - 3600).map_err(|x| KernelError(x.to_string()))?;
        let chain = build::CamChain::new(start).map_err(e)?;
        let first = build::signed_data(&chain.at, CAM, 36, (now_ms - 20) * 1000, true).map_err(e)?;
        // each its own generation time (µs apart), so replay detection passes every one
        let messages = (0..SIGNED_POOL as u64)
            .map(|k| build::signed_data(&chain.at, CAM, 36, (now_ms - 10) * 1000 + k, false))
            .collect::<Result<Vec<_>, _>>()
            .map_err(e)?;
        Ok(Self { config: chain.trust_toml(), aa_cert: chain.aa.cert, first, messages, ctx })
    }
}

/// The libm functions the filters use (`sin`, `cos`, `atan2`, `asin`), one of each per step:
/// shows how much of a filter's wasm ÷ native ratio is the maths library's.
fn trig(iterations: u32) -> f64 {
    let mut acc = 0.0;
    for k in 0..iterations {
        let x = f64::from(k) * 1e-3;
        acc += x.sin() + x.cos() + x.atan2(1.0 + x) + (x / (1.0 + x)).asin();
    }
    acc
}

/// Deterministic numbers in [0, 1) (a 64-bit LCG; no RNG dependency on either side).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        #[allow(clippy::cast_precision_loss)]
        let v = (self.0 >> 40) as f32 / 16_777_216.0;
        v
    }
}

/// NanoDet-m-416 head outputs with eight confident anchors (walkers) among low-score noise:
/// scores `[1, n, 80]` and box distributions `[1, n, 44]` per level.
fn nanodet_outputs(rng: &mut Lcg) -> Vec<(Vec<usize>, Vec<f32>)> {
    let mut outs = Vec::new();
    for (level, n) in [2704usize, 676, 169].into_iter().enumerate() {
        let mut scores: Vec<f32> = (0..n * 80).map(|_| rng.next() * 0.3).collect();
        if level == 0 {
            for walker in 0..8 {
                let anchor = (walker * 331) % n;
                scores[anchor * 80] = 0.6 + rng.next() * 0.3;
            }
        }
        let boxes: Vec<f32> = (0..n * 44).map(|_| rng.next() * 4.0 - 2.0).collect();
        outs.push((vec![1, n, 80], scores));
        outs.push((vec![1, n, 44], boxes));
    }
    outs
}

/// The video kernels' frame and head outputs, made once per process (on each side) so that no
/// kernel times their synthesis.
static VIDEO_INPUTS: std::sync::OnceLock<Result<VideoInputs, KernelError>> = std::sync::OnceLock::new();

/// A frame and the head outputs (shape, values) of one inference.
type VideoInputs = (RgbImage, Vec<(Vec<usize>, Vec<f32>)>);

fn video_inputs() -> Result<VideoInputs, KernelError> {
    let (w, h) = (768u32, 576u32);
    let pixels: Vec<u8> = (0..w * h * 3).map(|i| u8::try_from((i * 7 + i / 2311) % 251).unwrap_or(0)).collect();
    let img = RgbImage::from_raw(w, h, pixels).map_err(|e| KernelError(e.to_string()))?;
    Ok((img, nanodet_outputs(&mut Lcg(7))))
}

/// The video actor's per-frame work apart from inference (which the provider runs natively):
/// letterbox + normalise a 768×576 RGB frame into NanoDet's 416×416 input tensor, decode the
/// head's outputs (three levels, 3,549 anchors × 80 classes) and run NMS, then track and update
/// a counting line and a zone. The frame is a fixed synthetic image (preprocessing does the
/// same work whatever the pixels); the eight detected walkers move 4 px per frame. `stage`
/// runs one of the three alone (`video_preprocess`, `video_decode_nms`, `video_track`) to show
/// where the frame's wasm ÷ native ratio comes from.
fn video(iterations: u32, stage: VideoStage) -> Result<f64, KernelError> {
    let e = |e: edgecell_vision::VisionError| KernelError(e.to_string());
    let (img, outs) = VIDEO_INPUTS.get_or_init(video_inputs).as_ref().map_err(Clone::clone)?;
    let lb = Letterbox::new(img.width(), img.height(), 416, 416).map_err(e)?;
    let head = NanoDetHead::nanodet_m_416();
    let nms = NmsConfig::default();
    let mut tensor = vec![0f32; lb.tensor_len()];
    let mut scratch = PreprocessScratch::default();
    let cfg = StreamConfig {
        lines: vec![Line { name: "walkway".into(), a: Point::new(380.0, 0.0), b: Point::new(380.0, 576.0) }],
        zones: vec![Zone {
            name: "door".into(),
            polygon: vec![Point::new(100.0, 100.0), Point::new(300.0, 100.0), Point::new(300.0, 400.0), Point::new(100.0, 400.0)],
        }],
        ..StreamConfig::default()
    };
    let mut stream = StreamProcessor::new(cfg).map_err(e)?;
    // the walkers move by shifting the boxes decoded once from the head's outputs
    let views: Vec<TensorView> = outs.iter().map(|(s, d)| TensorView { shape: s, data: d }).collect();
    let detected = postprocess_nanodet(&head, &views, &nms, &lb, &[]).map_err(e)?;
    let mut checksum = 0.0;
    for k in 0..iterations {
        if matches!(stage, VideoStage::All | VideoStage::Preprocess) {
            letterbox_into(img, &lb, &Normalization::NANODET, &mut scratch, &mut tensor).map_err(e)?;
            checksum += f64::from(tensor[k as usize % tensor.len()]);
        }
        let mut dets: Vec<Detection> = match stage {
            VideoStage::All | VideoStage::DecodeNms => postprocess_nanodet(&head, &views, &nms, &lb, &[]).map_err(e)?,
            VideoStage::Track => detected.clone(),
            VideoStage::Preprocess => continue,
        };
        if stage == VideoStage::DecodeNms {
            checksum += dets.iter().map(|d| f64::from(d.score + d.bbox.x1)).sum::<f64>();
            continue;
        }
        // walk the boxes across the frame so tracks move and cross the line
        #[allow(clippy::cast_precision_loss)]
        let dx = (k % 100) as f32 * 4.0;
        for d in &mut dets {
            d.bbox = BBox::new(d.bbox.x1 + dx, d.bbox.y1, d.bbox.x2 + dx, d.bbox.y2);
        }
        let a = stream.process(u64::from(k) * 100_000_000, &dets);
        #[allow(clippy::cast_precision_loss)]
        let counts = (a.detections.len() + a.events.len()) as f64;
        checksum += counts + a.tracks.iter().map(|t| f64::from(t.bbox.x1)).sum::<f64>();
    }
    Ok(checksum)
}

/// Which part of the video frame kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VideoStage {
    All,
    Preprocess,
    DecodeNms,
    Track,
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernels_are_deterministic_and_names_are_checked() {
        let a = super::run("ekf_imu_update", 200).unwrap();
        let b = super::run("ekf_imu_update", 200).unwrap();
        assert!(a.is_finite());
        assert_eq!(a.to_bits(), b.to_bits());
        assert!(super::run("trig", 100).unwrap().is_finite());
        let cam = super::run("v2x_unsigned_cam", 10).unwrap();
        assert!(cam > 10.0 * 51_136.0, "{cam}");
        let signed = super::run("v2x_signed_cam", 3).unwrap();
        assert!(signed >= 3.0 * 51_136.0, "{signed}");
        assert!(super::run("v2x_signed_cam", 257).is_err());
        let video = super::run("video_frame", 5).unwrap();
        assert!(video.is_finite() && video > 0.0, "{video}");
        assert_eq!(video.to_bits(), super::run("video_frame", 5).unwrap().to_bits());
        for stage in ["video_preprocess", "video_decode_nms", "video_track"] {
            let v = super::run(stage, 3).unwrap();
            assert!(v.is_finite() && v != 0.0, "{stage}: {v}");
        }
        assert!(super::run("nope", 1).is_err());
    }
}
