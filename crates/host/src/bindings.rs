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

/// Bindings for an actor world whose imports are (a subset of) `capabilities`: the common
/// imports map onto it here, `$extra` adds the ones only some worlds import.
macro_rules! actor_world {
    ($(#[$doc:meta])* $name:ident, $world:literal, { $($extra:tt)* }) => {
        $(#[$doc])*
        pub mod $name {
            wasmtime::component::bindgen!({
                path: "../../wit",
                world: $world,
                with: {
                    "wasi:config/store": crate::bindings::capabilities::wasi::config::store,
                    "edgecell:cache/store": crate::bindings::capabilities::edgecell::cache::store,
                    "edgecell:metrics/recorder": crate::bindings::capabilities::edgecell::metrics::recorder,
                    "wasmcloud:messaging/types": crate::bindings::capabilities::wasmcloud::messaging::types,
                    "wasmcloud:messaging/consumer": crate::bindings::capabilities::wasmcloud::messaging::consumer,
                    $($extra)*
                },
                additional_derives: [PartialEq],
            });
        }
    };
}

actor_world!(
    /// Any actor fed from NATS: only its `wasmcloud:messaging/handler` export is used.
    messaging_actor,
    "edgecell:actors/messaging-actor",
    { "edgecell:inference/runner": crate::bindings::capabilities::edgecell::inference::runner, }
);
actor_world!(
    /// The test component driven by the integration tests and benchmarks.
    probe,
    "edgecell:actors/probe",
    {}
);
actor_world!(
    /// The sensor-fusion actor's exports.
    sensor_fusion,
    "edgecell:actors/sensor-fusion",
    {}
);
actor_world!(
    /// The video-analytics actor's exports.
    video_analytics,
    "edgecell:actors/video-analytics",
    { "edgecell:inference/runner": crate::bindings::capabilities::edgecell::inference::runner, }
);
actor_world!(
    /// The v2x-validator actor's exports.
    v2x_validator,
    "edgecell:actors/v2x-validator",
    {}
);

/// The kernels benchmark component (no imports).
pub mod kernels {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "edgecell:actors/kernels",
    });
}

pub use capabilities::wasmcloud::messaging::types::BrokerMessage;
