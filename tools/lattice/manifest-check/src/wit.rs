//! The project's WIT (`wit/`: the `edgecell:actors` worlds plus `deps/`), resolved with
//! `wit-parser`, reduced to what a link trait can name: `namespace:package/interface`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use wit_parser::{InterfaceId, Resolve, WorldItem};

use crate::Error;

/// An interface of the resolved WIT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Fully qualified, with the package version (`edgecell:cache/store@0.2.0`).
    pub id: String,
    /// Number of functions; 0 for types-only interfaces (`edgecell:types/types`).
    pub functions: usize,
}

/// The interfaces a world imports and exports, as unversioned `namespace:package/interface`
/// (how wadm link traits name them). Imports include those pulled in through `use`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorldIo {
    pub imports: BTreeSet<String>,
    pub exports: BTreeSet<String>,
}

/// The resolved WIT: every named interface of every package, and the worlds of the root package.
#[derive(Debug, Clone)]
pub struct WitIndex {
    root: String,
    interfaces: BTreeMap<String, Interface>,
    worlds: BTreeMap<String, WorldIo>,
}

impl WitIndex {
    /// Resolves the WIT directory `dir` (a package with a `deps/` folder) like `wit-bindgen` does.
    pub fn load(dir: &Path) -> Result<Self, Error> {
        let mut resolve = Resolve::default();
        let (root, _) = resolve.push_dir(dir).map_err(|e| Error::Wit {
            path: dir.to_owned(),
            message: format!("{e:#}"),
        })?;
        let key = |id: InterfaceId| -> Option<String> {
            let iface = &resolve.interfaces[id];
            let name = iface.name.as_ref()?;
            let pkg = &resolve.packages[iface.package?].name;
            Some(format!("{}:{}/{name}", pkg.namespace, pkg.name))
        };
        let mut interfaces = BTreeMap::new();
        for (id, iface) in &resolve.interfaces {
            if let (Some(k), Some(full)) = (key(id), resolve.id_of(id)) {
                interfaces.insert(
                    k,
                    Interface {
                        id: full,
                        functions: iface.functions.len(),
                    },
                );
            }
        }
        let names = |items: &mut dyn Iterator<Item = &WorldItem>| -> BTreeSet<String> {
            items
                .filter_map(|item| match item {
                    WorldItem::Interface { id, .. } => key(*id),
                    WorldItem::Function(_) | WorldItem::Type(_) => None,
                })
                .collect()
        };
        let mut worlds = BTreeMap::new();
        for (name, wid) in &resolve.packages[root].worlds {
            let w = &resolve.worlds[*wid];
            let imports = names(&mut w.imports.values());
            let exports = names(&mut w.exports.values());
            worlds.insert(name.clone(), WorldIo { imports, exports });
        }
        Ok(Self {
            root: resolve.packages[root].name.to_string(),
            interfaces,
            worlds,
        })
    }

    /// The root package, e.g. `edgecell:actors@0.1.0`.
    pub fn root_package(&self) -> &str {
        &self.root
    }

    /// The interface `namespace:package/interface`, if the WIT has it.
    pub fn interface(&self, namespace: &str, package: &str, interface: &str) -> Option<&Interface> {
        self.interfaces
            .get(&format!("{namespace}:{package}/{interface}"))
    }

    /// An interface by its unversioned key `namespace:package/interface`.
    pub fn interface_by_key(&self, key: &str) -> Option<&Interface> {
        self.interfaces.get(key)
    }

    /// A world of the root package by name.
    pub fn world(&self, name: &str) -> Option<&WorldIo> {
        self.worlds.get(name)
    }

    /// Names of the root package's worlds.
    pub fn world_names(&self) -> impl Iterator<Item = &str> {
        self.worlds.keys().map(String::as_str)
    }
}
