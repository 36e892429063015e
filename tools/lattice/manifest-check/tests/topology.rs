//! The lattice topology in `manifests/`: the NATS configs stay on loopback and form a hub with
//! two leaf nodes, and the host label sets satisfy the manifests' placement.

// Test helpers abort with a message on a failed setup step, like the tests themselves.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edgecell_manifest_check::checks::{links, scalers, spread_counts};
use edgecell_manifest_check::{find_repo_root, Loaded};
use wadm_types::Manifest;

fn root() -> PathBuf {
    find_repo_root(Path::new(env!("CARGO_MANIFEST_DIR"))).expect("repository root above the crate")
}

fn read(rel: &str) -> String {
    let p = root().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn manifest(file: &str) -> Manifest {
    Loaded::read(&root().join("wadm").join(file))
        .expect("manifest parses")
        .manifest
}

/// `key=value` lines of a host label set (comments and blank lines skipped).
fn labels(file: &str) -> BTreeMap<String, String> {
    read(&format!("manifests/hosts/{file}"))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("{file}: `{l}` is not key=value"));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// Config lines that are not comments, `key: value` split (NATS config syntax, one level).
fn settings(conf: &str) -> Vec<(String, String)> {
    conf.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.split_once(':').or_else(|| l.split_once('='))?;
            Some((
                k.trim().to_owned(),
                v.trim().trim_matches(['"', '[', ']']).to_owned(),
            ))
        })
        .collect()
}

const CONFS: [&str; 3] = ["core", "edge-a", "edge-b"];

#[test]
fn nats_listeners_are_loopback_only_with_documented_ports() {
    let want: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::from([
        (
            "core",
            vec![
                ("listen", "127.0.0.1:4222"),
                ("http", "127.0.0.1:8222"),
                ("listen", "127.0.0.1:7422"),
            ],
        ),
        (
            "edge-a",
            vec![("listen", "127.0.0.1:4322"), ("http", "127.0.0.1:8322")],
        ),
        (
            "edge-b",
            vec![("listen", "127.0.0.1:4422"), ("http", "127.0.0.1:8422")],
        ),
    ]);
    for name in CONFS {
        let conf = read(&format!("manifests/nats/{name}.conf"));
        let got: Vec<(String, String)> = settings(&conf)
            .into_iter()
            .filter(|(k, _)| {
                matches!(
                    k.as_str(),
                    "listen" | "http" | "https" | "port" | "host" | "net" | "http_port"
                )
            })
            .collect();
        let want: Vec<(String, String)> = want[name]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(got, want, "{name}.conf listeners");
        let active: String = conf
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            !active.contains("0.0.0.0"),
            "{name}.conf binds a wildcard address"
        );
        assert!(
            !active.contains("websocket"),
            "{name}.conf opens a websocket listener"
        );
        assert!(
            !active.contains("mqtt"),
            "{name}.conf opens an MQTT listener"
        );
    }
}

#[test]
fn the_hub_runs_jetstream_in_domain_core_and_the_leaves_none() {
    let core = settings(&read("manifests/nats/core.conf"));
    assert!(
        core.iter().any(|(k, v)| k == "domain" && v == "core"),
        "core.conf: JetStream domain core"
    );
    assert!(
        core.iter().any(|(k, _)| k == "store_dir"),
        "core.conf: JetStream store_dir"
    );
    for leaf in ["edge-a", "edge-b"] {
        let conf = read(&format!("manifests/nats/{leaf}.conf"));
        let active: Vec<&str> = conf
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect();
        assert!(
            !active.iter().any(|l| l.contains("jetstream")),
            "{leaf}.conf runs no JetStream"
        );
        let s = settings(&conf);
        assert_eq!(
            s.iter()
                .filter(|(k, _)| k == "urls")
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>(),
            vec!["nats-leaf://127.0.0.1:7422"],
            "{leaf}.conf dials the hub's leafnode listener"
        );
        assert!(
            s.iter()
                .any(|(k, v)| k == "server_name" && v == &format!("edgecell-{leaf}")),
            "{leaf}: server_name"
        );
    }
    for name in CONFS {
        let s = settings(&read(&format!("manifests/nats/{name}.conf")));
        assert!(
            s.iter().any(|(k, v)| k == "max_payload" && v == "8MB"),
            "{name}: max_payload 8MB"
        );
    }
}

#[test]
fn nats_server_accepts_the_configs() {
    // the server `make setup` installs (or $EDGECELL_NATS_SERVER, as the Makefile exports it)
    let bin = std::env::var_os("EDGECELL_NATS_SERVER")
        .map_or_else(|| root().join("tools/bin/nats-server"), PathBuf::from);
    if !bin.is_file() {
        eprintln!(
            "no nats-server at {} (make setup installs one): config syntax not checked",
            bin.display()
        );
        return;
    }
    for name in CONFS {
        let conf = root().join(format!("manifests/nats/{name}.conf"));
        let out = std::process::Command::new(&bin)
            .arg("-t")
            .arg("-c")
            .arg(&conf)
            .output()
            .expect("nats-server runs");
        let text = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("is valid"),
            "{name}.conf: {text}"
        );
    }
}

/// Whether a host with `labels` matches a spread's requirements.
fn matches(labels: &BTreeMap<String, String>, req: &BTreeMap<String, String>) -> bool {
    req.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn the_local_host_label_set_satisfies_every_local_placement() {
    let host = labels("edge.env");
    assert_eq!(
        host,
        BTreeMap::from([
            ("region".into(), "local".into()),
            ("tier".into(), "edge".into())
        ])
    );
    for file in [
        "local.wadm.yaml",
        "v2x.wadm.yaml",
        "fusion.wadm.yaml",
        "video.wadm.yaml",
    ] {
        for c in &manifest(file).spec.components {
            for (_, s) in scalers(c) {
                for sp in &s.spread {
                    assert!(
                        matches(&host, &sp.requirements),
                        "{file} {} spread {}",
                        c.name,
                        sp.name
                    );
                }
            }
        }
    }
}

/// Where the GitOps manifest puts each component on the three-tier lattice (one host per
/// label set): component → (host → instances), as wadm would place them.
fn gitops_placement() -> BTreeMap<String, BTreeMap<&'static str, usize>> {
    let hosts: [(&str, BTreeMap<String, String>); 3] = [
        ("core", labels("core.env")),
        ("edge-a", labels("edge-a.env")),
        ("edge-b", labels("edge-b.env")),
    ];
    let m = manifest("edgecell.wadm.yaml");
    let mut out = BTreeMap::new();
    for c in &m.spec.components {
        let (ty, s) = scalers(c)[0];
        let mut on: BTreeMap<&'static str, usize> = BTreeMap::new();
        if ty == "daemonscaler" {
            for (h, l) in &hosts {
                if s.spread.is_empty() || s.spread.iter().any(|sp| matches(l, &sp.requirements)) {
                    on.insert(h, s.instances);
                }
            }
        } else {
            // a spreadscaler puts each spread's share on one matching host
            for (name, n) in spread_counts(s) {
                let req = &s
                    .spread
                    .iter()
                    .find(|sp| sp.name == name)
                    .expect("spread")
                    .requirements;
                let eligible: Vec<&str> = hosts
                    .iter()
                    .filter(|(_, l)| matches(l, req))
                    .map(|(h, _)| *h)
                    .collect();
                assert_eq!(
                    eligible.len(),
                    1,
                    "{} spread {name}: exactly one host per region",
                    c.name
                );
                *on.entry(eligible[0]).or_default() += n;
            }
        }
        out.insert(c.name.clone(), on);
    }
    out
}

#[test]
fn the_three_tier_label_sets_place_the_gitops_manifest_as_documented() {
    let edge_both = |n: usize| BTreeMap::from([("edge-a", n), ("edge-b", n)]);
    let want: BTreeMap<String, BTreeMap<&str, usize>> = BTreeMap::from([
        (
            "v2x-validator".to_owned(),
            BTreeMap::from([("edge-a", 4), ("edge-b", 2)]),
        ),
        ("video-analytics".to_owned(), edge_both(1)),
        ("sensor-fusion".to_owned(), edge_both(1)),
        ("kv-cache".to_owned(), edge_both(1)),
        ("inference".to_owned(), edge_both(1)),
        ("nats-messaging".to_owned(), edge_both(1)),
        (
            "metrics".to_owned(),
            BTreeMap::from([("core", 1), ("edge-a", 1), ("edge-b", 1)]),
        ),
    ]);
    assert_eq!(gitops_placement(), want);
}

#[test]
fn every_host_with_the_messaging_provider_runs_the_actors_it_feeds() {
    // The built-in provider subscribes on every host it runs on (queue groups pick one host per
    // message) and hands messages only to components on its own host.
    let placement = gitops_placement();
    let m = manifest("edgecell.wadm.yaml");
    let fed: Vec<String> = links(&m)
        .into_iter()
        .filter(|(s, _)| s.name == "nats-messaging")
        .map(|(_, l)| l.target.name.clone())
        .collect();
    assert_eq!(
        fed,
        vec!["v2x-validator", "sensor-fusion", "video-analytics"]
    );
    for host in placement["nats-messaging"].keys() {
        for actor in &fed {
            assert!(
                placement[actor].get(host).is_some_and(|n| *n > 0),
                "{actor} runs on {host}"
            );
        }
    }
}
