//! EKF predict + IMU update (15-state), the same with the UKF, tracker update with 100 targets,
//! IoT aggregation throughput, and encoding/decoding a localizer's persisted state.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use edgecell_fusion::filter::{Ekf, FilterSettings, Measurement, StateEstimator, Ukf};
use edgecell_fusion::iot::{Aggregator, IotConfig, Reading, Window};
use edgecell_fusion::localizer::{Header, ImuMessage, Localizer};
use edgecell_fusion::replay::preset;
use edgecell_fusion::state::{AX, ROLL, STATE_SIZE, StateMatrix, StateVector, VROLL, YAW};
use edgecell_fusion::tracker::{ScenarioConfig, Tracker, TrackerConfig, generate_scenario};
use nalgebra::DMatrix;

fn imu_measurement() -> Measurement {
    // roll pitch yaw, angular velocity, linear acceleration: 9 fields like robot_localization's imu0
    let indices: Vec<usize> = (ROLL..=YAW).chain(VROLL..VROLL + 3).chain(AX..AX + 3).collect();
    let n = indices.len();
    Measurement {
        time: 0.0,
        values: vec![0.01, -0.02, 0.3, 0.0, 0.0, 0.05, 0.1, 0.0, 0.0],
        covariance: DMatrix::identity(n, n) * 2.5e-5,
        indices,
        mahalanobis_threshold: None,
    }
}

fn settings() -> FilterSettings {
    let q = [0.03, 0.03, 0.04, 0.03, 0.03, 0.06, 0.025, 0.025, 0.05, 0.002, 0.002, 0.004, 0.01, 0.01, 0.01];
    let mut m = StateMatrix::zeros();
    for (i, v) in q.iter().enumerate() {
        m[(i, i)] = *v;
    }
    FilterSettings { process_noise: m, two_d_mode: false }
}

fn bench_filters(c: &mut Criterion) {
    let m = imu_measurement();
    let mut g = c.benchmark_group("ekf_step");
    g.bench_function("ekf_predict_imu_update_15state", |b| {
        let mut f = Ekf::new(settings(), StateMatrix::identity() * 1e-3).unwrap();
        let mut x = StateVector::zeros();
        x[6] = 1.0;
        f.set_state(x, StateMatrix::identity() * 1e-3).unwrap();
        b.iter(|| {
            f.predict(black_box(0.02)).unwrap();
            black_box(f.correct(black_box(&m)).unwrap());
        });
    });
    g.bench_function("ekf_predict_only", |b| {
        let mut f = Ekf::new(settings(), StateMatrix::identity() * 1e-3).unwrap();
        b.iter(|| f.predict(black_box(0.02)).unwrap());
    });
    g.bench_function("ukf_predict_imu_update_15state", |b| {
        let mut f = Ukf::new(settings(), StateMatrix::identity() * 1e-3).unwrap();
        b.iter(|| {
            f.predict(black_box(0.02)).unwrap();
            black_box(f.correct(black_box(&m)).unwrap());
        });
    });
    g.bench_function("localizer_imu_message", |b| {
        let mut l = Localizer::new(preset("robot-localization-test2").unwrap()).unwrap();
        let mut t = 0.0;
        let mut msg = imu_message();
        b.iter(|| {
            t += 0.02;
            msg.header.stamp = t;
            black_box(l.process_imu(1, &msg).unwrap());
        });
    });
    g.finish();
    let _ = STATE_SIZE;
}

/// A Jackal IMU message with test2's covariances, at stamp 0.
fn imu_message() -> ImuMessage {
    ImuMessage {
        header: Header { stamp: 0.0, frame_id: "base_link".into() },
        orientation: [0.0043, 0.0308, 0.1796, 0.9832],
        orientation_covariance: [2.6e-7, 0.0, 0.0, 0.0, 2.6e-7, 0.0, 0.0, 0.0, 2.5e-5],
        angular_velocity: [0.006, -0.002, 0.04],
        angular_velocity_covariance: [2.5e-5, 0.0, 0.0, 0.0, 2.5e-5, 0.0, 0.0, 0.0, 2.5e-5],
        linear_acceleration: [-0.59, 0.15, 9.7],
        linear_acceleration_covariance: [2.5e-5, 0.0, 0.0, 0.0, 2.5e-5, 0.0, 0.0, 0.0, 2.5e-5],
    }
}

/// A test2 localizer after 200 IMU messages (initialised, full covariance).
fn running_localizer() -> Localizer {
    let mut l = Localizer::new(preset("robot-localization-test2").unwrap()).unwrap();
    let mut msg = imu_message();
    for k in 0..200 {
        msg.header.stamp = f64::from(k) * 0.02;
        l.process_imu(1, &msg).unwrap();
    }
    l
}

fn bench_state(c: &mut Criterion) {
    const MAX: usize = edgecell_fusion::persist::DEFAULT_MAX_STATE_BYTES;
    let l = running_localizer();
    let bytes = l.to_state_bytes(MAX).unwrap();
    let mut g = c.benchmark_group("localizer_state");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| b.iter(|| black_box(l.to_state_bytes(MAX).unwrap())));
    g.bench_function("decode", |b| b.iter(|| black_box(Localizer::from_state_bytes(black_box(&bytes), MAX).unwrap())));
    g.finish();
}

fn bench_tracker(c: &mut Criterion) {
    let frames = generate_scenario(&ScenarioConfig { targets: 100, frames: 60, area: 2000.0, clutter: 10.0, ..ScenarioConfig::default() }).unwrap();
    let warm: Vec<Vec<[f64; 2]>> = frames.iter().map(|f| f.detections.iter().map(|d| d.position).collect()).collect();
    let mut g = c.benchmark_group("tracker");
    g.bench_function(BenchmarkId::new("gnn_update", "100_targets"), |b| {
        // steady state: 50 scans of warm-up, then time one scan at a time on clones
        let mut tr = Tracker::new(TrackerConfig::default()).unwrap();
        for (k, d) in warm.iter().take(50).enumerate() {
            tr.step(k as f64 * 0.1, d).unwrap();
        }
        let next = &warm[50];
        b.iter_batched(
            || tr.clone(),
            |mut t| black_box(t.step(5.0, next).unwrap()),
            criterion::BatchSize::SmallInput,
        );
    });
    g.finish();
}

fn bench_iot(c: &mut Criterion) {
    let readings: Vec<Reading> = (0..10_000u64)
        .map(|i| Reading { sensor: format!("s{}", i % 16), time_ms: i * 10, value: 20.0 + ((i * 7919) % 100) as f64 * 0.01 })
        .collect();
    let mut g = c.benchmark_group("iot");
    g.throughput(Throughput::Elements(readings.len() as u64));
    for (name, window) in [
        ("tumbling_1s", Window::Tumbling { size_ms: 1000 }),
        ("sliding_1s_250ms", Window::Sliding { size_ms: 1000, slide_ms: 250 }),
    ] {
        g.bench_function(BenchmarkId::new("aggregate", name), |b| {
            b.iter(|| {
                let mut a = Aggregator::new(IotConfig { window, ..IotConfig::default() }).unwrap();
                let mut n = 0usize;
                for r in &readings {
                    n += a.ingest(r).unwrap().len();
                }
                black_box(n)
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench_filters, bench_state, bench_tracker, bench_iot);
criterion_main!(benches);
