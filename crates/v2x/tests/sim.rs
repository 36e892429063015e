//! Simulator + evaluator: seeded determinism, labels, and detection on values.
#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::cast_lossless
)]

use edgecell_v2x::config::Config;
use edgecell_v2x::sim::{
    AttackType, HUSKY_FIX_CSV, SimConfig, simulate, simulate_and_evaluate, track_from_fix_csv,
};

#[test]
fn husky_track_is_real_motion() {
    let t = track_from_fix_csv(HUSKY_FIX_CSV, 7).expect("track");
    assert!(
        t.samples.len() > 390 && t.samples.len() < 400,
        "{}",
        t.samples.len()
    );
    let path: f64 = t.samples.windows(2).map(|w| w[0].pos.dist(w[1].pos)).sum();
    assert!(path > 50.0 && path < 2000.0, "path {path}");
}

#[test]
fn simulation_is_seeded_and_labelled() {
    let base = track_from_fix_csv(HUSKY_FIX_CSV, 7).expect("track");
    let cfg = SimConfig {
        attack: AttackType::RandomPosOffset,
        duration_s: 60.0,
        ..SimConfig::default()
    };
    let a = simulate(&cfg, &base).expect("sim");
    let b = simulate(&cfg, &base).expect("sim");
    assert_eq!(a.records, b.records);
    let labelled = a
        .records
        .iter()
        .filter(|r| r.attack_type.as_deref() == Some("RandomPosOffset"))
        .count();
    let beacons = a.records.iter().filter(|r| r.kind == 3).count();
    assert!(
        labelled > 300 && labelled < beacons / 2,
        "{labelled} of {beacons}"
    );
    let c = simulate(&SimConfig { seed: 2, ..cfg }, &base).expect("sim");
    assert_ne!(a.records, c.records);
}

#[test]
fn detection_quality_on_position_and_dos_attacks() {
    for (attack, min_f1) in [
        (AttackType::RandomPosOffset, 0.9),
        (AttackType::DoS, 0.9),
        (AttackType::ZeroSpeed, 0.9),
    ] {
        let cfg = SimConfig {
            attack,
            duration_s: 120.0,
            ..SimConfig::default()
        };
        let e = simulate_and_evaluate(&cfg, Config::default()).expect("eval");
        let (_, c) = e
            .per_type
            .iter()
            .find(|(n, _)| *n == attack.name())
            .expect("type");
        assert!(c.f1() >= min_f1, "{attack:?}: {c:?} f1 {}", c.f1());
    }
}

#[test]
#[ignore = "prints the F1 table (run with --ignored --nocapture)"]
fn f1_table() {
    let only = std::env::var("ATTACKS").ok();
    let mut overall = edgecell_v2x::sim::Counts::default();
    println!("| attack | precision | recall | F1 | CaTCh F1 |");
    println!("|---|---|---|---|---|");
    for attack in AttackType::ALL {
        if let Some(o) = &only
            && !o.split(',').any(|x| x == attack.name())
        {
            continue;
        }
        let cfg = SimConfig {
            attack,
            seed: 42,
            ..SimConfig::default()
        };
        let e = simulate_and_evaluate(&cfg, Config::default()).expect("eval");
        let c = e
            .per_type
            .iter()
            .find(|(n, _)| *n == attack.name())
            .map(|x| x.1)
            .unwrap_or_default();
        overall.tp += c.tp;
        overall.fn_ += c.fn_;
        overall.fp += c.fp;
        overall.tn += c.tn;
        let catch = attack
            .catch_f1()
            .map_or("-".to_string(), |f| format!("{f:.3}"));
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {catch} |",
            attack.name(),
            c.precision(),
            c.recall(),
            c.f1()
        );
        if std::env::var("VERBOSE").is_ok() {
            println!("   {:?} {:?}", c, e.check_failures);
        }
    }
    println!(
        "| overall | {:.3} | {:.3} | {:.3} | |",
        overall.precision(),
        overall.recall(),
        overall.f1()
    );
}
