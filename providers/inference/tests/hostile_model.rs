//! A model file that makes tract itself panic while loading (padding so large that its shape
//! arithmetic overflows) gives a typed load error, not a crashed provider.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use edgecell_inference::{LoadError, Model};
use prost::Message;
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::type_proto::{self, Tensor};
use tract_onnx::pb::{
    AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto, attribute_proto::AttributeType,
};

fn value(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            value: Some(dimension::Value::DimValue(d)),
            ..Dimension::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..TypeProto::default()
        }),
        ..ValueInfoProto::default()
    }
}

/// One 3×3 convolution with `pads` (ONNX order: begins then ends) on a 1×1×4×4 input.
fn conv_model(pads: [i64; 4]) -> Vec<u8> {
    let weights = TensorProto {
        dims: vec![1, 1, 3, 3],
        data_type: DataType::Float as i32,
        float_data: vec![0.5; 9],
        name: "w".into(),
        ..TensorProto::default()
    };
    let conv = NodeProto {
        input: vec!["x".into(), "w".into()],
        output: vec!["y".into()],
        name: "conv".into(),
        op_type: "Conv".into(),
        attribute: vec![
            AttributeProto {
                name: "kernel_shape".into(),
                ints: vec![3, 3],
                r#type: AttributeType::Ints as i32,
                ..AttributeProto::default()
            },
            AttributeProto {
                name: "pads".into(),
                ints: pads.to_vec(),
                r#type: AttributeType::Ints as i32,
                ..AttributeProto::default()
            },
        ],
        ..NodeProto::default()
    };
    let model = ModelProto {
        ir_version: 7,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(GraphProto {
            node: vec![conv],
            name: "g".into(),
            initializer: vec![weights],
            input: vec![value("x", &[1, 1, 4, 4])],
            output: vec![ValueInfoProto {
                name: "y".into(),
                ..ValueInfoProto::default()
            }],
            ..GraphProto::default()
        }),
        ..ModelProto::default()
    };
    model.encode_to_vec()
}

#[test]
fn a_model_that_makes_tract_panic_is_a_load_error() {
    let dir = tempfile::tempdir().unwrap();
    // the same model with ordinary pads loads and runs, so the file itself is well formed
    let good = dir.path().join("good.onnx");
    std::fs::write(&good, conv_model([1, 1, 1, 1])).unwrap();
    let model = Model::load(&good, "good", None, true).unwrap();
    assert_eq!(model.info().outputs[0].shape, vec![1, 1, 4, 4]);
    // pads near i64::MAX overflow tract's shape arithmetic, where tract asserts
    let bad = dir.path().join("bad.onnx");
    let huge = i64::MAX / 2;
    std::fs::write(&bad, conv_model([huge, huge, huge, huge])).unwrap();
    match Model::load(&bad, "bad", None, true) {
        Err(LoadError::Model { message, .. }) => assert!(!message.is_empty(), "{message}"),
        other => panic!("expected a model load error, got {other:?}"),
    }
}
