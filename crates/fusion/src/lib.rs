//! edgecell fusion domain crate.
//!
//! * [`state`], [`filter`]: robot_localization's 15-state model; [`Ekf`] and [`Ukf`] behind the
//!   [`StateEstimator`] trait (Joseph-form update, Mahalanobis gating, NIS/NEES, 2D mode).
//! * [`localizer`]: sensor front end (odometry / IMU / GNSS messages, masks, frames, gravity
//!   removal, differential and relative modes) → [`Localizer`].
//! * [`persist`]: the localizer's complete state as a snapshot, kept in a versioned store with
//!   compare-and-swap ([`persist::CachedLocalizer`]).
//! * [`bag`], [`replay`]: ROS1 bag reader, presets reproducing robot_localization's tests,
//!   [`replay_bag`].
//! * [`ahrs`]: orientation filter for raw IMU/MARG data, x-io CSV reader.
//! * [`tracker`], [`assignment`]: multi-target GNN tracker, Hungarian algorithm, scenarios, metrics.
//! * [`iot`]: windowed aggregation, anomaly flags, batching, [`iot::StateStore`].
//!
//! No threads and no file system in the library: readers take bytes or `impl Read`, so the crate
//! builds for `wasm32-wasip2` as well.

#![forbid(unsafe_code)]

pub mod ahrs;
pub mod assignment;
pub mod bag;
pub mod error;
pub mod filter;
pub mod geo;
pub mod iot;
pub mod localizer;
pub mod persist;
pub mod replay;
pub mod state;
pub mod tracker;
pub mod wire;

pub use error::{FusionError, Result};
pub use filter::{AnyFilter, Ekf, FilterKind, FilterSettings, FilterSnapshot, Measurement, StateEstimator, Ukf, UpdateReport};
pub use localizer::{
    FusedState, FusionStats, ImuMessage, Localizer, LocalizerConfig, NavSatFixMessage, OdometryMessage, SensorConfig,
    SensorKind,
};
pub use persist::{CachedLocalizer, LocalizerSnapshot, PersistOptions};
pub use replay::{PRESET_NAMES, ReplayOutput, preset, replay_bag};
pub use state::Pose;
