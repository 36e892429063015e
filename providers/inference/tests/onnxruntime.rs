//! The ONNX Runtime backend (feature `onnxruntime`) against tract on the same model and inputs:
//! metadata, outputs, the pool on several sessions, configuration and load errors.
#![cfg(feature = "onnxruntime")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;

use common::{MODEL, MODELS, image, model, nanodet_input, ort_config, ort_model};
use edgecell_inference::{
    Backend, InferenceError, InferencePool, LoadError, Model, ModelRegistry, OrtConfig, PoolConfig,
    RegistryConfig, Tensor,
};

fn max_abs_diff(a: &[Tensor], b: &[Tensor]) -> f32 {
    assert_eq!(a.len(), b.len());
    let mut max = 0f32;
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.name, y.name);
        assert_eq!(x.shape, y.shape, "{}", x.name);
        let (x, y) = (x.data.as_f32().unwrap(), y.data.as_f32().unwrap());
        for (p, q) in x.iter().zip(y) {
            max = max.max((p - q).abs());
        }
    }
    max
}

#[test]
fn both_engines_declare_the_same_inputs_and_outputs() {
    let Some(ort) = ort_model() else { return };
    let (t, o) = (model().info().clone(), ort.info().clone());
    assert_eq!(t.backend, "tract");
    assert_eq!(o.backend, "onnxruntime");
    assert_eq!(
        t.version, o.version,
        "the version comes from the model file, not the engine"
    );
    assert_eq!(t.inputs, o.inputs);
    assert_eq!(t.outputs, o.outputs);
}

#[test]
fn both_engines_agree_on_real_frames() {
    let Some(ort) = ort_model() else { return };
    let tract = model();
    for rel in ["data/images/dog.jpg", "data/images/person.jpg"] {
        let (input, _) = nanodet_input(&image(rel));
        let a = tract.run(vec![input.clone()]).unwrap();
        let b = ort.run(vec![input]).unwrap();
        let d = max_abs_diff(&a, &b);
        eprintln!("{rel}: max abs diff tract vs onnxruntime backend {d:.2e}");
        assert!(d <= 1e-4, "{rel}: {d}");
    }
}

#[test]
fn the_pool_runs_onnxruntime_sessions_side_by_side() {
    let Some(cfg) = ort_config() else { return };
    let cfg = OrtConfig { sessions: 2, ..cfg };
    let reg = ModelRegistry::load(&RegistryConfig {
        backend: Backend::Onnxruntime(cfg),
        ..RegistryConfig::new(MODELS)
    })
    .unwrap();
    assert_eq!(reg.metadata(MODEL).unwrap().backend, "onnxruntime");
    let pool = InferencePool::new(
        Arc::new(reg),
        PoolConfig {
            workers: 2,
            ..PoolConfig::default()
        },
    )
    .unwrap();
    let frames = ["dog", "person", "horses", "dog"];
    let inputs: Vec<Tensor> = frames
        .iter()
        .map(|f| nanodet_input(&image(&format!("data/images/{f}.jpg"))).0)
        .collect();
    let expected: Vec<Vec<Tensor>> = inputs
        .iter()
        .map(|i| model().run(vec![i.clone()]).unwrap())
        .collect();
    let batch: Vec<Vec<Tensor>> = inputs.into_iter().map(|i| vec![i]).collect();
    let results = pool.run_batch(MODEL, batch);
    assert_eq!(results.len(), frames.len());
    for ((r, want), f) in results.into_iter().zip(&expected).zip(frames) {
        let got = r.unwrap();
        assert!(max_abs_diff(&got, want) <= 1e-4, "{f}");
    }
    // Validation is the engine-independent layer: the same typed errors as on tract.
    let wrong = Tensor::f32(
        common::INPUT,
        vec![1, 3, 320, 320],
        vec![0.0; 3 * 320 * 320],
    );
    assert!(matches!(
        pool.run(MODEL, vec![wrong]),
        Err(InferenceError::WrongShape { .. })
    ));
    assert!(matches!(
        pool.run("no-such-model", vec![]),
        Err(InferenceError::UnknownModel(_))
    ));
}

#[test]
fn a_missing_or_foreign_library_is_a_load_error_not_a_crash() {
    let path = PathBuf::from(MODELS).join(format!("{MODEL}.onnx"));
    let backend = Backend::Onnxruntime(OrtConfig {
        library: Some(PathBuf::from("/nonexistent/libonnxruntime.so")),
        ..OrtConfig::default()
    });
    let err = Model::load_with(&path, MODEL, None, false, &backend).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, LoadError::Model { .. }), "{err:?}");
    // Either the library fails to load, or (when another test loaded the real one first in
    // this process) the process refuses to switch libraries.
    assert!(text.contains("/nonexistent/libonnxruntime.so"), "{text}");
    let zero_threads = Backend::Onnxruntime(OrtConfig {
        intra_threads: 0,
        ..OrtConfig::default()
    });
    let err = Model::load_with(&path, MODEL, None, false, &zero_threads).unwrap_err();
    assert!(err.to_string().contains("intra_threads"), "{err}");
    // Counts that would exhaust the machine are refused before ONNX Runtime sees them.
    for (cfg, what) in [
        (
            OrtConfig {
                intra_threads: 1 << 32,
                ..OrtConfig::default()
            },
            "intra_threads",
        ),
        (
            OrtConfig {
                sessions: usize::MAX,
                ..OrtConfig::default()
            },
            "sessions",
        ),
        (
            OrtConfig {
                sessions: OrtConfig::MAX_SESSIONS + 1,
                ..OrtConfig::default()
            },
            "sessions",
        ),
    ] {
        let err =
            Model::load_with(&path, MODEL, None, false, &Backend::Onnxruntime(cfg)).unwrap_err();
        assert!(err.to_string().contains(what), "{err}");
    }
}

#[test]
fn a_corrupt_model_is_a_load_error_on_onnxruntime_too() {
    let Some(cfg) = ort_config() else { return };
    let dir = std::env::temp_dir().join(format!("edgecell-ort-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("broken.onnx");
    std::fs::write(&bad, b"this is not a protobuf model").unwrap();
    let err = Model::load_with(&bad, "broken", None, true, &Backend::Onnxruntime(cfg)).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(err, LoadError::Model { .. }), "{err:?}");
    eprintln!("{err}");
}

#[test]
fn backend_names_parse_and_unknown_ones_are_refused() {
    assert_eq!(
        Backend::from_name("tract", OrtConfig::default()),
        Ok(Backend::Tract)
    );
    assert!(matches!(
        Backend::from_name(" ONNXRuntime ", OrtConfig::default()),
        Ok(Backend::Onnxruntime(_))
    ));
    assert_eq!(
        Backend::from_name("tensorrt", OrtConfig::default()),
        Err("tensorrt".to_owned())
    );
    let cfg: RegistryConfig = serde_json::from_str(
        r#"{"dir":"/m","backend":"onnxruntime","library":"/x.so","intra_threads":2}"#,
    )
    .unwrap();
    assert_eq!(
        cfg.backend,
        Backend::Onnxruntime(OrtConfig {
            library: Some(PathBuf::from("/x.so")),
            intra_threads: 2,
            sessions: 0
        })
    );
    let cfg: RegistryConfig = serde_json::from_str(r#"{"dir":"/m"}"#).unwrap();
    assert_eq!(cfg.backend, Backend::Tract);
    let err =
        serde_json::from_str::<RegistryConfig>(r#"{"dir":"/m","backend":"tensorrt"}"#).unwrap_err();
    assert!(
        err.to_string().contains("unknown inference backend"),
        "{err}"
    );
    // The serialized forms read back, for both engines.
    let text = serde_json::to_string(&cfg).unwrap();
    assert_eq!(serde_json::from_str::<RegistryConfig>(&text).unwrap(), cfg);
    let ort = RegistryConfig {
        backend: Backend::Onnxruntime(OrtConfig {
            library: Some(PathBuf::from("/opt/ort/libonnxruntime.so")),
            intra_threads: 3,
            sessions: 2,
        }),
        ..RegistryConfig::new("/m")
    };
    let text = serde_json::to_string(&ort).unwrap();
    assert_eq!(
        serde_json::from_str::<RegistryConfig>(&text).unwrap(),
        ort,
        "{text}"
    );
}
