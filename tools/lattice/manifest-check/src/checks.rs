//! The checks. Each takes parsed manifests (and the WIT where needed) and returns the problems
//! it found, one sentence each; an empty list means the property holds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component as PathPart, Path, PathBuf};

use wadm_types::{
    Component, ConfigProperty, LinkProperty, Manifest, Properties, SpreadScalerProperty, Trait,
    TraitProperty, DAEMONSCALER_TRAIT, DEFAULT_SPREAD_WEIGHT, LINK_TRAIT, SPREADSCALER_TRAIT,
};

use crate::wit::WitIndex;

/// The image of the host's built-in NATS messaging provider.
pub const BUILTIN_MESSAGING: &str = "wasmcloud+builtin://messaging-nats";

/// The keys edgecell's messaging-nats provider reads from a link's config map.
pub const EDGECELL_MESSAGING_CONFIG_KEYS: [&str; 3] = ["subscriptions", "cluster_uris", "max-concurrency"];

/// The keys wasmCloud's NATS messaging configuration reads from a link's config map
/// (`wasmcloud_core::messaging::ConnectionConfig::from_map`, wasmcloud-core 0.21.1, used by
/// the wasmcloud-host 0.27.1 built-in provider and the messaging-nats provider alike).
pub const MESSAGING_CONFIG_KEYS: [&str; 7] = [
    "subscriptions",
    "consumers",
    "cluster_uris",
    "client_jwt",
    "client_seed",
    "tls_ca",
    "custom_inbox_prefix",
];

/// Whether a manifest component is a WebAssembly component or a capability provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Component,
    Capability,
}

/// The kind of a manifest component.
pub fn kind(c: &Component) -> Kind {
    match c.properties {
        Properties::Component { .. } => Kind::Component,
        Properties::Capability { .. } => Kind::Capability,
    }
}

/// A component's `image`, if it has one.
pub fn image(c: &Component) -> Option<&str> {
    match &c.properties {
        Properties::Component { properties } => properties.image.as_deref(),
        Properties::Capability { properties } => properties.image.as_deref(),
    }
}

/// Every component with the image of a build artifact, i.e. all but the host's built-in
/// messaging provider; a component without an image is a problem.
fn artifact_images<'m>(m: &'m Manifest, problems: &mut Vec<String>) -> Vec<(&'m Component, &'m str)> {
    let mut out = Vec::new();
    for c in &m.spec.components {
        match image(c) {
            None => problems.push(format!("{}: no image", c.name)),
            Some(img) if img == BUILTIN_MESSAGING && kind(c) == Kind::Capability => {}
            Some(img) => out.push((c, img)),
        }
    }
    out
}

/// A component's `id`, if it has one.
pub fn id(c: &Component) -> Option<&str> {
    match &c.properties {
        Properties::Component { properties } => properties.id.as_deref(),
        Properties::Capability { properties } => properties.id.as_deref(),
    }
}

/// A component's own named configs.
pub fn own_configs(c: &Component) -> &[ConfigProperty] {
    match &c.properties {
        Properties::Component { properties } => &properties.config,
        Properties::Capability { properties } => &properties.config,
    }
}

/// The link traits of a manifest: (source component, link).
pub fn links(m: &Manifest) -> Vec<(&Component, &LinkProperty)> {
    m.spec
        .components
        .iter()
        .flat_map(|c| c.traits.iter().flatten().map(move |t| (c, t)))
        .filter_map(|(c, t)| match &t.properties {
            TraitProperty::Link(l) if t.trait_type == LINK_TRAIT => Some((c, l)),
            _ => None,
        })
        .collect()
}

/// The scaler traits of a component: (trait type, properties).
pub fn scalers(c: &Component) -> Vec<(&str, &SpreadScalerProperty)> {
    c.traits
        .iter()
        .flatten()
        .filter_map(|t| match &t.properties {
            TraitProperty::SpreadScaler(s) if t.is_scaler() => Some((t.trait_type.as_str(), s)),
            _ => None,
        })
        .collect()
}

fn component<'a>(m: &'a Manifest, name: &str) -> Option<&'a Component> {
    m.spec.components.iter().find(|c| c.name == name)
}

fn link_label(source: &Component, l: &LinkProperty) -> String {
    format!(
        "link {} -> {} ({}:{}/{})",
        source.name,
        l.target.name,
        l.namespace,
        l.package,
        l.interfaces.join(",")
    )
}

/// Every trait parsed into the variant its type names (wadm's `TraitProperty` is untagged, so a
/// malformed link or scaler silently becomes `Custom`), every trait type is one wadm 0.21
/// implements, and every component has exactly one scaler.
pub fn traits_typed(m: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    for c in &m.spec.components {
        let traits: &[Trait] = c.traits.as_deref().unwrap_or(&[]);
        for t in traits {
            match (t.trait_type.as_str(), &t.properties) {
                (LINK_TRAIT, TraitProperty::Link(_))
                | (SPREADSCALER_TRAIT | DAEMONSCALER_TRAIT, TraitProperty::SpreadScaler(_)) => {}
                (ty @ (LINK_TRAIT | SPREADSCALER_TRAIT | DAEMONSCALER_TRAIT), other) => {
                    problems.push(format!(
                        "{}: `{ty}` trait did not parse as one (got {other:?})",
                        c.name
                    ));
                }
                (ty, _) => problems.push(format!(
                    "{}: trait type `{ty}` is not one wadm 0.21 implements",
                    c.name
                )),
            }
        }
        let n = traits.iter().filter(|t| t.is_scaler()).count();
        if n != 1 {
            problems.push(format!(
                "{}: has {n} scaler traits, expected exactly 1",
                c.name
            ));
        }
    }
    problems
}

/// Every link names interfaces, and its target is another component declared in the same manifest.
pub fn link_targets(m: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    for (source, l) in links(m) {
        if l.interfaces.is_empty() {
            problems.push(format!("{}: names no interfaces", link_label(source, l)));
        }
        if l.target.name == source.name {
            problems.push(format!(
                "{}: links a component to itself",
                link_label(source, l)
            ));
        } else if component(m, &l.target.name).is_none() {
            problems.push(format!(
                "{}: target `{}` is not a component of this manifest",
                link_label(source, l),
                l.target.name
            ));
        }
    }
    problems
}

/// Every link's `namespace:package/interface` exists in the WIT; a component that is the source
/// of a link imports the interface in its world, a component that is the target exports it.
/// `worlds` maps manifest component names to world names of the WIT's root package: required
/// for every WebAssembly component; a provider given a world (e.g. `kv-cache-provider`) is
/// checked the same way, one without (the host's built-in messaging provider) is not.
pub fn link_interfaces(
    m: &Manifest,
    wit: &WitIndex,
    worlds: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let world_of =
        |c: &Component, problems: &mut Vec<String>| -> Option<(String, crate::wit::WorldIo)> {
            let Some(w) = worlds.get(&c.name) else {
                if kind(c) == Kind::Component {
                    problems.push(format!("component {} has no world assigned", c.name));
                }
                return None;
            };
            match wit.world(w) {
                Some(io) => Some((w.clone(), io.clone())),
                None => {
                    problems.push(format!(
                        "component {}: world `{w}` is not in {}",
                        c.name,
                        wit.root_package()
                    ));
                    None
                }
            }
        };
    for (source, l) in links(m) {
        let Some(target) = component(m, &l.target.name) else {
            continue;
        };
        if kind(source) == Kind::Capability && kind(target) == Kind::Capability {
            problems.push(format!("{}: links two providers", link_label(source, l)));
        }
        let source_world = world_of(source, &mut problems);
        let target_world = world_of(target, &mut problems);
        for iface in &l.interfaces {
            let key = format!("{}:{}/{iface}", l.namespace, l.package);
            if wit.interface_by_key(&key).is_none() {
                problems.push(format!(
                    "{}: `{key}` is not an interface of the WIT",
                    link_label(source, l)
                ));
                continue;
            }
            if let Some((w, io)) = &source_world {
                if !io.imports.contains(&key) {
                    problems.push(format!(
                        "{}: world `{w}` of {} does not import `{key}`",
                        link_label(source, l),
                        source.name
                    ));
                }
            }
            if let Some((w, io)) = &target_world {
                if !io.exports.contains(&key) {
                    problems.push(format!(
                        "{}: world `{w}` of {} does not export `{key}`",
                        link_label(source, l),
                        target.name
                    ));
                }
            }
        }
    }
    problems
}

/// Every interface a component's world imports that needs a provider (it has functions and is
/// not host-provided `wasi:*`) is linked from that component, and every export in
/// `invoked_exports` (e.g. `wasmcloud:messaging/handler`) has a link into it.
pub fn links_cover_worlds(
    m: &Manifest,
    wit: &WitIndex,
    worlds: &BTreeMap<String, String>,
    invoked_exports: &[&str],
) -> Vec<String> {
    let mut problems = Vec::new();
    let all = links(m);
    for c in m
        .spec
        .components
        .iter()
        .filter(|c| kind(c) == Kind::Component)
    {
        let Some(io) = worlds.get(&c.name).and_then(|w| wit.world(w)) else {
            problems.push(format!(
                "component {} has no world of {}",
                c.name,
                wit.root_package()
            ));
            continue;
        };
        let names = |l: &LinkProperty| -> Vec<String> {
            l.interfaces
                .iter()
                .map(|i| format!("{}:{}/{i}", l.namespace, l.package))
                .collect()
        };
        let outgoing: BTreeSet<String> = all
            .iter()
            .filter(|(s, _)| s.name == c.name)
            .flat_map(|(_, l)| names(l))
            .collect();
        let incoming: BTreeSet<String> = all
            .iter()
            .filter(|(_, l)| l.target.name == c.name)
            .flat_map(|(_, l)| names(l))
            .collect();
        for key in &io.imports {
            let needs_provider = !key.starts_with("wasi:")
                && wit.interface_by_key(key).is_some_and(|i| i.functions > 0);
            if needs_provider && !outgoing.contains(key) {
                problems.push(format!(
                    "{} imports `{key}` but links it to no provider",
                    c.name
                ));
            }
        }
        for key in io
            .exports
            .iter()
            .filter(|k| invoked_exports.contains(&k.as_str()))
        {
            if !incoming.contains(key) {
                problems.push(format!(
                    "{} exports `{key}` but nothing is linked to it",
                    c.name
                ));
            }
        }
    }
    problems
}

/// Every named config (a component's or provider's `config`, a link's `target.config` and
/// `source.config`) carries non-empty `properties` (this project manages all its config in the
/// manifests; a config without properties must already exist in the lattice), keys are
/// non-empty words, and config names are unique in the manifest.
pub fn configs_defined(m: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    let mut refs: Vec<(String, &ConfigProperty)> = Vec::new();
    for c in &m.spec.components {
        refs.extend(own_configs(c).iter().map(|p| (c.name.clone(), p)));
    }
    for (source, l) in links(m) {
        refs.extend(
            l.target
                .config
                .iter()
                .map(|p| (format!("{} target config", link_label(source, l)), p)),
        );
        if let Some(src) = &l.source {
            refs.extend(
                src.config
                    .iter()
                    .map(|p| (format!("{} source config", link_label(source, l)), p)),
            );
        }
    }
    let mut seen = BTreeSet::new();
    for (at, p) in refs {
        if !seen.insert(p.name.as_str()) {
            problems.push(format!(
                "{at}: config name `{}` is used twice in the manifest",
                p.name
            ));
        }
        match &p.properties {
            None => problems.push(format!("{at}: config `{}` has no properties (it would have to exist in the lattice already)", p.name)),
            Some(props) if props.is_empty() => problems.push(format!("{at}: config `{}` has empty properties", p.name)),
            Some(props) => {
                for k in props.keys().filter(|k| k.is_empty() || k.chars().any(char::is_whitespace)) {
                    problems.push(format!("{at}: config `{}` has a malformed key `{k}`", p.name));
                }
            }
        }
    }
    problems
}

/// The raw YAML spells every config property value as a string (`"1001"`, not `1001`): wadm's
/// JSON API and other tools read config values as strings only.
pub fn config_values_are_strings(text: &str) -> Vec<String> {
    use serde_yaml::Value;
    let Ok(doc) = serde_yaml::from_str::<Value>(text) else {
        return vec!["not YAML".to_owned()];
    };
    let mut problems = Vec::new();
    let mut check = |at: &str, configs: Option<&Value>| {
        for cfg in configs.and_then(Value::as_sequence).into_iter().flatten() {
            let name = cfg.get("name").and_then(Value::as_str).unwrap_or("?");
            for (k, v) in cfg
                .get("properties")
                .and_then(Value::as_mapping)
                .into_iter()
                .flatten()
            {
                if !v.is_string() {
                    let key = k.as_str().unwrap_or("?");
                    problems.push(format!(
                        "{at}: config `{name}` value of `{key}` is {v:?}, not a string: quote it"
                    ));
                }
            }
        }
    };
    let components = doc
        .get("spec")
        .and_then(|s| s.get("components"))
        .and_then(Value::as_sequence);
    for c in components.into_iter().flatten() {
        let name = c.get("name").and_then(Value::as_str).unwrap_or("?");
        check(name, c.get("properties").and_then(|p| p.get("config")));
        for t in c
            .get("traits")
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let props = t.get("properties");
            check(
                name,
                props
                    .and_then(|p| p.get("target"))
                    .and_then(|t| t.get("config")),
            );
            check(
                name,
                props
                    .and_then(|p| p.get("source"))
                    .and_then(|s| s.get("config")),
            );
        }
    }
    problems
}

/// How wadm 0.21.1's spreadscaler divides `instances` among the spreads (`compute_spread`):
/// spreads ordered by weight (default 100), highest first; each gets
/// `instances * weight / total_weight` rounded down; the instances lost to rounding go one
/// each to the spreads in that order. No spreads: one `default` spread with every instance.
pub fn spread_counts(p: &SpreadScalerProperty) -> Vec<(String, usize)> {
    if p.spread.is_empty() {
        return vec![("default".to_owned(), p.instances)];
    }
    let mut spreads: Vec<_> = p.spread.iter().collect();
    spreads.sort_by_key(|s| std::cmp::Reverse(s.weight.unwrap_or(DEFAULT_SPREAD_WEIGHT)));
    let total: usize = spreads
        .iter()
        .map(|s| s.weight.unwrap_or(DEFAULT_SPREAD_WEIGHT))
        .sum();
    let mut counts: Vec<(String, usize)> = spreads
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                p.instances
                    .saturating_mul(s.weight.unwrap_or(DEFAULT_SPREAD_WEIGHT))
                    .checked_div(total)
                    .unwrap_or(0),
            )
        })
        .collect();
    let mut left = p
        .instances
        .saturating_sub(counts.iter().map(|(_, n)| n).sum());
    for (_, n) in &mut counts {
        if left == 0 {
            break;
        }
        *n += 1;
        left -= 1;
    }
    counts
}

fn label_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

/// Scalers are well formed: at least one instance; spreads named uniquely, each with
/// requirements made of label-like keys and values, distinct requirement sets, weights above
/// zero; a spreadscaler gives every spread at least one instance (wadm's division, see
/// [`spread_counts`]); a provider daemonscaler runs one instance per host.
pub fn scalers_well_formed(m: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    for c in &m.spec.components {
        for (ty, s) in scalers(c) {
            let at = format!("{} {ty}", c.name);
            if s.instances == 0 {
                problems.push(format!("{at}: 0 instances (wadm would stop it)"));
            }
            if ty == DAEMONSCALER_TRAIT && kind(c) == Kind::Capability && s.instances != 1 {
                problems.push(format!(
                    "{at}: a provider runs once per host, instances must be 1 (got {})",
                    s.instances
                ));
            }
            let mut names = BTreeSet::new();
            let mut reqs = BTreeSet::new();
            for sp in &s.spread {
                if sp.name.is_empty() || !names.insert(sp.name.as_str()) {
                    problems.push(format!(
                        "{at}: spread name `{}` is empty or repeated",
                        sp.name
                    ));
                }
                if sp.requirements.is_empty() {
                    problems.push(format!("{at}: spread `{}` has no requirements", sp.name));
                }
                for (k, v) in &sp.requirements {
                    if !label_ok(k) || !label_ok(v) {
                        problems.push(format!(
                            "{at}: spread `{}` requirement `{k}={v}` is not a label",
                            sp.name
                        ));
                    }
                }
                if !reqs.insert(&sp.requirements) {
                    problems.push(format!(
                        "{at}: spread `{}` repeats another spread's requirements",
                        sp.name
                    ));
                }
                if sp.weight == Some(0) {
                    problems.push(format!("{at}: spread `{}` has weight 0", sp.name));
                }
            }
            if ty == SPREADSCALER_TRAIT {
                for (name, n) in spread_counts(s) {
                    if n == 0 {
                        problems.push(format!(
                            "{at}: spread `{name}` gets 0 of {} instances",
                            s.instances
                        ));
                    }
                }
            }
        }
    }
    problems
}

/// Normalises `a/b/../c` lexically (no file system access).
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in p.components() {
        match part {
            PathPart::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            PathPart::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Local manifest images: every component and provider image is a relative `file://`
/// reference (resolved against the manifest's directory at deploy time) to a build output
/// inside the repository (`manifest_dir` relative to `repo_root`): components
/// `build/components/*.wasm`, providers `build/providers/*.par.gz`; the host's built-in
/// messaging provider (which a manifest may use instead of edgecell's) is the only
/// `wasmcloud+builtin://` image. The files themselves are build
/// outputs and are not required to exist.
pub fn local_images(m: &Manifest, manifest_dir: &Path, repo_root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for (c, img) in artifact_images(m, &mut problems) {
        let Some(rel) = img.strip_prefix("file://") else {
            problems.push(format!(
                "{}: image `{img}` is not a file:// reference",
                c.name
            ));
            continue;
        };
        if rel.starts_with('/') || rel.is_empty() {
            problems.push(format!(
                "{}: image `{img}` is not relative to the manifest",
                c.name
            ));
            continue;
        }
        let resolved = normalize(&manifest_dir.join(rel));
        let Ok(in_repo) = resolved.strip_prefix(normalize(repo_root)) else {
            problems.push(format!(
                "{}: image `{img}` resolves outside the repository ({})",
                c.name,
                resolved.display()
            ));
            continue;
        };
        let (dir, ext) = match kind(c) {
            Kind::Component => ("build/components", ".wasm"),
            Kind::Capability => ("build/providers", ".par.gz"),
        };
        let file_ok = in_repo.parent() == Some(Path::new(dir))
            && in_repo
                .file_name()
                .is_some_and(|f| f.to_string_lossy().ends_with(ext));
        if !file_ok {
            problems.push(format!(
                "{}: image `{img}` is {}, expected {dir}/*{ext}",
                c.name,
                in_repo.display()
            ));
        }
    }
    problems
}

/// An OCI reference `registry[:port]/path/name:tag@sha256:<64 lowercase hex>`, split into
/// (repository, tag, digest hex).
pub fn parse_pinned_ref(r: &str) -> Option<(&str, &str, &str)> {
    let (name_tag, digest) = r.split_once("@sha256:")?;
    let hex_ok = digest.len() == 64
        && digest
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let (repo, tag) = name_tag.rsplit_once(':')?;
    let (registry, path) = repo.split_once('/')?;
    let word = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    };
    let registry_ok = registry.contains('.') && registry.split(':').next().is_some_and(word);
    let path_ok = path.split('/').all(word);
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    (hex_ok && registry_ok && path_ok && tag_ok).then_some((repo, tag, digest))
}

/// GitOps manifest images: every image but the built-in messaging provider is an OCI reference
/// with a registry host, a tag and a `@sha256:` digest (so a deploy can never drift to other
/// bytes), and no two components share a repository.
pub fn pinned_images(m: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    let mut repos = BTreeSet::new();
    for (c, img) in artifact_images(m, &mut problems) {
        match parse_pinned_ref(img) {
            Some((repo, _, _)) => {
                if !repos.insert(repo) {
                    problems.push(format!(
                        "{}: repository `{repo}` is used by another component",
                        c.name
                    ));
                }
            }
            None => problems.push(format!(
                "{}: image `{img}` is not an OCI reference pinned by @sha256:<64 hex>",
                c.name
            )),
        }
    }
    problems
}

/// A manifest is a consistent subset of `full`: each of its components exists in `full` with
/// identical properties (image, id, config) and identical scalers; a WebAssembly component has
/// exactly the same links; a provider has exactly `full`'s links into the components present here.
pub fn subset_of(sub: &Manifest, full: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    let present: BTreeSet<&str> = sub
        .spec
        .components
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    // Trait is PartialEq (config properties are hash maps: compare values, not serialisations)
    let same = |a: &Component, b: &Component, keep: &dyn Fn(&Component, &Trait) -> bool| -> bool {
        let mut rest: Vec<&Trait> = b.traits.iter().flatten().filter(|t| keep(b, t)).collect();
        for t in a.traits.iter().flatten().filter(|t| keep(a, t)) {
            match rest.iter().position(|r| *r == t) {
                Some(i) => {
                    rest.swap_remove(i);
                }
                None => return false,
            }
        }
        rest.is_empty()
    };
    for c in &sub.spec.components {
        let Some(f) = component(full, &c.name) else {
            problems.push(format!(
                "{}: not a component of {}",
                c.name, full.metadata.name
            ));
            continue;
        };
        if c.properties != f.properties {
            problems.push(format!(
                "{}: properties differ from {}'s",
                c.name, full.metadata.name
            ));
        }
        let scalers = |_: &Component, t: &Trait| t.is_scaler();
        if !same(c, f, &scalers) {
            problems.push(format!(
                "{}: scaler differs from {}'s",
                c.name, full.metadata.name
            ));
        }
        let keep_links = |owner: &Component, t: &Trait| match (&t.properties, kind(owner)) {
            (TraitProperty::Link(l), Kind::Capability) => {
                t.is_link() && present.contains(l.target.name.as_str())
            }
            (_, _) => t.is_link(),
        };
        if !same(c, f, &keep_links) {
            problems.push(format!(
                "{}: links differ from {}'s",
                c.name, full.metadata.name
            ));
        }
    }
    problems
}

/// One entry of a messaging `subscriptions` value: subject and optional queue group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub subject: String,
    pub queue: Option<String>,
}

/// Splits a `subscriptions` value exactly as `ConnectionConfig::from_map` does (on `,`, no
/// trimming) and each entry as the built-in provider does (`subject|queue`).
pub fn parse_subscriptions(v: &str) -> Vec<Subscription> {
    v.split(',')
        .map(|s| match s.split_once('|') {
            Some((subject, queue)) => Subscription {
                subject: subject.to_owned(),
                queue: Some(queue.to_owned()),
            },
            None => Subscription {
                subject: s.to_owned(),
                queue: None,
            },
        })
        .collect()
}

fn subject_ok(s: &str) -> bool {
    let tokens: Vec<&str> = s.split('.').collect();
    !s.is_empty()
        && tokens.iter().enumerate().all(|(i, t)| {
            !t.is_empty()
                && !t.chars().any(|c| c.is_whitespace() || c.is_control())
                && (*t != ">" || i + 1 == tokens.len())
                && (!t.contains(['*', '>']) || t.len() == 1)
        })
}

fn loopback_nats_url(u: &str) -> bool {
    let Some(rest) = u.strip_prefix("nats://") else {
        return false;
    };
    let host_port = rest.rsplit('@').next().unwrap_or(rest);
    let host = host_port.rsplit_once(':').map_or(host_port, |(h, _)| h);
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

/// The subscriptions the manifest's `wasmcloud:messaging/handler` links give `component`.
pub fn subscriptions(m: &Manifest, component: &str) -> Vec<Subscription> {
    links(m)
        .into_iter()
        .filter(|(_, l)| {
            l.target.name == component && l.namespace == "wasmcloud" && l.package == "messaging"
        })
        .filter(|(_, l)| l.interfaces.iter().any(|i| i == "handler"))
        .flat_map(|(_, l)| l.source.iter().flat_map(|s| s.config.iter()))
        .filter_map(|cfg| {
            cfg.properties
                .as_ref()?
                .get("subscriptions")
                .map(|v| parse_subscriptions(v))
        })
        .flatten()
        .collect()
}

/// `wasmcloud:messaging` links: their config uses only keys the NATS messaging config reads;
/// a handler link (provider → component) subscribes to at least one well-formed subject (queue
/// group names are words); every `cluster_uris` entry is a `nats://` URL on loopback; a consumer
/// link (component → provider) says which NATS server to publish to.
pub fn messaging_links(m: &Manifest) -> Vec<String> {
    let mut problems = Vec::new();
    for (source, l) in links(m)
        .into_iter()
        .filter(|(_, l)| l.namespace == "wasmcloud" && l.package == "messaging")
    {
        let at = link_label(source, l);
        let source_cfg: Vec<&ConfigProperty> =
            l.source.iter().flat_map(|s| s.config.iter()).collect();
        let props = |cfgs: &[&ConfigProperty]| -> BTreeMap<String, String> {
            cfgs.iter()
                .filter_map(|c| c.properties.as_ref())
                .flat_map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())))
                .collect()
        };
        let target_cfg: Vec<&ConfigProperty> = l.target.config.iter().collect();
        // the provider end of the link decides which keys are read
        let provider = if l.interfaces.iter().any(|i| i == "handler") { source.name.as_str() } else { l.target.name.as_str() };
        let builtin = m.spec.components.iter().any(|c| c.name == provider && image(c) == Some(BUILTIN_MESSAGING));
        let known: &[&str] = if builtin { &MESSAGING_CONFIG_KEYS } else { &EDGECELL_MESSAGING_CONFIG_KEYS };
        for (side, cfg) in [
            ("source", props(&source_cfg)),
            ("target", props(&target_cfg)),
        ] {
            for k in cfg
                .keys()
                .filter(|k| !known.contains(&k.as_str()))
            {
                problems.push(format!(
                    "{at}: {side} config key `{k}` is not read by the NATS messaging provider"
                ));
            }
            for u in cfg
                .get("cluster_uris")
                .map(|v| v.split(',').collect::<Vec<_>>())
                .unwrap_or_default()
            {
                if !loopback_nats_url(u) {
                    problems.push(format!(
                        "{at}: {side} cluster_uris entry `{u}` is not a nats:// URL on loopback"
                    ));
                }
            }
        }
        if l.interfaces.iter().any(|i| i == "handler") {
            match props(&source_cfg).get("subscriptions") {
                None => problems.push(format!(
                    "{at}: handler link without `subscriptions` in its source config"
                )),
                Some(v) => {
                    for s in parse_subscriptions(v) {
                        if !subject_ok(&s.subject) {
                            problems.push(format!(
                                "{at}: subscription subject `{}` is malformed",
                                s.subject
                            ));
                        }
                        if let Some(q) = &s.queue {
                            if q.is_empty()
                                || !q
                                    .chars()
                                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
                            {
                                problems.push(format!("{at}: queue group `{q}` is not a word"));
                            }
                        }
                    }
                }
            }
        }
        if l.interfaces.iter().any(|i| i == "consumer")
            && !props(&target_cfg).contains_key("cluster_uris")
        {
            problems.push(format!(
                "{at}: consumer link without `cluster_uris` in its target config"
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    const BASE: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: t
  annotations:
    version: v1
spec:
  components:
    - name: actor
      type: component
      properties:
        image: file://../build/components/actor.wasm
        config:
          - name: actor-config
            properties:
              k: "1"
      traits:
        - type: spreadscaler
          properties:
            instances: 3
            spread:
              - name: a
                requirements: {region: a}
                weight: 2
              - name: b
                requirements: {region: b}
                weight: 1
        - type: link
          properties:
            namespace: wasmcloud
            package: messaging
            interfaces: [consumer]
            target:
              name: nats
              config:
                - name: publish
                  properties: {cluster_uris: "nats://127.0.0.1:4222"}
    - name: nats
      type: capability
      properties:
        image: wasmcloud+builtin://messaging-nats
      traits:
        - type: daemonscaler
          properties:
            instances: 1
        - type: link
          properties:
            name: actor
            namespace: wasmcloud
            package: messaging
            interfaces: [handler]
            target: {name: actor}
            source:
              config:
                - name: subscribe
                  properties: {subscriptions: "a.in.>|actor,b.*.x", cluster_uris: "nats://127.0.0.1:4222"}
"#;

    fn base() -> Manifest {
        parse(BASE).expect("test manifest parses")
    }

    fn with(from: &str, to: &str) -> Manifest {
        assert!(BASE.contains(from), "test edit `{from}` not found");
        parse(&BASE.replacen(from, to, 1)).expect("edited test manifest parses")
    }

    #[test]
    fn the_base_test_manifest_passes_the_form_checks() {
        let m = base();
        assert_eq!(traits_typed(&m), Vec::<String>::new());
        assert_eq!(link_targets(&m), Vec::<String>::new());
        assert_eq!(configs_defined(&m), Vec::<String>::new());
        assert_eq!(scalers_well_formed(&m), Vec::<String>::new());
        assert_eq!(messaging_links(&m), Vec::<String>::new());
        assert_eq!(config_values_are_strings(BASE), Vec::<String>::new());
    }

    #[test]
    fn a_malformed_link_is_reported_not_silently_custom() {
        // `interface` (singular) is not a link field: wadm's untagged TraitProperty falls back to Custom
        let m = with("interfaces: [consumer]", "interface: [consumer]");
        let p = traits_typed(&m);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with("actor: `link` trait did not parse as one"),
            "{p:?}"
        );
    }

    #[test]
    fn a_dangling_link_target_is_reported() {
        let m = with(
            "name: nats\n              config:",
            "name: nats-typo\n              config:",
        );
        assert_eq!(
            link_targets(&m),
            vec!["link actor -> nats-typo (wasmcloud:messaging/consumer): target `nats-typo` is not a component of this manifest"]
        );
    }

    #[test]
    fn config_without_properties_and_repeated_names_are_reported() {
        let m = with("- name: publish\n                  properties: {cluster_uris: \"nats://127.0.0.1:4222\"}", "- name: subscribe");
        let p = configs_defined(&m);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p.iter().any(|s| s.ends_with(
            "config `subscribe` has no properties (it would have to exist in the lattice already)"
        )));
        assert!(p
            .iter()
            .any(|s| s.ends_with("config name `subscribe` is used twice in the manifest")));
    }

    #[test]
    fn unquoted_numbers_in_config_are_reported() {
        let text = BASE.replacen("k: \"1\"", "k: 1", 1);
        assert_eq!(
            config_values_are_strings(&text),
            vec!["actor: config `actor-config` value of `k` is Number(1), not a string: quote it"]
        );
    }

    #[test]
    fn spread_counts_follow_wadm() {
        let m = base();
        let (_, s) = scalers(&m.spec.components[0])[0];
        assert_eq!(
            spread_counts(s),
            vec![("a".to_owned(), 2), ("b".to_owned(), 1)]
        );
        // 3 instances at 67/33: 2 + 0, the lost instance goes to the heavier spread: b gets none
        let m2 = parse(&BASE.replacen("weight: 2", "weight: 67", 1).replacen(
            "weight: 1",
            "weight: 33",
            1,
        ))
        .unwrap();
        let (_, s) = scalers(&m2.spec.components[0])[0];
        assert_eq!(
            spread_counts(s),
            vec![("a".to_owned(), 3), ("b".to_owned(), 0)]
        );
        assert_eq!(
            scalers_well_formed(&m2),
            vec!["actor spreadscaler: spread `b` gets 0 of 3 instances"]
        );
        let none = SpreadScalerProperty {
            instances: 4,
            spread: vec![],
        };
        assert_eq!(spread_counts(&none), vec![("default".to_owned(), 4)]);
    }

    #[test]
    fn zero_instances_and_weights_and_empty_requirements_are_reported() {
        let m = with("instances: 3", "instances: 0");
        assert!(scalers_well_formed(&m)
            .contains(&"actor spreadscaler: 0 instances (wadm would stop it)".to_owned()));
        let m = with("weight: 1", "weight: 0");
        assert!(scalers_well_formed(&m)
            .contains(&"actor spreadscaler: spread `b` has weight 0".to_owned()));
        let m = with("requirements: {region: b}", "requirements: {}");
        assert!(scalers_well_formed(&m)
            .contains(&"actor spreadscaler: spread `b` has no requirements".to_owned()));
        let m = with("requirements: {region: b}", "requirements: {region: a}");
        assert!(scalers_well_formed(&m).contains(
            &"actor spreadscaler: spread `b` repeats another spread's requirements".to_owned()
        ));
    }

    #[test]
    fn local_images_must_be_relative_build_outputs() {
        let root = Path::new("/repo");
        let dir = Path::new("/repo/wadm");
        assert_eq!(local_images(&base(), dir, root), Vec::<String>::new());
        let abs = with(
            "file://../build/components/actor.wasm",
            "file:///repo/build/components/actor.wasm",
        );
        assert_eq!(local_images(&abs, dir, root), vec!["actor: image `file:///repo/build/components/actor.wasm` is not relative to the manifest"]);
        let oci = with("file://../build/components/actor.wasm", "ghcr.io/x/actor:1");
        assert_eq!(
            local_images(&oci, dir, root),
            vec!["actor: image `ghcr.io/x/actor:1` is not a file:// reference"]
        );
        let out = with(
            "file://../build/components/actor.wasm",
            "file://../../elsewhere/actor.wasm",
        );
        assert_eq!(local_images(&out, dir, root), vec!["actor: image `file://../../elsewhere/actor.wasm` resolves outside the repository (/elsewhere/actor.wasm)"]);
        let wrong = with(
            "file://../build/components/actor.wasm",
            "file://../build/providers/actor.par.gz",
        );
        assert_eq!(local_images(&wrong, dir, root), vec!["actor: image `file://../build/providers/actor.par.gz` is build/providers/actor.par.gz, expected build/components/*.wasm"]);
    }

    #[test]
    fn pinned_refs_need_registry_tag_and_full_digest() {
        let d = "a".repeat(64);
        assert_eq!(
            parse_pinned_ref(&format!("registry.example.com/edgecell/x:0.1.0@sha256:{d}")),
            Some(("registry.example.com/edgecell/x", "0.1.0", d.as_str()))
        );
        assert_eq!(
            parse_pinned_ref(&format!("localhost.localdomain:5000/x:1@sha256:{d}")).map(|r| r.1),
            Some("1")
        );
        assert_eq!(
            parse_pinned_ref("registry.example.com/edgecell/x:0.1.0"),
            None
        );
        assert_eq!(
            parse_pinned_ref(&format!(
                "registry.example.com/edgecell/x:0.1.0@sha256:{}",
                "a".repeat(63)
            )),
            None
        );
        assert_eq!(
            parse_pinned_ref(&format!(
                "registry.example.com/edgecell/x:0.1.0@sha256:{}",
                "A".repeat(64)
            )),
            None
        );
        assert_eq!(
            parse_pinned_ref(&format!("edgecell/x:0.1.0@sha256:{d}")),
            None,
            "no registry host"
        );
        assert_eq!(
            parse_pinned_ref(&format!("registry.example.com/edgecell/x@sha256:{d}")),
            None,
            "no tag"
        );
        let m = with(
            "file://../build/components/actor.wasm",
            "registry.example.com/t/actor:1",
        );
        assert_eq!(pinned_images(&m), vec!["actor: image `registry.example.com/t/actor:1` is not an OCI reference pinned by @sha256:<64 hex>"]);
    }

    #[test]
    fn subsets_must_copy_definitions() {
        let full = base();
        assert_eq!(subset_of(&full, &full), Vec::<String>::new());
        let changed = with("k: \"1\"", "k: \"2\"");
        assert_eq!(
            subset_of(&changed, &full),
            vec!["actor: properties differ from t's"]
        );
        let scaled = with("instances: 3", "instances: 4");
        assert_eq!(
            subset_of(&scaled, &full),
            vec!["actor: scaler differs from t's"]
        );
        let relinked = with("interfaces: [handler]", "interfaces: [handler, handler2]");
        assert_eq!(
            subset_of(&relinked, &full),
            vec!["nats: links differ from t's"]
        );
    }

    #[test]
    fn subscriptions_split_like_the_messaging_provider() {
        assert_eq!(
            subscriptions(&base(), "actor"),
            vec![
                Subscription {
                    subject: "a.in.>".into(),
                    queue: Some("actor".into())
                },
                Subscription {
                    subject: "b.*.x".into(),
                    queue: None
                },
            ]
        );
        // no trimming: a space after the comma becomes part of the subject
        let m = with("a.in.>|actor,b.*.x", "a.in.>|actor, b.*.x");
        assert_eq!(messaging_links(&m), vec!["link nats -> actor (wasmcloud:messaging/handler): subscription subject ` b.*.x` is malformed"]);
        let m = with("a.in.>|actor,b.*.x", "a.>.x");
        assert_eq!(messaging_links(&m), vec!["link nats -> actor (wasmcloud:messaging/handler): subscription subject `a.>.x` is malformed"]);
    }

    #[test]
    fn messaging_config_keys_and_urls_are_checked() {
        let m = with("subscriptions:", "subscription:");
        let p = messaging_links(&m);
        assert!(p.contains(&"link nats -> actor (wasmcloud:messaging/handler): source config key `subscription` is not read by the NATS messaging provider".to_owned()), "{p:?}");
        assert!(p.contains(&"link nats -> actor (wasmcloud:messaging/handler): handler link without `subscriptions` in its source config".to_owned()), "{p:?}");
        let m = with(
            "{cluster_uris: \"nats://127.0.0.1:4222\"}",
            "{cluster_uris: \"nats://0.0.0.0:4222\"}",
        );
        assert_eq!(messaging_links(&m), vec!["link actor -> nats (wasmcloud:messaging/consumer): target cluster_uris entry `nats://0.0.0.0:4222` is not a nats:// URL on loopback"]);
    }

    /// A two-package WIT in a temp dir: world `actor` imports `t:svc/api`, exports
    /// `t:svc/events`; world `svc-provider` exports `t:svc/api` and calls (imports) `t:svc/events`.
    fn tiny_wit() -> WitIndex {
        // Tests run on several threads of one process: each call needs its own directory,
        // or one test's cleanup deletes the files another is parsing.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir()
            .join(format!("edgecell-mc-wit-{}-{n}", std::process::id()));
        std::fs::create_dir_all(dir.join("deps/svc")).unwrap();
        std::fs::write(
            dir.join("app.wit"),
            "package t:app@0.1.0;\n\
             world actor { import t:svc/api@0.1.0; export t:svc/events@0.1.0; }\n\
             world svc-provider { export t:svc/api@0.1.0; import t:svc/events@0.1.0; }\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("deps/svc/svc.wit"),
            "package t:svc@0.1.0;\n\
             interface api { get: func() -> u32; }\n\
             interface events { on: func(x: u32); }\n",
        )
        .unwrap();
        let wit = WitIndex::load(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        wit
    }

    const WIRED: &str = r#"
apiVersion: core.oam.dev/v1beta1
kind: Application
metadata:
  name: w
  annotations: {version: v1}
spec:
  components:
    - name: actor
      type: component
      properties: {image: "file://a.wasm"}
      traits:
        - type: link
          properties: {namespace: t, package: svc, interfaces: [api], target: {name: svc}}
    - name: svc
      type: capability
      properties: {image: "file://s.par.gz"}
      traits:
        - type: link
          properties: {namespace: t, package: svc, interfaces: [events], target: {name: actor}}
"#;

    fn wired_worlds() -> BTreeMap<String, String> {
        BTreeMap::from([
            ("actor".into(), "actor".into()),
            ("svc".into(), "svc-provider".into()),
        ])
    }

    #[test]
    fn link_interfaces_follow_the_worlds() {
        let wit = tiny_wit();
        assert_eq!(wit.root_package(), "t:app@0.1.0");
        let w = wired_worlds();
        assert_eq!(
            link_interfaces(&parse(WIRED).unwrap(), &wit, &w),
            Vec::<String>::new()
        );
        let typo = parse(&WIRED.replacen("interfaces: [api]", "interfaces: [apis]", 1)).unwrap();
        assert_eq!(
            link_interfaces(&typo, &wit, &w),
            vec!["link actor -> svc (t:svc/apis): `t:svc/apis` is not an interface of the WIT"]
        );
        // the actor's world does not import events, the provider's world does not export it
        let wrong = parse(&WIRED.replacen("interfaces: [api]", "interfaces: [events]", 1)).unwrap();
        assert_eq!(
            link_interfaces(&wrong, &wit, &w),
            vec![
                "link actor -> svc (t:svc/events): world `actor` of actor does not import `t:svc/events`",
                "link actor -> svc (t:svc/events): world `svc-provider` of svc does not export `t:svc/events`",
            ]
        );
        // a provider without a world is not checked; a component without one is a problem
        let only_provider = BTreeMap::from([("svc".to_owned(), "svc-provider".to_owned())]);
        assert_eq!(
            link_interfaces(&parse(WIRED).unwrap(), &wit, &only_provider),
            vec![
                "component actor has no world assigned",
                "component actor has no world assigned"
            ]
        );
    }

    #[test]
    fn imports_and_invoked_exports_must_be_linked() {
        let wit = tiny_wit();
        let w = wired_worlds();
        let invoked = ["t:svc/events"];
        assert_eq!(
            links_cover_worlds(&parse(WIRED).unwrap(), &wit, &w, &invoked),
            Vec::<String>::new()
        );
        let unlinked = parse(&WIRED.replacen(
            "package: svc, interfaces: [api]",
            "package: other, interfaces: [api]",
            1,
        ))
        .unwrap();
        assert_eq!(
            links_cover_worlds(&unlinked, &wit, &w, &invoked),
            vec!["actor imports `t:svc/api` but links it to no provider"]
        );
        let unfed =
            parse(&WIRED.replacen("target: {name: actor}", "target: {name: nobody}", 1)).unwrap();
        assert_eq!(
            links_cover_worlds(&unfed, &wit, &w, &invoked),
            vec!["actor exports `t:svc/events` but nothing is linked to it"]
        );
    }
}
