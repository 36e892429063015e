//! The real manifests (`wadm/*.yaml`), parsed with wadm 0.21.1's types and checked against the
//! project's WIT: one test per property, asserting on the problems found (none) or on values.

// Test helpers abort with a message on a failed setup step, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use edgecell_manifest_check::checks::{
    config_values_are_strings, configs_defined, id, image, kind, link_interfaces, link_targets,
    links, links_cover_worlds, local_images, messaging_links, own_configs, parse_pinned_ref,
    pinned_images, scalers, scalers_well_formed, spread_counts, subscriptions, subset_of,
    traits_typed, Kind, Subscription,
};
use edgecell_manifest_check::{find_repo_root, load_dir, wadm_validation, Loaded, WitIndex};
use wadm_types::{Component, Manifest, Properties};

const LOCAL: &str = "local.wadm.yaml";
const GITOPS: &str = "edgecell.wadm.yaml";
/// (file, app name, actor)
const PER_ACTOR: [(&str, &str, &str); 3] = [
    ("v2x.wadm.yaml", "edgecell-v2x", "v2x-validator"),
    ("fusion.wadm.yaml", "edgecell-fusion", "sensor-fusion"),
    ("video.wadm.yaml", "edgecell-video", "video-analytics"),
];
const ACTORS: [&str; 3] = ["v2x-validator", "sensor-fusion", "video-analytics"];
const PROVIDERS: [&str; 4] = ["kv-cache", "metrics", "inference", "nats-messaging"];
/// Exports a provider in the manifest invokes: each must be linked.
const INVOKED_EXPORTS: [&str; 1] = ["wasmcloud:messaging/handler"];

struct Fixture {
    root: PathBuf,
    manifests: Vec<Loaded>,
    wit: WitIndex,
}

fn fx() -> &'static Fixture {
    static FX: OnceLock<Fixture> = OnceLock::new();
    FX.get_or_init(|| {
        let root = find_repo_root(Path::new(env!("CARGO_MANIFEST_DIR")))
            .expect("repository root above the crate");
        let manifests =
            load_dir(&root.join("wadm")).expect("every wadm/*.yaml parses as wadm 0.21.1 does");
        let wit = WitIndex::load(&root.join("wit")).expect("the project's WIT resolves");
        Fixture {
            root,
            manifests,
            wit,
        }
    })
}

fn manifest(file: &str) -> &'static Loaded {
    fx().manifests
        .iter()
        .find(|l| l.file_name() == file)
        .unwrap_or_else(|| panic!("wadm/{file} exists"))
}

fn comp<'a>(m: &'a Manifest, name: &str) -> &'a Component {
    m.spec
        .components
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("{} has component {name}", m.metadata.name))
}

/// Actor name = world name in wit/worlds.wit.
fn worlds() -> BTreeMap<String, String> {
    ACTORS
        .iter()
        .map(|a| ((*a).to_owned(), (*a).to_owned()))
        .collect()
}

/// Runs `check` over every manifest; the result lists only manifests with problems.
fn each(check: impl Fn(&Loaded) -> Vec<String>) -> BTreeMap<String, Vec<String>> {
    fx().manifests
        .iter()
        .map(|l| (l.file_name(), check(l)))
        .filter(|(_, p)| !p.is_empty())
        .collect()
}

fn no_problems() -> BTreeMap<String, Vec<String>> {
    BTreeMap::new()
}

/// The properties of the config named `name` among a component's own configs.
fn config(c: &Component, name: &str) -> BTreeMap<String, String> {
    own_configs(c)
        .iter()
        .find(|p| p.name == name)
        .and_then(|p| p.properties.clone())
        .unwrap_or_else(|| panic!("{} has config {name} with properties", c.name))
        .into_iter()
        .collect()
}

/// The target config properties of `source`'s link to `target`.
fn link_target_config(m: &Manifest, source: &str, target: &str) -> BTreeMap<String, String> {
    links(m)
        .into_iter()
        .filter(|(s, l)| s.name == source && l.target.name == target)
        .flat_map(|(_, l)| l.target.config.iter())
        .filter_map(|c| c.properties.clone())
        .flatten()
        .collect()
}

// ---- the set of manifests -------------------------------------------------------------------

#[test]
fn the_manifest_set_is_local_gitops_and_one_per_actor() {
    let names: Vec<String> = fx().manifests.iter().map(Loaded::file_name).collect();
    assert_eq!(
        names,
        vec![
            "edgecell.wadm.yaml",
            "fusion.wadm.yaml",
            "local.wadm.yaml",
            "v2x.wadm.yaml",
            "video.wadm.yaml"
        ]
    );
}

#[test]
fn app_names_and_version_annotation() {
    let got: BTreeMap<String, (String, String)> = fx()
        .manifests
        .iter()
        .map(|l| {
            (
                l.file_name(),
                (
                    l.manifest.metadata.name.clone(),
                    l.manifest.version().to_owned(),
                ),
            )
        })
        .collect();
    let v = "v0.1.0".to_owned();
    let want: BTreeMap<String, (String, String)> = [
        (LOCAL, "edgecell"),
        (GITOPS, "edgecell"),
        ("v2x.wadm.yaml", "edgecell-v2x"),
        ("fusion.wadm.yaml", "edgecell-fusion"),
        ("video.wadm.yaml", "edgecell-video"),
    ]
    .into_iter()
    .map(|(f, n)| (f.to_owned(), (n.to_owned(), v.clone())))
    .collect();
    assert_eq!(got, want);
    for l in &fx().manifests {
        assert_eq!(
            (l.manifest.api_version.as_str(), l.manifest.kind.as_str()),
            ("core.oam.dev/v1beta1", "Application")
        );
    }
}

// ---- wadm's own rules -----------------------------------------------------------------------

#[test]
fn wadm_validation_finds_no_errors_or_warnings() {
    let found = each(|l| {
        wadm_validation(&l.text)
            .expect("validation runs")
            .iter()
            .map(ToString::to_string)
            .collect()
    });
    assert_eq!(found, no_problems());
}

#[test]
fn every_trait_parses_as_its_type_and_each_component_has_one_scaler() {
    assert_eq!(each(|l| traits_typed(&l.manifest)), no_problems());
}

// ---- links ----------------------------------------------------------------------------------

#[test]
fn every_link_target_is_a_component_of_the_same_manifest() {
    assert_eq!(each(|l| link_targets(&l.manifest)), no_problems());
}

#[test]
fn every_link_interface_is_in_the_wit_and_in_the_actors_worlds() {
    let w = worlds();
    assert_eq!(
        each(|l| link_interfaces(&l.manifest, &fx().wit, &w)),
        no_problems()
    );
}

#[test]
fn every_provider_import_of_an_actor_and_its_messaging_handler_are_linked() {
    let w = worlds();
    assert_eq!(
        each(|l| links_cover_worlds(&l.manifest, &fx().wit, &w, &INVOKED_EXPORTS)),
        no_problems()
    );
}

#[test]
fn the_actor_worlds_import_what_the_manifests_link() {
    let wit = &fx().wit;
    assert_eq!(wit.root_package(), "edgecell:actors@0.1.0");
    let common = [
        "edgecell:cache/store",
        "edgecell:metrics/recorder",
        "wasmcloud:messaging/consumer",
        "wasi:config/store",
    ];
    for actor in ACTORS {
        let io = wit.world(actor).unwrap_or_else(|| panic!("world {actor}"));
        for i in common {
            assert!(io.imports.contains(i), "{actor} imports {i}");
        }
        assert_eq!(
            io.imports.contains("edgecell:inference/runner"),
            actor == "video-analytics",
            "{actor} and inference"
        );
        assert!(
            io.exports.contains("wasmcloud:messaging/handler"),
            "{actor} exports the messaging handler"
        );
    }
    assert_eq!(
        wit.interface("wasmcloud", "messaging", "handler")
            .map(|i| i.id.as_str()),
        Some("wasmcloud:messaging/handler@0.2.0")
    );
    assert_eq!(
        wit.interface("wasi", "config", "store")
            .map(|i| i.id.as_str()),
        Some("wasi:config/store@0.2.0-draft")
    );
    assert_eq!(
        wit.interface("edgecell", "cache", "store")
            .map(|i| i.id.as_str()),
        Some("edgecell:cache/store@0.2.0")
    );
}

#[test]
fn actors_link_the_providers_they_import() {
    for file in [LOCAL, GITOPS] {
        let m = &manifest(file).manifest;
        let got: BTreeSet<(String, String, String)> = links(m)
            .into_iter()
            .filter(|(s, _)| kind(s) == Kind::Component)
            .flat_map(|(s, l)| {
                l.interfaces.iter().map(move |i| {
                    (
                        s.name.clone(),
                        l.target.name.clone(),
                        format!("{}:{}/{i}", l.namespace, l.package),
                    )
                })
            })
            .collect();
        let mut want = BTreeSet::new();
        for a in ACTORS {
            want.insert((
                a.to_owned(),
                "kv-cache".to_owned(),
                "edgecell:cache/store".to_owned(),
            ));
            want.insert((
                a.to_owned(),
                "metrics".to_owned(),
                "edgecell:metrics/recorder".to_owned(),
            ));
            want.insert((
                a.to_owned(),
                "nats-messaging".to_owned(),
                "wasmcloud:messaging/consumer".to_owned(),
            ));
        }
        want.insert((
            "video-analytics".to_owned(),
            "inference".to_owned(),
            "edgecell:inference/runner".to_owned(),
        ));
        assert_eq!(got, want, "{file}");
    }
}

#[test]
fn cache_keyspaces_and_metrics_labels_are_the_actor_names() {
    for l in &fx().manifests {
        let m = &l.manifest;
        for a in ACTORS
            .iter()
            .filter(|a| m.spec.components.iter().any(|c| c.name == **a))
        {
            let ks = link_target_config(m, a, "kv-cache");
            assert_eq!(
                ks,
                BTreeMap::from([("keyspace".to_owned(), (*a).to_owned())]),
                "{} {a}",
                l.file_name()
            );
            let ml = link_target_config(m, a, "metrics");
            assert_eq!(
                ml,
                BTreeMap::from([("component".to_owned(), (*a).to_owned())]),
                "{} {a}",
                l.file_name()
            );
        }
    }
}

// ---- messaging ------------------------------------------------------------------------------

#[test]
fn messaging_links_use_the_providers_config_keys_and_loopback_nats() {
    assert_eq!(each(|l| messaging_links(&l.manifest)), no_problems());
}

#[test]
fn each_actor_subscribes_to_its_subjects_in_its_own_queue_group() {
    let q = |subject: &str, group: &str| Subscription {
        subject: subject.to_owned(),
        queue: Some(group.to_owned()),
    };
    let want: BTreeMap<&str, Vec<Subscription>> = BTreeMap::from([
        (
            "v2x-validator",
            vec![q("edgecell.v2x.in.>", "v2x-validator")],
        ),
        (
            "sensor-fusion",
            vec![
                q("edgecell.sensors.in.>", "sensor-fusion"),
                q("edgecell.iot.in.>", "sensor-fusion"),
                q("edgecell.tracks.in.>", "sensor-fusion"),
            ],
        ),
        (
            "video-analytics",
            vec![q("edgecell.video.frames.>", "video-analytics")],
        ),
    ]);
    for l in &fx().manifests {
        for (actor, subs) in &want {
            if l.manifest.spec.components.iter().any(|c| c.name == *actor) {
                assert_eq!(
                    &subscriptions(&l.manifest, actor),
                    subs,
                    "{} {actor}",
                    l.file_name()
                );
            }
        }
    }
}

#[test]
fn messaging_goes_through_the_builtin_provider_on_the_local_nats_server() {
    for l in &fx().manifests {
        let m = &l.manifest;
        let nats = comp(m, "nats-messaging");
        assert_eq!(
            (image(nats), id(nats), kind(nats)),
            (
                Some("wasmcloud+builtin://messaging-nats"),
                Some("nats-messaging"),
                Kind::Capability
            )
        );
        for (source, link) in links(m)
            .into_iter()
            .filter(|(_, l)| l.namespace == "wasmcloud")
        {
            let cfg: BTreeMap<String, String> = link
                .target
                .config
                .iter()
                .chain(link.source.iter().flat_map(|s| s.config.iter()))
                .filter_map(|c| c.properties.clone())
                .flatten()
                .collect();
            assert_eq!(
                cfg.get("cluster_uris").map(String::as_str),
                Some("nats://127.0.0.1:4222"),
                "{} {}",
                l.file_name(),
                source.name
            );
            if source.name == "nats-messaging" {
                // one link per actor from the same source: wadm and the host need distinct link names
                assert_eq!(
                    link.name.as_deref(),
                    Some(link.target.name.as_str()),
                    "{}",
                    l.file_name()
                );
            } else {
                assert_eq!(
                    (link.name.as_deref(), link.target.name.as_str()),
                    (None, "nats-messaging"),
                    "{}",
                    l.file_name()
                );
            }
        }
    }
}

// ---- configuration --------------------------------------------------------------------------

#[test]
fn every_config_is_defined_with_properties_under_a_unique_name() {
    assert_eq!(each(|l| configs_defined(&l.manifest)), no_problems());
}

#[test]
fn config_values_are_yaml_strings() {
    assert_eq!(each(|l| config_values_are_strings(&l.text)), no_problems());
}

#[test]
fn v2x_validator_runtime_config() {
    for file in [LOCAL, GITOPS, "v2x.wadm.yaml"] {
        let c = config(
            comp(&manifest(file).manifest, "v2x-validator"),
            "v2x-validator-config",
        );
        assert_eq!(
            c,
            BTreeMap::from([
                ("namespace".into(), "v2x".into()),
                ("reporter-id".into(), "1001".into())
            ]),
            "{file}"
        );
        assert_eq!(c["reporter-id"].parse::<u64>().ok(), Some(1001));
    }
}

#[test]
fn sensor_fusion_filters_name_robot_localization_presets() {
    // edgecell_fusion::PRESET_NAMES (crates/fusion/src/replay.rs)
    for file in [LOCAL, GITOPS, "fusion.wadm.yaml"] {
        let c = config(
            comp(&manifest(file).manifest, "sensor-fusion"),
            "sensor-fusion-config",
        );
        assert_eq!(
            c,
            BTreeMap::from([
                ("filter.husky".into(), "robot-localization-test1".into()),
                ("filter.jackal".into(), "robot-localization-test2".into()),
            ]),
            "{file}"
        );
    }
}

#[test]
fn video_analytics_config_has_a_frame_limit_and_a_valid_stream() {
    for file in [LOCAL, GITOPS, "video.wadm.yaml"] {
        let c = config(
            comp(&manifest(file).manifest, "video-analytics"),
            "video-analytics-config",
        );
        assert_eq!(
            c.keys().map(String::as_str).collect::<Vec<_>>(),
            vec!["max-frame-bytes", "stream.vtest"],
            "{file}"
        );
        assert_eq!(
            c["max-frame-bytes"].parse::<u64>().ok(),
            Some(8 << 20),
            "{file}"
        );
        // edgecell_vision::StreamConfig: model, score_threshold, iou_threshold have no serde default
        let s: serde_json::Value =
            serde_json::from_str(&c["stream.vtest"]).expect("stream.vtest is JSON");
        assert_eq!(s["model"], "nanodet-m-416");
        assert_eq!(s["score_threshold"].as_f64(), Some(0.35));
        assert_eq!(s["iou_threshold"].as_f64(), Some(0.6));
        // the vtest clip's two walkway lines and the square zone, as `edgecell run` uses them
        let lines: Vec<&str> = s["lines"].as_array().expect("lines").iter().filter_map(|l| l["name"].as_str()).collect();
        assert_eq!(lines, vec!["walkway-west", "walkway-east"]);
        assert_eq!(s["zones"][0]["name"], "square");
        assert_eq!(s["classes"], serde_json::json!(["person"]));
    }
}

#[test]
fn provider_ids_and_config() {
    for file in [LOCAL, GITOPS] {
        let m = &manifest(file).manifest;
        let kv = comp(m, "kv-cache");
        assert_eq!(id(kv), Some("edgecell-kv-cache"));
        assert_eq!(
            config(kv, "kv-cache-config"),
            BTreeMap::from([
                ("ingest-open".into(), "video-analytics/frames".into()),
                ("ingest-prefix".into(), "edgecell.cache.put".into()),
                ("max-bytes".into(), "268435456".into())
            ])
        );
        let metrics = comp(m, "metrics");
        assert_eq!(id(metrics), Some("edgecell-metrics"));
        let listen = config(metrics, "metrics-config");
        assert_eq!(
            listen,
            BTreeMap::from([("listen".into(), "127.0.0.1:9464".into())])
        );
        let addr: std::net::SocketAddr = listen["listen"].parse().expect("socket address");
        assert!(addr.ip().is_loopback());
        let inf = comp(m, "inference");
        assert_eq!(id(inf), Some("edgecell-inference"));
        assert_eq!(config(inf, "inference-config")["workers"], "2");
        for p in PROVIDERS {
            assert_eq!(kind(comp(m, p)), Kind::Capability, "{file} {p}");
        }
        for a in ACTORS {
            assert_eq!(kind(comp(m, a)), Kind::Component, "{file} {a}");
        }
    }
}

#[test]
fn inference_model_dir_is_the_repo_models_dir_locally_and_absolute_in_gitops() {
    let local = config(
        comp(&manifest(LOCAL).manifest, "inference"),
        "inference-config",
    );
    assert_eq!(local["model-dir"], "file://../models");
    // resolved like the images, against the manifest's directory: the bundled models
    let rel = local["model-dir"]
        .strip_prefix("file://")
        .expect("file:// reference");
    let dir = fx().root.join("wadm").join(rel);
    assert!(
        dir.join("nanodet-m-416.onnx").is_file(),
        "{} holds nanodet-m-416.onnx",
        dir.display()
    );
    let gitops = config(
        comp(&manifest(GITOPS).manifest, "inference"),
        "inference-config",
    );
    assert!(
        Path::new(&gitops["model-dir"]).is_absolute(),
        "{}",
        gitops["model-dir"]
    );
}

// ---- scalers and placement ------------------------------------------------------------------

#[test]
fn scalers_are_well_formed() {
    assert_eq!(each(|l| scalers_well_formed(&l.manifest)), no_problems());
}

#[test]
fn local_manifests_place_everything_on_one_edge_host() {
    for l in fx().manifests.iter().filter(|l| l.file_name() != GITOPS) {
        for c in &l.manifest.spec.components {
            let s = scalers(c);
            assert_eq!(s.len(), 1);
            let (ty, p) = s[0];
            assert_eq!(ty, "spreadscaler", "{} {}", l.file_name(), c.name);
            assert_eq!(p.spread.len(), 1, "{} {}", l.file_name(), c.name);
            assert_eq!(
                p.spread[0].requirements,
                BTreeMap::from([("tier".to_owned(), "edge".to_owned())])
            );
            let want = match c.name.as_str() {
                "v2x-validator" => 4,
                _ => 1,
            };
            assert_eq!(p.instances, want, "{} {}", l.file_name(), c.name);
        }
    }
}

#[test]
fn gitops_placement_spreads_by_region_and_runs_providers_per_host() {
    let m = &manifest(GITOPS).manifest;
    let region = |r: &str| {
        BTreeMap::from([
            ("region".to_owned(), r.to_owned()),
            ("tier".to_owned(), "edge".to_owned()),
        ])
    };
    let edge = BTreeMap::from([("tier".to_owned(), "edge".to_owned())]);
    for (actor, instances, counts) in [
        ("v2x-validator", 6, [("edge-a", 4), ("edge-b", 2)]),
        ("video-analytics", 2, [("edge-a", 1), ("edge-b", 1)]),
    ] {
        let (ty, p) = scalers(comp(m, actor))[0];
        assert_eq!((ty, p.instances), ("spreadscaler", instances), "{actor}");
        let reqs: Vec<_> = p
            .spread
            .iter()
            .map(|s| (s.name.as_str(), s.requirements.clone()))
            .collect();
        assert_eq!(
            reqs,
            vec![("edge-a", region("edge-a")), ("edge-b", region("edge-b"))],
            "{actor}"
        );
        let got: Vec<(String, usize)> = spread_counts(p);
        let want: Vec<(String, usize)> =
            counts.iter().map(|(n, c)| ((*n).to_owned(), *c)).collect();
        assert_eq!(got, want, "{actor}");
    }
    for name in ["sensor-fusion", "kv-cache", "inference", "nats-messaging"] {
        let (ty, p) = scalers(comp(m, name))[0];
        assert_eq!((ty, p.instances), ("daemonscaler", 1), "{name}");
        assert_eq!(
            p.spread
                .iter()
                .map(|s| s.requirements.clone())
                .collect::<Vec<_>>(),
            vec![edge.clone()],
            "{name}"
        );
    }
    let (ty, p) = scalers(comp(m, "metrics"))[0];
    assert_eq!(
        (ty, p.instances, p.spread.len()),
        ("daemonscaler", 1, 0),
        "metrics on every host"
    );
}

// ---- images ---------------------------------------------------------------------------------

#[test]
fn local_images_are_relative_file_refs_to_build_outputs() {
    let root = &fx().root;
    let found = each(|l| {
        if l.file_name() == GITOPS {
            Vec::new()
        } else {
            local_images(&l.manifest, &root.join("wadm"), root)
        }
    });
    assert_eq!(found, no_problems());
}

#[test]
fn local_images_name_the_build_outputs() {
    let m = &manifest(LOCAL).manifest;
    let got: BTreeMap<&str, &str> = m
        .spec
        .components
        .iter()
        .map(|c| (c.name.as_str(), image(c).unwrap_or("")))
        .collect();
    let want = BTreeMap::from([
        (
            "v2x-validator",
            "file://../build/components/edgecell_v2x_validator.wasm",
        ),
        (
            "sensor-fusion",
            "file://../build/components/edgecell_sensor_fusion.wasm",
        ),
        (
            "video-analytics",
            "file://../build/components/edgecell_video_analytics.wasm",
        ),
        (
            "kv-cache",
            "file://../build/providers/edgecell-kv-cache.par.gz",
        ),
        (
            "metrics",
            "file://../build/providers/edgecell-metrics.par.gz",
        ),
        (
            "inference",
            "file://../build/providers/edgecell-inference.par.gz",
        ),
        ("nats-messaging", "wasmcloud+builtin://messaging-nats"),
    ]);
    assert_eq!(got, want);
}

#[test]
fn gitops_images_are_oci_refs_pinned_by_digest() {
    assert_eq!(
        pinned_images(&manifest(GITOPS).manifest),
        Vec::<String>::new()
    );
    // and the local manifests are not: they must fail the same check
    assert_eq!(pinned_images(&manifest(LOCAL).manifest).len(), 6);
}

#[test]
fn gitops_images_live_in_one_repository_per_component_with_the_release_tag() {
    let m = &manifest(GITOPS).manifest;
    for c in m
        .spec
        .components
        .iter()
        .filter(|c| c.name != "nats-messaging")
    {
        let img = image(c).unwrap_or_default();
        let (repo, tag, _) = parse_pinned_ref(img).unwrap_or_else(|| panic!("{img}"));
        assert_eq!(
            (repo.to_owned(), tag),
            (format!("registry.example.com/edgecell/{}", c.name), "0.1.0")
        );
    }
}

#[test]
fn gitops_component_digests_are_not_placeholders() {
    // the components' digests come from built .wasm files (make pin); providers may still hold
    // the all-zero placeholder until their archives are built
    let m = &manifest(GITOPS).manifest;
    for a in ACTORS {
        let (_, _, digest) =
            parse_pinned_ref(image(comp(m, a)).unwrap_or_default()).expect("pinned");
        assert_ne!(digest, "0".repeat(64), "{a}");
    }
}

// ---- consistency between manifests ----------------------------------------------------------

#[test]
fn per_actor_manifests_are_consistent_subsets_of_local() {
    let full = &manifest(LOCAL).manifest;
    let found: BTreeMap<&str, Vec<String>> = PER_ACTOR
        .iter()
        .map(|(f, _, _)| (*f, subset_of(&manifest(f).manifest, full)))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    assert_eq!(found, BTreeMap::new());
}

#[test]
fn per_actor_manifests_hold_one_actor_and_exactly_the_providers_it_links() {
    for (file, _, actor) in PER_ACTOR {
        let m = &manifest(file).manifest;
        let names: BTreeSet<&str> = m.spec.components.iter().map(|c| c.name.as_str()).collect();
        let mut want: BTreeSet<&str> = links(&manifest(LOCAL).manifest)
            .into_iter()
            .filter(|(s, _)| s.name == actor)
            .map(|(_, l)| l.target.name.as_str())
            .collect();
        want.insert(actor);
        assert_eq!(names, want, "{file}");
    }
}

#[test]
fn gitops_manifest_differs_from_local_only_in_images_model_dir_and_placement() {
    let local = &manifest(LOCAL).manifest;
    let gitops = &manifest(GITOPS).manifest;
    let names = |m: &Manifest| {
        m.spec
            .components
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(gitops), names(local));
    // with the local image and model-dir, the components are the local ones
    for c in &gitops.spec.components {
        let l = comp(local, &c.name);
        let mut props = c.properties.clone();
        match (&mut props, &l.properties) {
            (Properties::Component { properties: g }, Properties::Component { properties: lp }) => {
                g.image.clone_from(&lp.image);
            }
            (
                Properties::Capability { properties: g },
                Properties::Capability { properties: lp },
            ) => {
                g.image.clone_from(&lp.image);
                for (gc, lc) in g.config.iter_mut().zip(&lp.config) {
                    if let (Some(gp), Some(lp)) = (gc.properties.as_mut(), lc.properties.as_ref()) {
                        if let (Some(v), Some(lv)) = (gp.get_mut("model-dir"), lp.get("model-dir"))
                        {
                            v.clone_from(lv);
                        }
                    }
                }
            }
            _ => panic!("{} changed kind", c.name),
        }
        assert_eq!(props, l.properties, "{}", c.name);
    }
    // the links are identical, in the same order
    let gl: Vec<_> = links(gitops)
        .into_iter()
        .map(|(s, l)| (s.name.clone(), l.clone()))
        .collect();
    let ll: Vec<_> = links(local)
        .into_iter()
        .map(|(s, l)| (s.name.clone(), l.clone()))
        .collect();
    assert_eq!(gl, ll);
}

// ---- wash build files -----------------------------------------------------------------------

#[test]
fn wasmcloud_toml_files_build_the_artifacts_local_deploys() {
    let root = &fx().root;
    let local = &manifest(LOCAL).manifest;
    for actor in ACTORS {
        let path = root.join("actors").join(actor).join("wasmcloud.toml");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let t: toml::Table = text
            .parse()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let s = |v: &toml::Value| v.as_str().map(str::to_owned);
        assert_eq!(s(&t["name"]).as_deref(), Some(actor));
        assert_eq!(s(&t["version"]).as_deref(), Some("0.1.0"));
        assert_eq!(s(&t["language"]).as_deref(), Some("rust"));
        assert_eq!(s(&t["type"]).as_deref(), Some("component"));
        let wit_dir = path
            .parent()
            .unwrap_or(root)
            .join(s(&t["wit"]).unwrap_or_default());
        assert!(
            wit_dir.join("worlds.wit").is_file(),
            "{actor}: wit dir {}",
            wit_dir.display()
        );
        let c = t["component"]
            .as_table()
            .unwrap_or_else(|| panic!("{actor}: [component]"));
        let world = s(&c["wit_world"]).unwrap_or_default();
        assert_eq!(world, actor);
        assert!(
            fx().wit.world(&world).is_some(),
            "{actor}: world {world} in wit/worlds.wit"
        );
        assert_eq!(s(&c["wasm_target"]).as_deref(), Some("wasm32-wasip2"));
        let file = format!("edgecell_{}.wasm", actor.replace('-', "_"));
        assert_eq!(
            s(&c["build_command"]),
            Some(format!(
                "cargo build --target wasm32-wasip2 --profile component -p edgecell-{actor}"
            ))
        );
        assert_eq!(
            s(&c["build_artifact"]),
            Some(format!("../../target/wasm32-wasip2/component/{file}"))
        );
        // wash writes the (signed) component where the local manifest deploys it from
        let dest = s(&c["destination"]).unwrap_or_default();
        let from_toml = normalize(&path.parent().unwrap_or(root).join(&dest));
        let img = image(comp(local, actor))
            .and_then(|i| i.strip_prefix("file://"))
            .unwrap_or_default();
        let from_manifest = normalize(&root.join("wadm").join(img));
        assert_eq!(from_toml, from_manifest, "{actor}");
    }
}

fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in p.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}
