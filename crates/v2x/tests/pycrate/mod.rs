//! Reading the `pycrate-*-expected.json` files that tools/gen_*pycrate.py write.
#![allow(dead_code, clippy::expect_used, clippy::panic)]

use serde_json::Value;

/// The entry for one vector file in an expected-values JSON document.
pub fn entry(all: &str, name: &str) -> Value {
    let all: Value = serde_json::from_str(all).expect("json");
    all.get(name).cloned().expect("entry")
}

/// An integer field of an entry.
pub fn int(e: &Value, key: &str) -> i64 {
    e.get(key)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("{key}"))
}
