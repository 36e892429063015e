//! Sensor front end over a [`StateEstimator`]: robot_localization's message handling
//! (per-sensor masks, frames, gravity removal, differential/relative modes, GNSS → ENU) and its
//! "predict to each measurement, then correct" processing.

use nalgebra::{DMatrix, Matrix3, Quaternion, Rotation3, UnitQuaternion, Vector3};
use serde::{Deserialize, Serialize};

use crate::error::{FusionError, Result, ensure_finite};
use crate::filter::{AnyFilter, FilterKind, FilterSettings, MIN_VARIANCE, Measurement, StateEstimator, UpdateReport};
use crate::geo::{EnuFrame, Geodetic};
use crate::persist::{EnuSnapshot, FrameSnapshot, LocalizerSnapshot, PoseSnapshot, STATE_FORMAT, SensorSnapshot};
use crate::state::{
    AX, Mask, PITCH, Pose, ROLL, STATE_SIZE, StateMatrix, VROLL, VX, X, YAW, rotation_rpy, rpy_of,
    wrap_angle,
};

/// Standard gravity (m/s²), robot_localization's default.
pub const STANDARD_GRAVITY: f64 = 9.806_65;

/// Message header: time stamp (s) and frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Header {
    /// stamp in seconds
    pub stamp: f64,
    /// coordinate frame of the data
    pub frame_id: String,
}

/// `sensor_msgs/Imu`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImuMessage {
    /// header (frame = sensor frame)
    pub header: Header,
    /// orientation quaternion x, y, z, w (sensor frame in the world)
    pub orientation: [f64; 4],
    /// row-major 3×3; `[0] == -1` means "no orientation"
    pub orientation_covariance: [f64; 9],
    /// rad/s
    pub angular_velocity: [f64; 3],
    /// row-major 3×3
    pub angular_velocity_covariance: [f64; 9],
    /// m/s² (gravity included, as IMUs report it)
    pub linear_acceleration: [f64; 3],
    /// row-major 3×3
    pub linear_acceleration_covariance: [f64; 9],
}

/// `nav_msgs/Odometry`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OdometryMessage {
    /// header (frame = world frame of the pose)
    pub header: Header,
    /// frame of the twist (normally base_link)
    pub child_frame_id: String,
    /// position x, y, z
    pub position: [f64; 3],
    /// orientation x, y, z, w
    pub orientation: [f64; 4],
    /// row-major 6×6 (x y z roll pitch yaw)
    pub pose_covariance: Vec<f64>,
    /// linear velocity in the child frame
    pub linear: [f64; 3],
    /// angular velocity in the child frame
    pub angular: [f64; 3],
    /// row-major 6×6
    pub twist_covariance: Vec<f64>,
}

/// `sensor_msgs/NavSatFix`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NavSatFixMessage {
    /// header
    pub header: Header,
    /// fix status (−1 = no fix)
    pub status: i8,
    /// degrees
    pub latitude: f64,
    /// degrees
    pub longitude: f64,
    /// metres
    pub altitude: f64,
    /// row-major 3×3, ENU (m²)
    pub position_covariance: [f64; 9],
    /// 0 unknown, 1 approximated, 2 diagonal known, 3 known
    pub position_covariance_type: u8,
}

/// What kind of messages a sensor delivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SensorKind {
    /// nav_msgs/Odometry (pose and/or twist)
    Odometry,
    /// sensor_msgs/Imu
    Imu,
    /// sensor_msgs/NavSatFix
    Gnss,
}

/// One sensor input and what it fuses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorConfig {
    /// name (e.g. `odom0`, `imu0`)
    pub name: String,
    /// topic in a bag (used by the replay)
    #[serde(default)]
    pub topic: String,
    /// message kind
    pub kind: SensorKind,
    /// the 15 fused fields, state order
    pub mask: Mask,
    /// fuse pose differences as velocities
    #[serde(default)]
    pub differential: bool,
    /// fuse pose relative to the sensor's first message
    #[serde(default)]
    pub relative: bool,
    /// IMU only: subtract gravity from the linear acceleration
    #[serde(default)]
    pub remove_gravitational_acceleration: bool,
    /// Mahalanobis gate in standard deviations (robot_localization's `*_rejection_threshold`)
    #[serde(default)]
    pub rejection_threshold: Option<f64>,
}

/// A fixed transform from `base_link` to a sensor frame (the sensor's pose on the robot).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticTransform {
    /// sensor frame name
    pub child: String,
    /// translation (m) of the sensor in base_link
    pub translation: [f64; 3],
    /// rotation of the sensor frame in base_link as roll, pitch, yaw (rad)
    pub rpy: [f64; 3],
}

impl StaticTransform {
    fn rotation(&self) -> Matrix3<f64> {
        rotation_rpy(self.rpy[0], self.rpy[1], self.rpy[2])
    }
}

/// Complete localizer configuration (serialisable: TOML files for the CLI, JSON for the actor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalizerConfig {
    /// EKF or UKF
    #[serde(default)]
    pub filter: FilterKind,
    /// output rate (Hz)
    pub frequency: f64,
    /// predict forward when no measurement arrived for this long (s)
    #[serde(default = "default_sensor_timeout")]
    pub sensor_timeout: f64,
    /// zero the out-of-plane terms
    #[serde(default)]
    pub two_d_mode: bool,
    /// world frame name (odometry pose frame)
    #[serde(default = "default_world")]
    pub world_frame: String,
    /// robot body frame name
    #[serde(default = "default_base")]
    pub base_link_frame: String,
    /// process noise: 15 diagonal entries or 225 row-major entries
    pub process_noise: Vec<f64>,
    /// initial covariance: 15 diagonal entries or 225 row-major entries
    pub initial_covariance: Vec<f64>,
    /// gravity magnitude (m/s²)
    #[serde(default = "default_gravity")]
    pub gravitational_acceleration: f64,
    /// sensor frames relative to base_link
    #[serde(default)]
    pub transforms: Vec<StaticTransform>,
    /// the sensors
    pub sensors: Vec<SensorConfig>,
    /// ENU origin for GNSS; `None` = first fix
    #[serde(default)]
    pub gnss_datum: Option<Geodetic>,
}

fn default_sensor_timeout() -> f64 {
    0.1
}
fn default_world() -> String {
    "odom".into()
}
fn default_base() -> String {
    "base_link".into()
}
fn default_gravity() -> f64 {
    STANDARD_GRAVITY
}

fn matrix_from(values: &[f64], what: &'static str) -> Result<StateMatrix> {
    ensure_finite(values.iter(), what)?;
    match values.len() {
        STATE_SIZE => {
            let mut m = StateMatrix::zeros();
            for (i, v) in values.iter().enumerate() {
                m[(i, i)] = *v;
            }
            Ok(m)
        }
        n if n == STATE_SIZE * STATE_SIZE => Ok(StateMatrix::from_row_slice(values)),
        n => Err(FusionError::Config(format!("{what}: expected 15 or 225 values, got {n}"))),
    }
}

/// Counters the actor publishes as metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FusionStats {
    /// measurements fused
    pub updates: u64,
    /// measurements rejected by the Mahalanobis gate
    pub gated: u64,
    /// messages rejected as bad input (typed errors)
    pub rejected_inputs: u64,
    /// histogram of NIS/dof: [0,.5) [.5,1) [1,2) [2,4) [4,8) [8,16) [16,∞)
    pub nis_histogram: [u64; 7],
    /// NIS of the last update
    pub last_nis: f64,
}

impl FusionStats {
    fn record(&mut self, rep: &UpdateReport) {
        if rep.accepted {
            self.updates += 1;
        } else {
            self.gated += 1;
        }
        self.last_nis = rep.nis;
        #[allow(clippy::cast_precision_loss)]
        let r = rep.nis / rep.dof.max(1) as f64;
        let bin = [0.5, 1.0, 2.0, 4.0, 8.0, 16.0].iter().position(|&b| r < b).unwrap_or(6);
        if let Some(c) = self.nis_histogram.get_mut(bin) {
            *c += 1;
        }
    }
}

/// Estimated state with covariance, ready to publish.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FusedState {
    /// time of the estimate (s)
    pub time: f64,
    /// pose
    pub pose: Pose,
    /// the full 15-vector, state order
    pub state: Vec<f64>,
    /// 15 × 15 covariance, row-major
    pub covariance: Vec<f64>,
}

/// Previous pose of a sensor: time, position, orientation, 6×6 covariance.
type PreviousPose = (f64, Vector3<f64>, Matrix3<f64>, DMatrix<f64>);

#[derive(Debug, Clone, Default)]
struct SensorRuntime {
    last_stamp: Option<f64>,
    relative_origin: Option<(Vector3<f64>, Matrix3<f64>)>,
    previous_pose: Option<PreviousPose>,
}

/// The localizer: sensors in, fused state out.
#[derive(Debug, Clone)]
pub struct Localizer {
    filter: AnyFilter,
    cfg: LocalizerConfig,
    initialized: bool,
    last_time: Option<f64>,
    runtime: Vec<SensorRuntime>,
    stats: FusionStats,
    enu: Option<EnuFrame>,
}

fn normalize_frame(f: &str) -> &str {
    f.trim_start_matches('/')
}

fn quat_to_matrix(q: &[f64; 4]) -> Result<Matrix3<f64>> {
    ensure_finite(q.iter(), "orientation")?;
    let raw = Quaternion::new(q[3], q[0], q[1], q[2]);
    if raw.norm() < 1e-6 {
        return Err(FusionError::Parse("zero-length orientation quaternion".into()));
    }
    Ok(*UnitQuaternion::from_quaternion(raw).to_rotation_matrix().matrix())
}

fn mat3(c: &[f64; 9]) -> Matrix3<f64> {
    Matrix3::from_row_slice(c)
}

fn block6(c: &[f64], offset: usize) -> Result<Matrix3<f64>> {
    if c.len() != 36 {
        return Err(FusionError::Parse(format!("6x6 covariance needs 36 values, got {}", c.len())));
    }
    Ok(Matrix3::from_fn(|r, k| c.get((offset + r) * 6 + offset + k).copied().unwrap_or(0.0)))
}

/// Rotation vector (axis × angle) of a rotation matrix.
fn rotation_vector(r: &Matrix3<f64>) -> Vector3<f64> {
    Rotation3::from_matrix_unchecked(*r).scaled_axis()
}

impl Localizer {
    /// Builds a localizer.
    ///
    /// # Errors
    /// Invalid configuration (sizes, non-finite values, non-PD matrices, duplicate names).
    pub fn new(cfg: LocalizerConfig) -> Result<Self> {
        ensure_finite([cfg.frequency, cfg.sensor_timeout, cfg.gravitational_acceleration].iter(), "localizer config")?;
        if cfg.frequency <= 0.0 {
            return Err(FusionError::Config("frequency must be > 0".into()));
        }
        let q = matrix_from(&cfg.process_noise, "process_noise")?;
        let p0 = matrix_from(&cfg.initial_covariance, "initial_covariance")?;
        for (i, s) in cfg.sensors.iter().enumerate() {
            if cfg.sensors.iter().skip(i + 1).any(|o| o.name == s.name) {
                return Err(FusionError::Config(format!("duplicate sensor name {:?}", s.name)));
            }
            if let Some(t) = s.rejection_threshold
                && !(t.is_finite() && t > 0.0)
            {
                return Err(FusionError::Config(format!("{}: rejection_threshold must be > 0", s.name)));
            }
        }
        for t in &cfg.transforms {
            ensure_finite(t.translation.iter().chain(t.rpy.iter()), "transform")?;
        }
        if let Some(d) = &cfg.gnss_datum {
            Geodetic::new(d.lat_deg, d.lon_deg, d.alt_m)?;
        }
        let filter = AnyFilter::new(cfg.filter, FilterSettings { process_noise: q, two_d_mode: cfg.two_d_mode }, p0)?;
        let enu = cfg.gnss_datum.as_ref().map(EnuFrame::new);
        Ok(Self {
            filter,
            runtime: vec![SensorRuntime::default(); cfg.sensors.len()],
            cfg,
            initialized: false,
            last_time: None,
            stats: FusionStats::default(),
            enu,
        })
    }

    /// Configuration in use.
    #[must_use]
    pub fn config(&self) -> &LocalizerConfig {
        &self.cfg
    }
    /// Index of a sensor by name.
    ///
    /// # Errors
    /// [`FusionError::UnknownSensor`].
    pub fn sensor_index(&self, name: &str) -> Result<usize> {
        self.cfg.sensors.iter().position(|s| s.name == name).ok_or_else(|| FusionError::UnknownSensor(name.into()))
    }
    /// The filter (state, covariance, NEES).
    #[must_use]
    pub fn filter(&self) -> &AnyFilter {
        &self.filter
    }
    /// Whether a first measurement has initialised the state.
    #[must_use]
    pub fn is_initialized(&self) -> bool {
        self.initialized
    }
    /// Time of the current estimate.
    #[must_use]
    pub fn time(&self) -> Option<f64> {
        self.last_time
    }
    /// Current pose.
    #[must_use]
    pub fn pose(&self) -> Pose {
        Pose::from_state(self.filter.state())
    }
    /// Counters.
    #[must_use]
    pub fn stats(&self) -> &FusionStats {
        &self.stats
    }
    /// State and covariance ready to publish.
    #[must_use]
    pub fn fused_state(&self) -> FusedState {
        FusedState {
            time: self.last_time.unwrap_or(0.0),
            pose: self.pose(),
            state: self.filter.state().iter().copied().collect(),
            covariance: self.filter.covariance().transpose().iter().copied().collect(),
        }
    }

    /// Everything the localizer needs to continue exactly where it is: configuration, filter
    /// state and covariance, times, per-sensor baselines (relative origin, previous pose for
    /// differential mode), GNSS ENU origin, counters.
    #[must_use]
    pub fn snapshot(&self) -> LocalizerSnapshot {
        let mat3 = |m: &Matrix3<f64>| {
            let mut a = [0.0; 9];
            a.copy_from_slice(m.as_slice());
            a
        };
        LocalizerSnapshot {
            format: STATE_FORMAT,
            config: self.cfg.clone(),
            filter: self.filter.snapshot(),
            initialized: self.initialized,
            last_time: self.last_time,
            sensors: self
                .cfg
                .sensors
                .iter()
                .zip(&self.runtime)
                .map(|(s, rt)| SensorSnapshot {
                    name: s.name.clone(),
                    last_stamp: rt.last_stamp,
                    relative_origin: rt.relative_origin.map(|(p, r)| FrameSnapshot { position: [p.x, p.y, p.z], rotation: mat3(&r) }),
                    previous_pose: rt.previous_pose.as_ref().map(|(t, p, r, c)| PoseSnapshot {
                        time: *t,
                        position: [p.x, p.y, p.z],
                        rotation: mat3(r),
                        covariance: c.as_slice().to_vec(),
                    }),
                })
                .collect(),
            stats: self.stats.clone(),
            enu: self.enu.map(|e| {
                let (origin, rotation) = e.parts();
                EnuSnapshot { origin, rotation }
            }),
        }
    }

    /// Rebuilds a localizer from a [`Localizer::snapshot`]; it continues bit for bit.
    ///
    /// # Errors
    /// [`FusionError::StateFormat`] for a snapshot of a newer format; [`FusionError::CorruptState`]
    /// for anything that does not fit (invalid configuration, sensors that do not match it,
    /// wrong sizes, non-finite values).
    pub fn from_snapshot(s: LocalizerSnapshot) -> Result<Self> {
        if s.format > STATE_FORMAT {
            return Err(FusionError::StateFormat { found: s.format, supported: STATE_FORMAT });
        }
        if s.format != STATE_FORMAT {
            return Err(FusionError::CorruptState(format!("unknown state format {}", s.format)));
        }
        let corrupt = |e: FusionError| match e {
            FusionError::CorruptState(_) => e,
            other => FusionError::CorruptState(other.to_string()),
        };
        let mut loc = Self::new(s.config).map_err(corrupt)?;
        loc.filter.restore(&s.filter)?;
        if s.sensors.len() != loc.cfg.sensors.len() || s.sensors.iter().zip(&loc.cfg.sensors).any(|(a, b)| a.name != b.name) {
            return Err(FusionError::CorruptState("sensor state does not match the configured sensors".into()));
        }
        let finite = |v: &[f64]| if v.iter().all(|x| x.is_finite()) { Ok(()) } else { Err(FusionError::CorruptState("non-finite value".into())) };
        finite(s.last_time.as_slice())?;
        for (rt, ss) in loc.runtime.iter_mut().zip(&s.sensors) {
            finite(ss.last_stamp.as_slice())?;
            if let Some(o) = &ss.relative_origin {
                finite(&o.position)?;
                finite(&o.rotation)?;
                rt.relative_origin = Some((Vector3::from(o.position), Matrix3::from_column_slice(&o.rotation)));
            }
            if let Some(pp) = &ss.previous_pose {
                if pp.covariance.len() != 36 {
                    return Err(FusionError::CorruptState(format!("previous pose covariance has {} values", pp.covariance.len())));
                }
                finite(&[pp.time])?;
                finite(&pp.position)?;
                finite(&pp.rotation)?;
                finite(&pp.covariance)?;
                rt.previous_pose = Some((
                    pp.time,
                    Vector3::from(pp.position),
                    Matrix3::from_column_slice(&pp.rotation),
                    DMatrix::from_column_slice(6, 6, &pp.covariance),
                ));
            }
            rt.last_stamp = ss.last_stamp;
        }
        loc.enu = match &s.enu {
            Some(e) => Some(EnuFrame::from_parts(&e.origin, &e.rotation).map_err(corrupt)?),
            None => None,
        };
        loc.initialized = s.initialized;
        loc.last_time = s.last_time;
        loc.stats = s.stats;
        Ok(loc)
    }

    /// Predicts forward to `time` without a measurement (the sensor-timeout path).
    ///
    /// # Errors
    /// Non-finite or past `time`.
    pub fn predict_to(&mut self, time: f64) -> Result<()> {
        ensure_finite([time].iter(), "time")?;
        if !self.initialized {
            return Ok(());
        }
        let last = self.last_time.unwrap_or(time);
        if time < last {
            return Err(FusionError::OutOfOrder { time, last });
        }
        self.filter.predict(time - last)?;
        self.last_time = Some(time);
        Ok(())
    }

    fn sensor(&self, idx: usize) -> Result<&SensorConfig> {
        self.cfg.sensors.get(idx).ok_or_else(|| FusionError::UnknownSensor(format!("#{idx}")))
    }

    fn check_time(&self, idx: usize, stamp: f64) -> Result<()> {
        ensure_finite([stamp].iter(), "stamp")?;
        let name = &self.sensor(idx)?.name;
        if let Some(rt) = self.runtime.get(idx)
            && let Some(prev) = rt.last_stamp
        {
            if stamp == prev {
                return Err(FusionError::DuplicateTimestamp { sensor: name.clone(), time: stamp });
            }
            if stamp < prev {
                return Err(FusionError::OutOfOrder { time: stamp, last: prev });
            }
        }
        if let Some(last) = self.last_time
            && stamp < last
        {
            return Err(FusionError::OutOfOrder { time: stamp, last });
        }
        Ok(())
    }

    /// Rotation and translation of a sensor frame in base_link.
    fn frame(&self, frame_id: &str) -> Result<(Matrix3<f64>, Vector3<f64>)> {
        let f = normalize_frame(frame_id);
        if f.is_empty() || f == normalize_frame(&self.cfg.base_link_frame) {
            return Ok((Matrix3::identity(), Vector3::zeros()));
        }
        self.cfg
            .transforms
            .iter()
            .find(|t| normalize_frame(&t.child) == f)
            .map(|t| (t.rotation(), Vector3::from(t.translation)))
            .ok_or_else(|| FusionError::UnknownFrame(frame_id.into()))
    }

    fn reject<T>(&mut self, r: Result<T>) -> Result<T> {
        if r.is_err() {
            self.stats.rejected_inputs += 1;
        }
        r
    }

    /// Fuses one IMU message for sensor `idx`. Returns one report per fused part.
    ///
    /// # Errors
    /// Bad values, unknown frame, out-of-order/duplicate stamps, non-PD covariances.
    pub fn process_imu(&mut self, idx: usize, msg: &ImuMessage) -> Result<Vec<UpdateReport>> {
        let r = self.imu_measurements(idx, msg);
        let ms = self.reject(r)?;
        self.fuse(idx, msg.header.stamp, ms)
    }

    /// Fuses one odometry message for sensor `idx`.
    ///
    /// # Errors
    /// As [`Localizer::process_imu`].
    pub fn process_odometry(&mut self, idx: usize, msg: &OdometryMessage) -> Result<Vec<UpdateReport>> {
        let r = self.odometry_measurements(idx, msg);
        let ms = self.reject(r)?;
        self.fuse(idx, msg.header.stamp, ms)
    }

    /// Fuses one GNSS fix for sensor `idx` (position in the local ENU plane; a fix with
    /// status < 0 is documented rejection: `Ok` with no report).
    ///
    /// # Errors
    /// As [`Localizer::process_imu`].
    pub fn process_navsat(&mut self, idx: usize, msg: &NavSatFixMessage) -> Result<Vec<UpdateReport>> {
        let r = self.navsat_measurements(idx, msg);
        let ms = self.reject(r)?;
        self.fuse(idx, msg.header.stamp, ms)
    }

    fn fuse(&mut self, idx: usize, stamp: f64, ms: Vec<Measurement>) -> Result<Vec<UpdateReport>> {
        if let Some(rt) = self.runtime.get_mut(idx) {
            rt.last_stamp = Some(stamp);
        }
        let mut reports = Vec::with_capacity(ms.len());
        for m in ms {
            if let Some(rep) = self.process_measurement(&m)? {
                reports.push(rep);
            }
        }
        Ok(reports)
    }

    /// robot_localization's FilterBase::processMeasurement: the first measurement initialises the
    /// fields it measures; later ones predict to the measurement time and correct.
    fn process_measurement(&mut self, m: &Measurement) -> Result<Option<UpdateReport>> {
        if !self.initialized {
            let mut x = *self.filter.state();
            let mut p = *self.filter.covariance();
            let mut r = (&m.covariance + m.covariance.transpose()) * 0.5;
            for i in 0..r.nrows() {
                r[(i, i)] = r[(i, i)].abs().max(MIN_VARIANCE);
            }
            for (a, &i) in m.indices.iter().enumerate() {
                x[i] = m.values.get(a).copied().unwrap_or(0.0);
                for (b, &j) in m.indices.iter().enumerate() {
                    p[(i, j)] = r[(a, b)];
                }
            }
            self.filter.set_state(x, p)?;
            self.initialized = true;
            self.last_time = Some(m.time);
            return Ok(None);
        }
        let last = self.last_time.unwrap_or(m.time);
        let dt = m.time - last;
        // predict + correct is all-or-nothing: a rejected measurement leaves the filter as it was
        let snapshot = self.filter.clone();
        let result = if dt > 0.0 { self.filter.predict(dt) } else { Ok(()) }.and_then(|()| self.filter.correct(m));
        match result {
            Ok(rep) => {
                if dt > 0.0 {
                    self.last_time = Some(m.time);
                }
                self.stats.record(&rep);
                Ok(Some(rep))
            }
            Err(e) => {
                self.filter = snapshot;
                self.stats.rejected_inputs += 1;
                Err(e)
            }
        }
    }

    fn gate(&self, idx: usize) -> Option<f64> {
        self.cfg.sensors.get(idx).and_then(|s| s.rejection_threshold).map(|t| t * t)
    }

    fn measurement(
        &self,
        idx: usize,
        time: f64,
        fields: &[(usize, f64)],
        cov: &Matrix3<f64>,
        mask: &Mask,
    ) -> Result<Option<Measurement>> {
        let chosen: Vec<(usize, usize, f64)> = fields
            .iter()
            .enumerate()
            .filter(|(_, (i, _))| mask.get(*i).copied().unwrap_or(false))
            .map(|(k, (i, v))| (k, *i, *v))
            .collect();
        if chosen.is_empty() {
            return Ok(None);
        }
        let n = chosen.len();
        let covariance = DMatrix::from_fn(n, n, |a, b| cov[(chosen[a].0, chosen[b].0)]);
        ensure_finite(covariance.iter(), "measurement covariance")?;
        ensure_finite(chosen.iter().map(|c| &c.2), "measurement value")?;
        Ok(Some(Measurement {
            time,
            indices: chosen.iter().map(|c| c.1).collect(),
            values: chosen.iter().map(|c| c.2).collect(),
            covariance,
            mahalanobis_threshold: self.gate(idx),
        }))
    }

    fn imu_measurements(&mut self, idx: usize, msg: &ImuMessage) -> Result<Vec<Measurement>> {
        let sensor = self.sensor(idx)?.clone();
        if sensor.kind != SensorKind::Imu {
            return Err(FusionError::Config(format!("sensor {} is not an IMU", sensor.name)));
        }
        let t = msg.header.stamp;
        self.check_time(idx, t)?;
        ensure_finite(
            msg.orientation_covariance
                .iter()
                .chain(&msg.angular_velocity)
                .chain(&msg.angular_velocity_covariance)
                .chain(&msg.linear_acceleration)
                .chain(&msg.linear_acceleration_covariance),
            "imu message",
        )?;
        let (r_bs, _) = self.frame(&msg.header.frame_id)?;
        let has_orientation = (msg.orientation_covariance[0] + 1.0).abs() > 1e-9;
        let r_ws = if has_orientation { Some(quat_to_matrix(&msg.orientation)?) } else { None };
        let mut out = Vec::new();
        let mask = sensor.mask;

        // orientation (robot_localization: sensor orientation with the mounting rotation removed)
        if has_orientation
            && let Some(r_ws) = r_ws
            && mask[ROLL..=YAW].iter().any(|&b| b)
        {
            let r_wb = r_ws * r_bs.transpose();
            let cov = r_bs * mat3(&msg.orientation_covariance) * r_bs.transpose();
            if let Some(m) = self.orientation_measurement(idx, &sensor, t, &r_wb, &cov)? {
                out.push(m);
            }
        }
        // angular velocity
        if (msg.angular_velocity_covariance[0] + 1.0).abs() > 1e-9 {
            let w = r_bs * Vector3::from(msg.angular_velocity);
            let cov = r_bs * mat3(&msg.angular_velocity_covariance) * r_bs.transpose();
            let fields = [(VROLL, w.x), (VROLL + 1, w.y), (VROLL + 2, w.z)];
            if let Some(m) = self.measurement(idx, t, &fields, &cov, &mask)? {
                out.push(m);
            }
        }
        // linear acceleration, gravity removed in the sensor frame, then rotated to base_link
        if (msg.linear_acceleration_covariance[0] + 1.0).abs() > 1e-9 && mask[AX..AX + 3].iter().any(|&b| b) {
            let mut a = Vector3::from(msg.linear_acceleration);
            if sensor.remove_gravitational_acceleration {
                let r_ws = match r_ws {
                    Some(r) => r,
                    None => {
                        let x = self.filter.state();
                        rotation_rpy(x[ROLL], x[PITCH], x[YAW]) * r_bs
                    }
                };
                a -= r_ws.transpose() * Vector3::new(0.0, 0.0, self.cfg.gravitational_acceleration);
            }
            let a = r_bs * a;
            let cov = r_bs * mat3(&msg.linear_acceleration_covariance) * r_bs.transpose();
            let fields = [(AX, a.x), (AX + 1, a.y), (AX + 2, a.z)];
            if let Some(m) = self.measurement(idx, t, &fields, &cov, &mask)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Orientation in the world → measurement honouring relative / differential modes.
    fn orientation_measurement(
        &mut self,
        idx: usize,
        sensor: &SensorConfig,
        t: f64,
        r_wb: &Matrix3<f64>,
        cov: &Matrix3<f64>,
    ) -> Result<Option<Measurement>> {
        let pose6 = {
            let mut c = DMatrix::zeros(6, 6);
            for r in 0..3 {
                for k in 0..3 {
                    c[(3 + r, 3 + k)] = cov[(r, k)];
                }
            }
            c
        };
        self.pose_measurement(idx, sensor, t, &Vector3::zeros(), r_wb, &pose6)
    }

    /// A pose (position + orientation of base_link in the world) → measurement.
    fn pose_measurement(
        &mut self,
        idx: usize,
        sensor: &SensorConfig,
        t: f64,
        p: &Vector3<f64>,
        r: &Matrix3<f64>,
        cov6: &DMatrix<f64>,
    ) -> Result<Option<Measurement>> {
        let mask = sensor.mask;
        let (mut p, mut r) = (*p, *r);
        if sensor.relative {
            let rt = self.runtime.get_mut(idx).ok_or_else(|| FusionError::UnknownSensor(sensor.name.clone()))?;
            let (p0, r0) = *rt.relative_origin.get_or_insert((p, r));
            p = r0.transpose() * (p - p0);
            r = r0.transpose() * r;
        }
        if sensor.differential {
            // velocities in the body frame from consecutive poses
            let prev = self.runtime.get(idx).and_then(|rt| rt.previous_pose.clone());
            if let Some(rt) = self.runtime.get_mut(idx) {
                rt.previous_pose = Some((t, p, r, cov6.clone()));
            }
            let Some((t0, p0, r0, c0)) = prev else { return Ok(None) };
            let dt = t - t0;
            if dt <= 0.0 {
                return Ok(None);
            }
            let v = r0.transpose() * (p - p0) / dt;
            let w = rotation_vector(&(r0.transpose() * r)) / dt;
            let sum = (cov6 + c0) / (dt * dt);
            let cov = DMatrix::from_fn(6, 6, |a, b| sum[(a, b)]);
            let mut vmask = [false; STATE_SIZE];
            vmask[VX..VX + 6].copy_from_slice(&mask[X..X + 6]);
            let fields = [(VX, v.x), (VX + 1, v.y), (VX + 2, v.z), (VROLL, w.x), (VROLL + 1, w.y), (VROLL + 2, w.z)];
            return self.measurement6(idx, t, &fields, &cov, &vmask);
        }
        let (roll, pitch, yaw) = rpy_of(&r);
        let fields = [(X, p.x), (X + 1, p.y), (X + 2, p.z), (ROLL, roll), (PITCH, pitch), (YAW, wrap_angle(yaw))];
        self.measurement6(idx, t, &fields, cov6, &mask)
    }

    fn measurement6(
        &self,
        idx: usize,
        time: f64,
        fields: &[(usize, f64); 6],
        cov: &DMatrix<f64>,
        mask: &Mask,
    ) -> Result<Option<Measurement>> {
        let chosen: Vec<usize> = (0..6).filter(|&k| mask.get(fields[k].0).copied().unwrap_or(false)).collect();
        if chosen.is_empty() {
            return Ok(None);
        }
        let n = chosen.len();
        let covariance = DMatrix::from_fn(n, n, |a, b| cov[(chosen[a], chosen[b])]);
        ensure_finite(covariance.iter(), "measurement covariance")?;
        let values: Vec<f64> = chosen.iter().map(|&k| fields[k].1).collect();
        ensure_finite(values.iter(), "measurement value")?;
        Ok(Some(Measurement {
            time,
            indices: chosen.iter().map(|&k| fields[k].0).collect(),
            values,
            covariance,
            mahalanobis_threshold: self.gate(idx),
        }))
    }

    fn odometry_measurements(&mut self, idx: usize, msg: &OdometryMessage) -> Result<Vec<Measurement>> {
        let sensor = self.sensor(idx)?.clone();
        if sensor.kind != SensorKind::Odometry {
            return Err(FusionError::Config(format!("sensor {} is not odometry", sensor.name)));
        }
        let t = msg.header.stamp;
        self.check_time(idx, t)?;
        ensure_finite(
            msg.position
                .iter()
                .chain(&msg.linear)
                .chain(&msg.angular)
                .chain(&msg.pose_covariance)
                .chain(&msg.twist_covariance),
            "odometry message",
        )?;
        if msg.pose_covariance.len() != 36 || msg.twist_covariance.len() != 36 {
            return Err(FusionError::Parse("odometry covariances need 36 values".into()));
        }
        let mask = sensor.mask;
        let (r_bc, t_bc) = self.frame(&msg.child_frame_id)?;
        let mut out = Vec::new();
        if mask[X..=YAW].iter().any(|&b| b) {
            let wf = normalize_frame(&msg.header.frame_id);
            if !wf.is_empty() && wf != normalize_frame(&self.cfg.world_frame) {
                return Err(FusionError::UnknownFrame(msg.header.frame_id.clone()));
            }
            let r_wc = quat_to_matrix(&msg.orientation)?;
            // pose of base_link: T_wb = T_wc · T_bc⁻¹
            let r_wb = r_wc * r_bc.transpose();
            let p_wb = Vector3::from(msg.position) - r_wb * t_bc;
            let cov6 = DMatrix::from_row_slice(6, 6, &msg.pose_covariance);
            if let Some(m) = self.pose_measurement(idx, &sensor, t, &p_wb, &r_wb, &cov6)? {
                out.push(m);
            }
        }
        if mask[VX..VX + 6].iter().any(|&b| b) {
            let w_b = r_bc * Vector3::from(msg.angular);
            // velocity of base_link from the velocity of the child frame: v_b = v_c − ω × t
            let v_b = r_bc * Vector3::from(msg.linear) - w_b.cross(&t_bc);
            let lin = block6(&msg.twist_covariance, 0)?;
            let ang = block6(&msg.twist_covariance, 3)?;
            let lin = r_bc * lin * r_bc.transpose();
            let ang = r_bc * ang * r_bc.transpose();
            let mut cov = DMatrix::zeros(6, 6);
            for a in 0..3 {
                for b in 0..3 {
                    cov[(a, b)] = lin[(a, b)];
                    cov[(3 + a, 3 + b)] = ang[(a, b)];
                }
            }
            let fields = [(VX, v_b.x), (VX + 1, v_b.y), (VX + 2, v_b.z), (VROLL, w_b.x), (VROLL + 1, w_b.y), (VROLL + 2, w_b.z)];
            if let Some(m) = self.measurement6(idx, t, &fields, &cov, &mask)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    fn navsat_measurements(&mut self, idx: usize, msg: &NavSatFixMessage) -> Result<Vec<Measurement>> {
        let sensor = self.sensor(idx)?.clone();
        if sensor.kind != SensorKind::Gnss {
            return Err(FusionError::Config(format!("sensor {} is not GNSS", sensor.name)));
        }
        let t = msg.header.stamp;
        self.check_time(idx, t)?;
        ensure_finite(msg.position_covariance.iter(), "navsat covariance")?;
        let g = Geodetic::new(msg.latitude, msg.longitude, msg.altitude)?;
        if msg.status < 0 {
            return Ok(Vec::new());
        }
        let enu = *self.enu.get_or_insert_with(|| EnuFrame::new(&g));
        let p = enu.to_enu(&g);
        let mut cov = mat3(&msg.position_covariance);
        if msg.position_covariance_type == 0 || cov.iter().all(|v| *v == 0.0) {
            cov = Matrix3::identity();
        }
        let mut cov6 = DMatrix::zeros(6, 6);
        for a in 0..3 {
            for b in 0..3 {
                cov6[(a, b)] = cov[(a, b)];
            }
            cov6[(3 + a, 3 + a)] = 1.0;
        }
        let mut posonly = sensor.clone();
        for k in ROLL..STATE_SIZE {
            posonly.mask[k] = false;
        }
        Ok(self
            .pose_measurement(idx, &posonly, t, &p, &Matrix3::identity(), &cov6)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{VY, VYAW, VZ, Y, Z};

    fn imu(t: f64, frame: &str) -> ImuMessage {
        ImuMessage {
            header: Header { stamp: t, frame_id: frame.into() },
            orientation: [0.0, 0.0, 0.0, 1.0],
            orientation_covariance: [1e-4, 0.0, 0.0, 0.0, 1e-4, 0.0, 0.0, 0.0, 1e-4],
            angular_velocity: [0.0, 0.0, 0.1],
            angular_velocity_covariance: [1e-4, 0.0, 0.0, 0.0, 1e-4, 0.0, 0.0, 0.0, 1e-4],
            linear_acceleration: [0.0, 0.0, STANDARD_GRAVITY],
            linear_acceleration_covariance: [1e-3, 0.0, 0.0, 0.0, 1e-3, 0.0, 0.0, 0.0, 1e-3],
        }
    }

    fn diag6(v: f64) -> Vec<f64> {
        (0..36).map(|i| if i % 7 == 0 { v } else { 0.0 }).collect()
    }

    fn odom(t: f64, x: f64, vx: f64) -> OdometryMessage {
        OdometryMessage {
            header: Header { stamp: t, frame_id: "odom".into() },
            child_frame_id: "base_link".into(),
            position: [x, 0.0, 0.0],
            orientation: [0.0, 0.0, 0.0, 1.0],
            pose_covariance: diag6(1e-3),
            linear: [vx, 0.0, 0.0],
            angular: [0.0; 3],
            twist_covariance: diag6(1e-3),
        }
    }

    fn cfg(odom_mask: &[usize], imu_mask: &[usize]) -> LocalizerConfig {
        let mut m1 = [false; STATE_SIZE];
        for &i in odom_mask {
            m1[i] = true;
        }
        let mut m2 = [false; STATE_SIZE];
        for &i in imu_mask {
            m2[i] = true;
        }
        LocalizerConfig {
            filter: FilterKind::Ekf,
            frequency: 50.0,
            sensor_timeout: 0.1,
            two_d_mode: false,
            world_frame: "odom".into(),
            base_link_frame: "base_link".into(),
            process_noise: vec![0.01; STATE_SIZE],
            initial_covariance: vec![1e-9; STATE_SIZE],
            gravitational_acceleration: STANDARD_GRAVITY,
            transforms: vec![StaticTransform { child: "imu_link".into(), translation: [0.0; 3], rpy: [std::f64::consts::FRAC_PI_2, 0.0, 0.0] }],
            sensors: vec![
                SensorConfig {
                    name: "odom0".into(),
                    topic: String::new(),
                    kind: SensorKind::Odometry,
                    mask: m1,
                    differential: false,
                    relative: false,
                    remove_gravitational_acceleration: false,
                    rejection_threshold: None,
                },
                SensorConfig {
                    name: "imu0".into(),
                    topic: String::new(),
                    kind: SensorKind::Imu,
                    mask: m2,
                    differential: false,
                    relative: false,
                    remove_gravitational_acceleration: true,
                    rejection_threshold: None,
                },
            ],
            gnss_datum: None,
        }
    }

    #[test]
    fn odometry_twist_integrates_position() {
        let mut l = Localizer::new(cfg(&[VX, VY, VZ, VYAW], &[])).unwrap();
        for k in 0..=100 {
            l.process_odometry(0, &odom(f64::from(k) * 0.02, 0.0, 1.0)).unwrap();
        }
        let p = l.pose();
        assert!((p.x - 2.0).abs() < 0.02, "{p:?}");
        assert!(p.y.abs() < 1e-6);
        assert_eq!(l.stats().updates, 100);
    }

    #[test]
    fn imu_gravity_is_removed_and_frames_rotated() {
        let mut l = Localizer::new(cfg(&[], &[ROLL, PITCH, YAW, VROLL, VROLL + 1, VYAW, AX, AX + 1, AX + 2])).unwrap();
        for k in 0..50 {
            l.process_imu(1, &imu(f64::from(k) * 0.01, "base_link")).unwrap();
        }
        let x = l.filter().state();
        assert!(x[AX].abs() < 1e-6 && x[AX + 2].abs() < 1e-6, "gravity left in: {}", x[AX + 2]);
        assert!((x[VYAW] - 0.1).abs() < 1e-3);
        // imu_link is rolled +90° on the robot: a sensor z rate is a body −y rate
        let mut l = Localizer::new(cfg(&[], &[VROLL, VROLL + 1, VYAW])).unwrap();
        let mut m = imu(0.0, "imu_link");
        m.orientation_covariance[0] = -1.0;
        l.process_imu(1, &m).unwrap();
        let x = l.filter().state();
        assert!((x[VROLL + 1] + 0.1).abs() < 1e-9 && x[VYAW].abs() < 1e-9, "{x:?}");
    }

    #[test]
    fn relative_and_differential_pose() {
        let mut c = cfg(&[X, Y, Z, ROLL, PITCH, YAW], &[]);
        c.sensors[0].relative = true;
        let mut l = Localizer::new(c).unwrap();
        l.process_odometry(0, &odom(0.0, 5.0, 0.0)).unwrap();
        for k in 1..=10 {
            l.process_odometry(0, &odom(f64::from(k) * 0.1, 5.5, 0.0)).unwrap();
        }
        assert!((l.pose().x - 0.5).abs() < 0.05, "{:?}", l.pose());

        let mut c = cfg(&[X, Y, Z, ROLL, PITCH, YAW], &[]);
        c.sensors[0].differential = true;
        let mut l = Localizer::new(c).unwrap();
        for k in 0..=20 {
            l.process_odometry(0, &odom(f64::from(k) * 0.1, 10.0 + f64::from(k) * 0.1, 0.0)).unwrap();
        }
        assert!((l.filter().state()[VX] - 1.0).abs() < 0.01);
        assert!((l.pose().x - 1.9).abs() < 0.1, "{:?}", l.pose());
    }

    #[test]
    fn gnss_fix_to_enu_position() {
        let mut c = cfg(&[], &[]);
        c.sensors[1] = SensorConfig {
            name: "gps0".into(),
            topic: String::new(),
            kind: SensorKind::Gnss,
            mask: [true, true, true, false, false, false, false, false, false, false, false, false, false, false, false],
            differential: false,
            relative: false,
            remove_gravitational_acceleration: false,
            rejection_threshold: Some(5.0),
        };
        c.gnss_datum = Some(Geodetic::new(42.0, -71.0, 0.0).unwrap());
        let mut l = Localizer::new(c).unwrap();
        let fix = |t: f64, lat: f64| NavSatFixMessage {
            header: Header { stamp: t, frame_id: "gps".into() },
            status: 0,
            latitude: lat,
            longitude: -71.0,
            altitude: 0.0,
            position_covariance: [0.01, 0.0, 0.0, 0.0, 0.01, 0.0, 0.0, 0.0, 0.01],
            position_covariance_type: 2,
        };
        l.process_navsat(1, &fix(0.0, 42.0001)).unwrap();
        assert!((l.pose().y - 11.1).abs() < 0.1, "{:?}", l.pose());
        // a 1 km jump is gated
        let reps = l.process_navsat(1, &fix(0.1, 42.01)).unwrap();
        assert!(!reps[0].accepted);
        assert_eq!(l.stats().gated, 1);
        let mut nofix = fix(0.2, 42.0);
        nofix.status = -1;
        assert!(l.process_navsat(1, &nofix).unwrap().is_empty());
    }

    #[test]
    fn bad_input_is_rejected_with_typed_errors() {
        let mut l = Localizer::new(cfg(&[VX, VY, VZ, VYAW], &[ROLL, PITCH, YAW, AX])).unwrap();
        l.process_odometry(0, &odom(1.0, 0.0, 1.0)).unwrap();
        l.process_imu(1, &imu(1.1, "base_link")).unwrap();
        let before = *l.filter().state();
        // duplicate timestamp from the same sensor
        assert!(matches!(l.process_imu(1, &imu(1.1, "base_link")), Err(FusionError::DuplicateTimestamp { .. })));
        // out of order
        assert!(matches!(l.process_odometry(0, &odom(0.5, 0.0, 1.0)), Err(FusionError::OutOfOrder { .. })));
        // unknown frame
        assert_eq!(l.process_imu(1, &imu(1.2, "laser")), Err(FusionError::UnknownFrame("laser".into())));
        // NaN / inf
        let mut m = imu(1.3, "base_link");
        m.linear_acceleration[0] = f64::NAN;
        assert!(matches!(l.process_imu(1, &m), Err(FusionError::NonFinite(_))));
        let mut o = odom(1.3, 0.0, f64::INFINITY);
        assert!(matches!(l.process_odometry(0, &o), Err(FusionError::NonFinite(_))));
        // non-PD covariance
        o = odom(1.3, 0.0, 1.0);
        o.twist_covariance[1] = 1.0;
        o.twist_covariance[6] = 1.0;
        assert!(matches!(l.process_odometry(0, &o), Err(FusionError::NotPositiveDefinite(_))));
        // zero quaternion, short covariance, unknown sensor, wrong kind
        let mut m = imu(1.4, "base_link");
        m.orientation = [0.0; 4];
        assert!(matches!(l.process_imu(1, &m), Err(FusionError::Parse(_))));
        let mut o = odom(1.4, 0.0, 1.0);
        o.pose_covariance.truncate(3);
        assert!(matches!(l.process_odometry(0, &o), Err(FusionError::Parse(_))));
        assert!(matches!(l.process_imu(7, &imu(1.5, "base_link")), Err(FusionError::UnknownSensor(_))));
        assert!(matches!(l.process_imu(0, &imu(1.5, "base_link")), Err(FusionError::Config(_))));
        assert!(l.sensor_index("nope").is_err());
        assert!(l.stats().rejected_inputs >= 8);
        // none of it moved the filter
        assert_eq!(*l.filter().state(), before);
        // and it still works afterwards
        l.process_odometry(0, &odom(1.6, 0.0, 1.0)).unwrap();
    }

    #[test]
    fn bad_config_is_rejected() {
        let mut c = cfg(&[VX], &[]);
        c.process_noise = vec![0.1; 3];
        assert!(matches!(Localizer::new(c), Err(FusionError::Config(_))));
        let mut c = cfg(&[VX], &[]);
        c.initial_covariance[2] = -1.0;
        assert!(matches!(Localizer::new(c), Err(FusionError::NotPositiveDefinite(_))));
        let mut c = cfg(&[VX], &[]);
        c.frequency = f64::NAN;
        assert!(matches!(Localizer::new(c), Err(FusionError::NonFinite(_))));
        let mut c = cfg(&[VX], &[]);
        c.sensors[1].name = "odom0".into();
        assert!(matches!(Localizer::new(c), Err(FusionError::Config(_))));
    }

    #[test]
    fn ukf_localizer_runs_same_interface() {
        let mut c = cfg(&[VX, VY, VZ, VYAW], &[]);
        c.filter = FilterKind::Ukf;
        let mut l = Localizer::new(c).unwrap();
        for k in 0..=50 {
            l.process_odometry(0, &odom(f64::from(k) * 0.02, 0.0, 1.0)).unwrap();
        }
        assert!((l.pose().x - 1.0).abs() < 0.02, "{:?}", l.pose());
        let json = serde_json::to_string(&l.fused_state()).unwrap();
        assert!(json.contains("\"pose\""));
    }
}
