//! Graph editing, typed initializers and the topological check.

use half::f16;
use vmunet_onnx_ir::pb::NodeProto;
use vmunet_onnx_ir::{value_info, Attr, DataType, Dim, Graph, GraphError, Model, ZeroPoint};

/// input x -> Relu -> Mul(w) -> Add(bias) -> y
fn small() -> Graph {
    let mut g = Graph::new("small");
    g.add_input(value_info(
        "x",
        DataType::Float,
        &[Dim::from("batch"), Dim::Fixed(4)],
    ));
    let w = g
        .add_initializer("w", &[4], &[1.0f32, 2.0, 3.0, 4.0])
        .unwrap();
    let r = g.op("Relu", &["x"], vec![], "block.0");
    let m = g.op("Mul", &[&r, &w], vec![], "block.0");
    let b = g.constant(&[1], &[0.5f32]).unwrap();
    g.op_into("Add", &[&m, &b], "y");
    g.add_output(value_info(
        "y",
        DataType::Float,
        &[Dim::from("batch"), Dim::Fixed(4)],
    ));
    g.check().unwrap();
    g
}

fn node(name: &str, op: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        name: Some(name.into()),
        op_type: Some(op.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn lookups_find_nodes_producers_and_consumers() {
    let g = small();
    assert_eq!(g.nodes().len(), 3);
    assert_eq!(g.nodes_by_op("Mul").count(), 1);
    let names: Vec<&str> = g.nodes_matching("block.0/*").map(|n| n.name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("block.0/")));
    assert_eq!(g.nodes_matching("y/Ad?#*").count(), 1);
    assert_eq!(g.nodes_matching("block.1/*").count(), 0);
    let relu = g.nodes_by_op("Relu").next().unwrap();
    let out = &relu.output[0];
    assert_eq!(g.producer(out).unwrap().name(), relu.name());
    let readers: Vec<&str> = g.consumers(out).map(|n| n.op_type()).collect();
    assert_eq!(readers, ["Mul"]);
    assert!(g.producer("x").is_none(), "graph inputs have no producer");
    assert_eq!(g.consumers("w").count(), 1);
    assert!(g.find_node(relu.name()).is_some());
}

#[test]
fn constants_are_deduplicated_by_type_and_value() {
    let mut g = Graph::new("c");
    let a = g.constant(&[2], &[1i64, 2]).unwrap();
    let b = g.constant(&[2], &[1i64, 2]).unwrap();
    let c = g.constant(&[2], &[1i64, 3]).unwrap();
    let d = g.constant(&[2], &[1i32, 2]).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_ne!(a, d, "same bits, other type");
    assert_eq!(g.initializers().len(), 3);
    assert!(
        a.starts_with("const_i64#") && d.starts_with("const_i32#"),
        "{a} {d}"
    );
    assert!(matches!(
        g.constant(&[3], &[1.0f32]),
        Err(GraphError::Tensor(_))
    ));
}

#[test]
fn fresh_names_skip_names_in_use() {
    let mut g = Graph::new("f");
    g.add_input(value_info("v#1", DataType::Float, &[]));
    g.add_input(value_info("v#2", DataType::Float, &[]));
    let n = g.fresh("v");
    assert_eq!(n, "v#3");
    assert_ne!(g.fresh("v"), n);
    // A graph read from a file also knows its names.
    let mut h = Graph::from_proto(small().into_proto());
    for _ in 0..20 {
        let name = h.fresh("block.0");
        assert!(h.find_node(&name).is_none() && h.producer(&name).is_none());
    }
}

#[test]
fn insert_replace_remove_keep_or_break_validity_as_expected() {
    let mut g = small();
    let relu = g.nodes_by_op("Relu").next().unwrap().clone();
    let relu_out = relu.output[0].clone();
    // Insert a Sigmoid after Relu and route Mul through it.
    g.insert_node(1, node("extra", "Sigmoid", &[&relu_out], &["s"]))
        .unwrap();
    assert_eq!(
        g.replace_uses(&relu_out, "s", None),
        2,
        "Sigmoid itself and Mul"
    );
    // Sigmoid now reads its own output: a cycle.
    assert!(matches!(g.check(), Err(GraphError::Cycle(n)) if n.contains(&"extra".to_string())));
    // Put the Sigmoid's input back.
    let fixed = node("extra", "Sigmoid", &[&relu_out], &["s"]);
    let old = g.replace_node("extra", fixed).unwrap();
    assert_eq!(old.input, ["s"]);
    g.check().unwrap();
    assert_eq!(g.consumers("s").count(), 1);
    // Duplicate names and outputs are refused.
    assert_eq!(
        g.insert_node(0, node("extra", "Relu", &["x"], &["t"])),
        Err(GraphError::Duplicate("extra".into()))
    );
    assert_eq!(
        g.insert_node(0, node("other", "Relu", &["x"], &["s"])),
        Err(GraphError::Duplicate("s".into()))
    );
    // Removing the Sigmoid leaves Mul reading an undefined value.
    g.remove_node("extra").unwrap();
    match g.check() {
        Err(GraphError::UndefinedInput { input, .. }) => assert_eq!(input, "s"),
        other => panic!("{other:?}"),
    }
    g.replace_uses("s", &relu_out, None);
    g.check().unwrap();
    assert_eq!(
        g.remove_node("nope").unwrap_err(),
        GraphError::NoNode("nope".into())
    );
}

#[test]
fn check_catches_order_dangling_outputs_and_double_producers() {
    let mut g = small();
    let first = g.nodes()[0].clone();
    g.proto_mut().node.remove(0);
    g.proto_mut().node.push(first);
    assert!(
        matches!(g.check(), Err(GraphError::NotSorted { .. })),
        "{:?}",
        g.check()
    );

    let mut g = small();
    g.add_output(value_info("ghost", DataType::Float, &[]));
    assert_eq!(g.check(), Err(GraphError::DanglingOutput("ghost".into())));

    let mut g = small();
    let out = g.nodes()[0].output[0].clone();
    g.proto_mut()
        .node
        .push(node("again", "Relu", &["x"], &[&out]));
    assert_eq!(g.check(), Err(GraphError::ProducedTwice(out)));
}

/// A sparse initializer defines its value like a dense one.
#[test]
fn sparse_initializers_define_their_values() {
    let mut g = small();
    g.proto_mut()
        .node
        .push(node("sparse_add", "Add", &["y", "s"], &["z"]));
    assert!(matches!(g.check(), Err(GraphError::UndefinedInput { .. })));
    g.proto_mut()
        .sparse_initializer
        .push(vmunet_onnx_ir::pb::SparseTensorProto {
            values: Some(vmunet_onnx_ir::pb::TensorProto {
                name: Some("s".into()),
                ..Default::default()
            }),
            ..Default::default()
        });
    g.check().unwrap();
}

#[test]
fn cast_insertion_rewires_one_or_all_readers() {
    let mut g = small();
    let relu_out = g.nodes_by_op("Relu").next().unwrap().output[0].clone();
    let mul = g.nodes_by_op("Mul").next().unwrap().name().to_string();
    let c = g
        .insert_cast(&relu_out, DataType::Float16, Some(&mul))
        .unwrap();
    g.check().unwrap();
    let cast = g.producer(&c).unwrap();
    assert_eq!(cast.op_type(), "Cast");
    assert_eq!(cast.attribute[0].name(), "to");
    assert_eq!(cast.attribute[0].i(), DataType::Float16 as i64);
    assert_eq!(g.consumers(&c).next().unwrap().name(), mul);
    assert_eq!(
        g.consumers(&relu_out).count(),
        1,
        "only the Cast reads the original"
    );
    // Cast on a graph input, before its first reader.
    let cx = g.insert_cast("x", DataType::Float, None).unwrap();
    g.check().unwrap();
    assert_eq!(g.nodes()[0].op_type(), "Cast");
    assert_eq!(g.consumers("x").count(), 1);
    assert_eq!(g.consumers(&cx).next().unwrap().op_type(), "Relu");
    assert_eq!(
        g.insert_cast("nowhere", DataType::Float, None),
        Err(GraphError::NoValue("nowhere".into()))
    );
}

#[test]
fn qdq_insertion_adds_typed_scale_and_zero_point() {
    for zp in [ZeroPoint::I8(-3), ZeroPoint::U8(128)] {
        let mut g = small();
        let before = g.nodes().len();
        let dq = g.insert_qdq("w", 0.05, zp, None).unwrap();
        g.check().unwrap();
        assert_eq!(g.nodes().len(), before + 2);
        let dqn = g.producer(&dq).unwrap().clone();
        assert_eq!(dqn.op_type(), "DequantizeLinear");
        let qn = g.producer(&dqn.input[0]).unwrap();
        assert_eq!(qn.op_type(), "QuantizeLinear");
        assert_eq!(qn.input[0], "w");
        assert_eq!(
            g.initializer::<f32>(&qn.input[1]).unwrap(),
            (vec![], vec![0.05])
        );
        match zp {
            ZeroPoint::I8(v) => assert_eq!(g.initializer::<i8>(&qn.input[2]).unwrap().1, [v]),
            ZeroPoint::U8(v) => assert_eq!(g.initializer::<u8>(&qn.input[2]).unwrap().1, [v]),
        }
        assert_eq!(g.consumers(&dq).next().unwrap().op_type(), "Mul");
    }
}

#[test]
fn typed_initializers_round_trip_through_bytes() {
    let mut g = Graph::new("t");
    g.add_initializer("f32", &[2, 2], &[1.5f32, -2.0, 0.0, 3.25])
        .unwrap();
    let h = [
        f16::from_f32(0.5),
        f16::from_f32(-65504.0),
        f16::from_f32(1e-3),
    ];
    g.add_initializer("f16", &[3], &h).unwrap();
    g.add_initializer("i8", &[3], &[-128i8, 0, 127]).unwrap();
    g.add_initializer("u8", &[2], &[0u8, 255]).unwrap();
    g.add_initializer("i32", &[2], &[i32::MIN, 7]).unwrap();
    g.add_initializer("i64", &[1, 2], &[i64::MAX, -1]).unwrap();
    let mut m = Model::new(g, 8, &[("", 17)]);
    let bytes = m.to_bytes();
    let back = Model::from_bytes(&bytes).unwrap();
    assert_eq!(back, m);
    let g = &back.graph;
    assert_eq!(
        g.initializer::<f32>("f32").unwrap(),
        (vec![2, 2], vec![1.5, -2.0, 0.0, 3.25])
    );
    assert_eq!(g.initializer::<f16>("f16").unwrap().1, h);
    assert_eq!(g.initializer::<i8>("i8").unwrap().1, [-128, 0, 127]);
    assert_eq!(g.initializer::<u8>("u8").unwrap().1, [0, 255]);
    assert_eq!(g.initializer::<i32>("i32").unwrap().1, [i32::MIN, 7]);
    assert_eq!(
        g.initializer::<i64>("i64").unwrap(),
        (vec![1, 2], vec![i64::MAX, -1])
    );
    // raw_data is little-endian.
    let raw = g
        .initializer_proto("i32")
        .unwrap()
        .raw_data
        .clone()
        .unwrap();
    assert_eq!(&raw[4..8], &7i32.to_le_bytes());
    // Wrong type asked for: a typed error naming the tensor.
    let e = g.initializer::<f32>("i8").unwrap_err().to_string();
    assert!(
        e.contains("`i8`") && e.contains("INT8") && e.contains("FLOAT"),
        "{e}"
    );
    // Rewrite one initializer to another type.
    m.graph
        .set_initializer("f32", &[4], &[1i8, 2, 3, 4])
        .unwrap();
    assert_eq!(
        m.graph.initializer::<i8>("f32").unwrap(),
        (vec![4], vec![1, 2, 3, 4])
    );
    assert!(matches!(
        m.graph.initializer::<f32>("none"),
        Err(GraphError::NoInitializer(_))
    ));
}

#[test]
fn typed_fields_are_read_when_there_is_no_raw_data() {
    let mut g = Graph::new("t");
    g.add_initializer("a", &[2], &[0.0f32, 0.0]).unwrap();
    let t = &mut g.proto_mut().initializer[0];
    t.raw_data = None;
    t.float_data = vec![4.0, 5.0];
    assert_eq!(g.initializer::<f32>("a").unwrap().1, [4.0, 5.0]);
    g.proto_mut().initializer[0].float_data = vec![4.0];
    assert!(matches!(
        g.initializer::<f32>("a"),
        Err(GraphError::Tensor(vmunet_onnx_ir::TensorError::Length {
            expected: 2,
            found: 1,
            ..
        }))
    ));
}

/// A main graph with one Scan whose body adds the state and the slice.
fn with_scan() -> Graph {
    let mut body = Graph::new("body");
    body.add_input(value_info("h_in", DataType::Float, &[Dim::Fixed(2)]));
    body.add_input(value_info("x_t", DataType::Float, &[Dim::Fixed(2)]));
    let h = body.op("Add", &["h_in", "x_t"], vec![], "step");
    let y = body.op("Identity", &[&h], vec![], "step");
    body.add_output(value_info(&h, DataType::Float, &[Dim::Fixed(2)]));
    body.add_output(value_info(&y, DataType::Float, &[Dim::Fixed(2)]));
    let mut g = Graph::new("main");
    g.add_input(value_info(
        "xs",
        DataType::Float,
        &[Dim::Fixed(5), Dim::Fixed(2)],
    ));
    let h0 = g.constant(&[2], &[0.0f32, 0.0]).unwrap();
    let outs = g.node(
        "Scan",
        &[&h0, "xs"],
        vec![
            ("body", Attr::Graph(body.into_proto())),
            ("num_scan_inputs", Attr::Int(1)),
        ],
        "scan",
        2,
    );
    g.op_into("Identity", &[&outs[1]], "ys");
    g.add_output(value_info(
        "ys",
        DataType::Float,
        &[Dim::Fixed(5), Dim::Fixed(2)],
    ));
    g.check().unwrap();
    g
}

#[test]
fn scan_bodies_are_read_edited_and_checked() {
    let mut g = with_scan();
    let scan = g.nodes_by_op("Scan").next().unwrap().name().to_string();
    let body = g.subgraph(&scan, "body").unwrap();
    assert_eq!(body.nodes_by_op("Add").count(), 1);
    assert!(matches!(
        g.subgraph(&scan, "num_scan_inputs"),
        Err(GraphError::NoSubgraph { .. })
    ));
    // Edit: put a Cast pair (f16 round trip) on the body's input slice.
    let n = g
        .edit_subgraph(&scan, "body", |b| {
            let c = b.insert_cast("x_t", DataType::Float16, None).unwrap();
            b.insert_cast(&c, DataType::Float, None).unwrap();
            b.nodes().len()
        })
        .unwrap();
    assert_eq!(n, 4);
    g.check().unwrap();
    let body = g.subgraph(&scan, "body").unwrap();
    assert_eq!(body.nodes_by_op("Cast").count(), 2);
    // Outer-scope values are visible in the body; undefined ones are reported with the path.
    g.edit_subgraph(&scan, "body", |b| {
        b.op("Mul", &["xs", "x_t"], vec![], "outer");
    })
    .unwrap();
    g.check().unwrap();
    g.edit_subgraph(&scan, "body", |b| {
        b.op("Mul", &["missing", "x_t"], vec![], "bad");
    })
    .unwrap();
    match g.check() {
        Err(GraphError::InSubgraph {
            node,
            attribute,
            source,
        }) => {
            assert_eq!((node.as_str(), attribute.as_str()), (scan.as_str(), "body"));
            assert!(
                matches!(*source, GraphError::UndefinedInput { ref input, .. } if input == "missing")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn model_files_are_written_atomically_and_read_with_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    let m = Model::new(with_scan(), 8, &[("", 17)]);
    m.write(&path).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temp file left"
    );
    assert_eq!(Model::read(&path).unwrap(), m);

    std::fs::write(&path, b"\xff\xff\xff not protobuf").unwrap();
    let e = Model::read(&path).unwrap_err().to_string();
    assert!(e.contains("m.onnx") && e.contains("protobuf"), "{e}");
    std::fs::write(&path, b"").unwrap();
    let e = Model::read(&path).unwrap_err().to_string();
    assert!(e.contains("m.onnx") && e.contains("no graph"), "{e}");
    let e = Model::read(&dir.path().join("absent.onnx"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("absent.onnx"), "{e}");
}
