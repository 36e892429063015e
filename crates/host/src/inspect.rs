//! `edgecell inspect`: what a component imports and exports, and how big it is.

use std::fmt::Write as _;

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

/// One import or export.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Item {
    pub name: String,
    /// "instance", "func", "type", "resource", "module", "component".
    pub kind: &'static str,
    /// For instances: their functions as `name(param, ...)`.
    pub functions: Vec<String>,
}

/// The shape of a component.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub size_bytes: usize,
    pub sha256: String,
    pub imports: Vec<Item>,
    pub exports: Vec<Item>,
}

fn func_sig(name: &str, f: &wasmtime::component::types::ComponentFunc) -> String {
    let params: Vec<&str> = f.params().map(|(p, _)| p).collect();
    format!("{name}({})", params.join(", "))
}

fn item(engine: &Engine, name: &str, ty: &ComponentItem) -> Item {
    let (kind, functions) = match ty {
        ComponentItem::ComponentInstance(inst) => {
            let mut fns: Vec<String> = inst
                .exports(engine)
                .filter_map(|(n, e)| match &e.ty {
                    ComponentItem::ComponentFunc(f) => Some(func_sig(n, f)),
                    _ => None,
                })
                .collect();
            fns.sort();
            ("instance", fns)
        }
        ComponentItem::ComponentFunc(f) => ("func", vec![func_sig(name, f)]),
        ComponentItem::CoreFunc(_) => ("core-func", vec![]),
        ComponentItem::Module(_) => ("module", vec![]),
        ComponentItem::Component(_) => ("component", vec![]),
        ComponentItem::Type(_) => ("type", vec![]),
        ComponentItem::Resource(_) => ("resource", vec![]),
    };
    Item { name: name.to_owned(), kind, functions }
}

/// Describe a compiled component.
#[must_use]
pub fn report(engine: &Engine, component: &Component, bytes: &[u8]) -> Report {
    let ty = component.component_type();
    let mut imports: Vec<Item> = ty.imports(engine).map(|(n, e)| item(engine, n, &e.ty)).collect();
    let mut exports: Vec<Item> = ty.exports(engine).map(|(n, e)| item(engine, n, &e.ty)).collect();
    imports.sort_by(|a, b| a.name.cmp(&b.name));
    exports.sort_by(|a, b| a.name.cmp(&b.name));
    Report { size_bytes: bytes.len(), sha256: crate::sha256_hex(bytes), imports, exports }
}

impl Report {
    /// Human-readable text.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "size:   {} bytes ({:.1} KiB)", self.size_bytes, self.size_bytes as f64 / 1024.0);
        let _ = writeln!(out, "sha256: {}", self.sha256);
        for (title, items) in [("imports", &self.imports), ("exports", &self.exports)] {
            let _ = writeln!(out, "{title} ({}):", items.len());
            for i in items {
                let _ = writeln!(out, "  {} [{}]", i.name, i.kind);
                for f in &i.functions {
                    let _ = writeln!(out, "      {f}");
                }
            }
        }
        out
    }
}
