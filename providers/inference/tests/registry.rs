//! Registry, metadata, validation errors, pool behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use common::{INPUT, MODEL, image, nanodet_input, registry};
use edgecell_inference::{
    InferenceError, InferencePool, LoadError, ModelRegistry, PoolConfig, RegistryConfig, Tensor,
    TensorData, TensorType,
};

#[test]
fn registry_reports_real_model_metadata() {
    let reg = registry();
    assert_eq!(reg.len(), 1);
    let info = reg.metadata(MODEL).unwrap();
    assert_eq!(info.name, MODEL);
    assert_eq!(info.backend, "tract");
    assert!(info.version.starts_with("fnv1a64-"), "{}", info.version);
    assert_eq!(info.inputs.len(), 1);
    assert_eq!(info.inputs[0].name, INPUT);
    assert_eq!(info.inputs[0].dtype, TensorType::F32);
    assert_eq!(info.inputs[0].shape, vec![1, 3, 416, 416]);
    let outs: Vec<(String, Vec<i64>)> = info
        .outputs
        .iter()
        .map(|o| (o.name.clone(), o.shape.clone()))
        .collect();
    eprintln!("outputs: {outs:?}");
    let mut shapes: Vec<Vec<i64>> = outs.iter().map(|o| o.1.clone()).collect();
    shapes.sort();
    assert_eq!(
        shapes,
        vec![
            vec![1, 169, 44],
            vec![1, 169, 80],
            vec![1, 676, 44],
            vec![1, 676, 80],
            vec![1, 2704, 44],
            vec![1, 2704, 80]
        ]
    );
    assert!(info.outputs.iter().all(|o| o.dtype == TensorType::F32));
    let mut names: Vec<&str> = info.outputs.iter().map(|o| o.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "Identity:0",
            "Identity_1:0",
            "Identity_2:0",
            "Identity_3:0",
            "Identity_4:0",
            "Identity_5:0"
        ]
    );
}

#[test]
fn bad_requests_are_typed_errors() {
    let reg = registry();
    let pool = InferencePool::new(
        reg,
        PoolConfig {
            workers: 1,
            queue_capacity: 4,
            max_request_bytes: 4 << 20,
        },
    )
    .unwrap();
    let good = || Tensor::f32(INPUT, vec![1, 3, 416, 416], vec![0.0; 3 * 416 * 416]);
    assert_eq!(
        pool.run("yolo", vec![good()]).unwrap_err(),
        InferenceError::UnknownModel("yolo".into())
    );
    assert_eq!(
        pool.run(MODEL, vec![]).unwrap_err(),
        InferenceError::MissingInput(INPUT.into())
    );
    let extra = Tensor::f32("mask", vec![1], vec![0.0]);
    assert_eq!(
        pool.run(MODEL, vec![good(), extra]).unwrap_err(),
        InferenceError::UnexpectedInput("mask".into())
    );
    assert_eq!(
        pool.run(MODEL, vec![good(), good()]).unwrap_err(),
        InferenceError::UnexpectedInput(INPUT.into())
    );
    let wrong_shape = Tensor::f32(INPUT, vec![1, 3, 320, 320], vec![0.0; 3 * 320 * 320]);
    assert_eq!(
        pool.run(MODEL, vec![wrong_shape]).unwrap_err(),
        InferenceError::WrongShape {
            input: INPUT.into(),
            expected: vec![1, 3, 416, 416],
            actual: vec![1, 3, 320, 320]
        }
    );
    let wrong_dtype = Tensor {
        name: INPUT.into(),
        shape: vec![1, 3, 416, 416],
        data: TensorData::U8(vec![0; 3 * 416 * 416]),
    };
    assert_eq!(
        pool.run(MODEL, vec![wrong_dtype]).unwrap_err(),
        InferenceError::WrongDtype {
            input: INPUT.into(),
            expected: TensorType::F32,
            actual: TensorType::U8
        }
    );
    let short = Tensor::f32(INPUT, vec![1, 3, 416, 416], vec![0.0; 100]);
    assert!(matches!(
        pool.run(MODEL, vec![short]).unwrap_err(),
        InferenceError::InvalidTensor(_)
    ));
    let huge = Tensor::f32(INPUT, vec![1, 3, 416, 416], vec![0.0; 2 << 20]);
    assert_eq!(
        pool.run(MODEL, vec![huge]).unwrap_err(),
        InferenceError::TooLarge(8 << 20)
    );
    // An unnamed tensor is accepted for a single-input model.
    let unnamed = Tensor::f32("", vec![1, 3, 416, 416], vec![0.0; 3 * 416 * 416]);
    assert_eq!(pool.run(MODEL, vec![unnamed]).unwrap().len(), 6);
    let stats = pool.stats();
    assert_eq!(stats.rejected_invalid, 8);
    assert_eq!(stats.completed, 1);
    assert_eq!(stats.latency.count, 1);
    assert_eq!(stats.queue_depth, 0);
    assert_eq!(stats.workers, 1);
}

#[test]
fn full_queue_is_busy_and_nothing_is_lost() {
    let pool = InferencePool::new(
        registry(),
        PoolConfig {
            workers: 1,
            queue_capacity: 1,
            ..PoolConfig::default()
        },
    )
    .unwrap();
    let (t, _) = nanodet_input(&image("data/images/dog.jpg"));
    let submitted: Vec<_> = (0..6)
        .map(|_| pool.submit(MODEL, vec![t.clone()]))
        .collect();
    let busy = submitted
        .iter()
        .filter(|r| matches!(r, Err(InferenceError::Busy)))
        .count();
    let accepted: Vec<_> = submitted.into_iter().filter_map(Result::ok).collect();
    assert!(busy >= 3, "busy {busy}");
    assert!(!accepted.is_empty());
    let n = accepted.len() as u64;
    // Every accepted request completes with the full output set.
    for p in accepted {
        assert_eq!(p.wait().unwrap().len(), 6);
    }
    let stats = pool.stats();
    assert_eq!(stats.rejected_busy, busy as u64);
    assert_eq!(stats.completed, n);
    assert_eq!(stats.run_latency.count, n);
    assert_eq!(stats.queue_depth + stats.in_flight, 0);
}

#[test]
fn batch_results_match_single_runs_in_order() {
    let pool = InferencePool::new(
        registry(),
        PoolConfig {
            workers: 2,
            ..PoolConfig::default()
        },
    )
    .unwrap();
    let inputs: Vec<Tensor> = ["dog", "person", "horses"]
        .iter()
        .map(|n| nanodet_input(&image(&format!("data/images/{n}.jpg"))).0)
        .collect();
    let mut batch: Vec<Vec<Tensor>> = inputs.iter().map(|t| vec![t.clone()]).collect();
    batch.push(vec![Tensor::f32(INPUT, vec![2], vec![0.0; 2])]);
    let results = pool.run_batch(MODEL, batch);
    assert_eq!(results.len(), 4);
    assert!(matches!(results[3], Err(InferenceError::WrongShape { .. })));
    for (t, r) in inputs.into_iter().zip(&results) {
        let single = pool.run(MODEL, vec![t]).unwrap();
        assert_eq!(
            r.as_ref().unwrap(),
            &single,
            "batched output equals single run"
        );
    }
}

#[test]
fn registry_load_errors_and_versions() {
    let dir = std::env::temp_dir().join(format!("edgecell-inference-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("broken.onnx"), b"not a protobuf").unwrap();
    let err = ModelRegistry::load(&RegistryConfig::new(&dir)).unwrap_err();
    assert!(matches!(err, LoadError::Model { .. }), "{err}");
    std::fs::remove_file(dir.join("broken.onnx")).unwrap();
    let err = ModelRegistry::load(&RegistryConfig::new(&dir)).unwrap_err();
    assert!(matches!(err, LoadError::NoModels { .. }), "{err}");
    std::fs::copy(
        common::MODELS.to_owned() + "/nanodet-m-416.onnx",
        dir.join("det.onnx"),
    )
    .unwrap();
    std::fs::write(dir.join("det.version"), "2.1.0\n").unwrap();
    let reg = ModelRegistry::load(&RegistryConfig {
        warmup: false,
        ..RegistryConfig::new(&dir)
    })
    .unwrap();
    assert_eq!(reg.metadata("det").unwrap().version, "2.1.0");
    // a name `only` lists that has no file is refused, not left to fail every run
    let err = ModelRegistry::load(&RegistryConfig {
        warmup: false,
        only: vec!["det".into(), "dett".into()],
        ..RegistryConfig::new(&dir)
    })
    .unwrap_err();
    assert!(matches!(&err, LoadError::NotFound { names, .. } if names == &["dett".to_owned()]), "{err}");
    // two files of one name
    std::fs::copy(dir.join("det.onnx"), dir.join("det.ONNX")).unwrap();
    let err = ModelRegistry::load(&RegistryConfig { warmup: false, ..RegistryConfig::new(&dir) }).unwrap_err();
    assert!(matches!(&err, LoadError::Duplicate { name, .. } if name == "det"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
    let err = ModelRegistry::load(&RegistryConfig::new("/nonexistent/models")).unwrap_err();
    assert!(matches!(err, LoadError::Io { .. }));
    let _ = Arc::new(reg);
}
