//! Writing a trained head as an ONNX model, with a hand-written protobuf encoder.
//!
//! A head is a handful of standard operators (Clip, Log, Sub, Div, MatMul, Add, Relu,
//! Softmax) on a `[1, inputs]` tensor, so hark encodes the few ONNX messages it needs itself
//! (ModelProto, GraphProto, NodeProto, TensorProto, ValueInfoProto; field numbers from
//! `onnx/onnx.proto`) instead of depending on a protobuf toolchain. The graph uses opset 13
//! and IR version 8, which every ONNX Runtime hark supports can load. This module only turns
//! a [`Head`](super::fit::Head) into bytes; it does no file I/O and knows nothing of datasets.

use super::fit::{Head, Transform};

/// The head's input tensor name, `[1, inputs]`: the base model's scores.
pub const INPUT_NAME: &str = "scores";
/// The head's output tensor name, `[1, classes]`: softmax probabilities.
pub const OUTPUT_NAME: &str = "probabilities";

const IR_VERSION: u64 = 8;
const OPSET: u64 = 13;
/// TensorProto.DataType.FLOAT
const FLOAT: u64 = 1;
/// AttributeProto.AttributeType.INT
const ATTR_INT: u64 = 2;

/// A protobuf message being encoded: fields are appended in the order they are written.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint(((field as u64) << 3) | wire_type as u64);
    }

    /// An integer field (int32, int64 and enums share wire type 0; negatives are not needed).
    fn int(&mut self, field: u32, v: u64) -> &mut Self {
        self.key(field, 0);
        self.varint(v);
        self
    }

    /// A length-delimited field: bytes, a string or an embedded message.
    fn bytes(&mut self, field: u32, b: &[u8]) -> &mut Self {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }

    fn str(&mut self, field: u32, s: &str) -> &mut Self {
        self.bytes(field, s.as_bytes())
    }

    fn msg(&mut self, field: u32, m: &Msg) -> &mut Self {
        self.bytes(field, &m.0)
    }
}

/// A float32 TensorProto with raw little-endian data.
fn tensor(name: &str, dims: &[usize], data: &[f32]) -> Msg {
    debug_assert_eq!(dims.iter().product::<usize>(), data.len());
    let mut t = Msg::default();
    for &d in dims {
        t.int(1, d as u64);
    }
    t.int(2, FLOAT);
    t.str(8, name);
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    t.bytes(9, &raw);
    t
}

/// A ValueInfoProto for a float32 tensor of fixed shape.
fn value_info(name: &str, dims: &[usize]) -> Msg {
    let mut shape = Msg::default();
    for &d in dims {
        let mut dim = Msg::default();
        dim.int(1, d as u64);
        shape.msg(1, &dim);
    }
    let mut tensor_type = Msg::default();
    tensor_type.int(1, FLOAT).msg(2, &shape);
    let mut ty = Msg::default();
    ty.msg(1, &tensor_type);
    let mut vi = Msg::default();
    vi.str(1, name).msg(2, &ty);
    vi
}

/// Builds a GraphProto: nodes in topological order plus their constant inputs.
#[derive(Default)]
struct Graph {
    nodes: Vec<Msg>,
    initializers: Vec<Msg>,
}

impl Graph {
    /// Append a node; returns the name of its (single) output.
    fn node(&mut self, op: &str, inputs: &[&str], output: &str, attrs: &[(&str, u64)]) -> String {
        let mut n = Msg::default();
        for i in inputs {
            n.str(1, i);
        }
        n.str(2, output);
        n.str(3, output);
        n.str(4, op);
        for (name, v) in attrs {
            let mut a = Msg::default();
            a.str(1, name).int(3, *v).int(20, ATTR_INT);
            n.msg(5, &a);
        }
        self.nodes.push(n);
        output.to_string()
    }

    fn constant(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        self.initializers.push(tensor(name, dims, data));
        name.to_string()
    }
}

/// Encode `head` as a complete ONNX model: input [`INPUT_NAME`] `[1, inputs]`, output
/// [`OUTPUT_NAME`] `[1, classes]` holding softmax probabilities.
pub fn encode_head(head: &Head, doc: &str) -> Vec<u8> {
    let n_in = head.mean.len();
    let n_out = head.classes();
    let mut g = Graph::default();

    let mut x = INPUT_NAME.to_string();
    if let Transform::Logit { eps } = head.transform {
        // logit(p) = ln(p) - ln(1 - p), with p clipped away from 0 and 1 exactly as
        // `Transform::apply` does, so ONNX Runtime and the trainer see the same numbers.
        let lo = g.constant("clip_min", &[], &[eps]);
        let hi = g.constant("clip_max", &[], &[1.0 - eps]);
        let one = g.constant("one", &[], &[1.0]);
        let p = g.node("Clip", &[&x, &lo, &hi], "clipped", &[]);
        let ln_p = g.node("Log", &[&p], "ln_p", &[]);
        let q = g.node("Sub", &[&one, &p], "one_minus_p", &[]);
        let ln_q = g.node("Log", &[&q], "ln_one_minus_p", &[]);
        x = g.node("Sub", &[&ln_p, &ln_q], "logit", &[]);
    }
    let mean = g.constant("mean", &[n_in], &head.mean);
    let std = g.constant("std", &[n_in], &head.std);
    let centered = g.node("Sub", &[&x, &mean], "centered", &[]);
    x = g.node("Div", &[&centered, &std], "standardized", &[]);
    let last = head.layers.len() - 1;
    for (i, layer) in head.layers.iter().enumerate() {
        let (rows, cols) = layer.w.dim();
        let w_data: Vec<f32> = layer.w.as_standard_layout().iter().copied().collect();
        let w = g.constant(&format!("w{i}"), &[rows, cols], &w_data);
        let b = g.constant(&format!("b{i}"), &[cols], &layer.b.to_vec());
        let mm = g.node("MatMul", &[&x, &w], &format!("matmul{i}"), &[]);
        let name = if i == last {
            "logits".to_string()
        } else {
            format!("dense{i}")
        };
        x = g.node("Add", &[&mm, &b], &name, &[]);
        if i != last {
            x = g.node("Relu", &[&x], &format!("relu{i}"), &[]);
        }
    }
    // Softmax over the class axis; opset 13 takes `axis` per axis, -1 = the last.
    let axis_last = (-1i64) as u64;
    g.node("Softmax", &[&x], OUTPUT_NAME, &[("axis", axis_last)]);

    let mut graph = Msg::default();
    for n in &g.nodes {
        graph.msg(1, n);
    }
    graph.str(2, "hark_head");
    for t in &g.initializers {
        graph.msg(5, t);
    }
    graph.str(10, doc);
    graph.msg(11, &value_info(INPUT_NAME, &[1, n_in]));
    graph.msg(12, &value_info(OUTPUT_NAME, &[1, n_out]));

    let mut opset = Msg::default();
    opset.str(1, "").int(2, OPSET);
    let mut model = Msg::default();
    model
        .int(1, IR_VERSION)
        .str(2, "hark")
        .str(3, env!("CARGO_PKG_VERSION"))
        .msg(7, &graph)
        .msg(8, &opset);
    model.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_follow_the_protobuf_encoding() {
        let mut m = Msg::default();
        m.varint(1);
        m.varint(300);
        m.varint(u64::MAX);
        assert_eq!(&m.0[..3], &[0x01, 0xAC, 0x02]);
        // Negative int64 values take ten bytes, the last one 0x01.
        assert_eq!(m.0.len(), 3 + 10);
        assert_eq!(m.0[12], 0x01);
    }

    #[test]
    fn a_tensor_carries_dims_type_name_and_raw_little_endian_data() {
        let t = tensor("w", &[2], &[1.0, -2.0]);
        let mut want = vec![0x08, 2, 0x10, 1, 0x42, 1, b'w', 0x4A, 8];
        want.extend_from_slice(&1.0f32.to_le_bytes());
        want.extend_from_slice(&(-2.0f32).to_le_bytes());
        assert_eq!(t.0, want);
    }
}
