//! Host-side bindings generated from the one WIT source in `wit/`.
//!
//! `capabilities` covers every import an actor may use; the actor worlds map their imports onto
//! it with `with`, so one set of host trait implementations serves every actor.

/// Every capability the embedded host provides (imports only).
pub mod capabilities {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "edgecell:actors/capabilities",
        additional_derives: [PartialEq],
    });
}

/// Any actor fed from NATS: only its `wasmcloud:messaging/handler` export is used.
pub mod messaging_actor {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "edgecell:actors/messaging-actor",
        with: {
            "wasi:config/store": crate::bindings::capabilities::wasi::config::store,
            "edgecell:cache/store": crate::bindings::capabilities::edgecell::cache::store,
            "edgecell:metrics/recorder": crate::bindings::capabilities::edgecell::metrics::recorder,
            "edgecell:inference/runner": crate::bindings::capabilities::edgecell::inference::runner,
            "wasmcloud:messaging/types": crate::bindings::capabilities::wasmcloud::messaging::types,
            "wasmcloud:messaging/consumer": crate::bindings::capabilities::wasmcloud::messaging::consumer,
        },
    });
}

/// The test component driven by the integration tests and benchmarks.
pub mod probe {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "edgecell:actors/probe",
        with: {
            "wasi:config/store": crate::bindings::capabilities::wasi::config::store,
            "edgecell:cache/store": crate::bindings::capabilities::edgecell::cache::store,
            "edgecell:metrics/recorder": crate::bindings::capabilities::edgecell::metrics::recorder,
            "wasmcloud:messaging/types": crate::bindings::capabilities::wasmcloud::messaging::types,
            "wasmcloud:messaging/consumer": crate::bindings::capabilities::wasmcloud::messaging::consumer,
        },
    });
}

/// The sensor-fusion actor's exports.
pub mod sensor_fusion {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "edgecell:actors/sensor-fusion",
        with: {
            "wasi:config/store": crate::bindings::capabilities::wasi::config::store,
            "edgecell:cache/store": crate::bindings::capabilities::edgecell::cache::store,
            "edgecell:metrics/recorder": crate::bindings::capabilities::edgecell::metrics::recorder,
            "wasmcloud:messaging/types": crate::bindings::capabilities::wasmcloud::messaging::types,
            "wasmcloud:messaging/consumer": crate::bindings::capabilities::wasmcloud::messaging::consumer,
        },
        additional_derives: [PartialEq],
    });
}

/// The video-analytics actor's exports.
pub mod video_analytics {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "edgecell:actors/video-analytics",
        with: {
            "wasi:config/store": crate::bindings::capabilities::wasi::config::store,
            "edgecell:cache/store": crate::bindings::capabilities::edgecell::cache::store,
            "edgecell:metrics/recorder": crate::bindings::capabilities::edgecell::metrics::recorder,
            "edgecell:inference/runner": crate::bindings::capabilities::edgecell::inference::runner,
            "wasmcloud:messaging/types": crate::bindings::capabilities::wasmcloud::messaging::types,
            "wasmcloud:messaging/consumer": crate::bindings::capabilities::wasmcloud::messaging::consumer,
        },
        additional_derives: [PartialEq],
    });
}

/// The v2x-validator actor's exports.
pub mod v2x_validator {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "edgecell:actors/v2x-validator",
        with: {
            "wasi:config/store": crate::bindings::capabilities::wasi::config::store,
            "edgecell:cache/store": crate::bindings::capabilities::edgecell::cache::store,
            "edgecell:metrics/recorder": crate::bindings::capabilities::edgecell::metrics::recorder,
            "wasmcloud:messaging/types": crate::bindings::capabilities::wasmcloud::messaging::types,
            "wasmcloud:messaging/consumer": crate::bindings::capabilities::wasmcloud::messaging::consumer,
        },
        additional_derives: [PartialEq],
    });
}

/// The kernels benchmark component (no imports).
pub mod kernels {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "edgecell:actors/kernels",
    });
}

pub use capabilities::wasmcloud::messaging::types::BrokerMessage;
