//! Writing a trained head as an ONNX model, with a hand-written protobuf encoder.
//!
//! A head is a handful of standard operators (Clip, Log, Sub, Div, MatMul, Add, Relu,
//! Softmax) on a `[1, inputs]` tensor, so hark encodes the few ONNX messages it needs itself
//! (ModelProto, GraphProto, NodeProto, TensorProto, ValueInfoProto; field numbers from
//! `onnx/onnx.proto`) instead of depending on a protobuf toolchain. The graph uses opset 13
//! and IR version 8, which every ONNX Runtime hark supports can load. It also reads a base
//! model's graph far enough to add its embedding as an output ([`expose_embedding`]). This
//! module only turns a [`TrainedHead`] into bytes and bytes into bytes; it does no file I/O
//! and knows nothing of datasets.

use super::fit::{TrainedHead, Transform};

/// The head's input tensor name, `[1, inputs]`: what the base model outputs per window (an
/// internal layer, or its scores).
pub const INPUT_NAME: &str = "embedding";
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

/// One dimension of a declared tensor shape.
enum Dim<'a> {
    Fixed(usize),
    /// A named, free dimension (e.g. the batch).
    Param(&'a str),
}

/// A ValueInfoProto for a float32 tensor of fixed shape.
fn value_info(name: &str, dims: &[usize]) -> Msg {
    let dims: Vec<Dim> = dims.iter().map(|&d| Dim::Fixed(d)).collect();
    value_info_dims(name, &dims)
}

fn value_info_dims(name: &str, dims: &[Dim]) -> Msg {
    let mut shape = Msg::default();
    for d in dims {
        let mut dim = Msg::default();
        match d {
            Dim::Fixed(v) => dim.int(1, *v as u64),
            Dim::Param(p) => dim.str(2, p),
        };
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
pub fn encode_head(head: &TrainedHead, doc: &str) -> Vec<u8> {
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

/// Why a base model's graph could not be given an embedding output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OnnxError {
    #[error("truncated varint")]
    TruncatedVarint,
    #[error("varint longer than 64 bits")]
    LongVarint,
    #[error("truncated field")]
    TruncatedField,
    #[error("unsupported wire type {0}")]
    WireType(u64),
    #[error("the file has no graph")]
    NoGraph,
    #[error("the graph has no outputs")]
    NoOutputs,
    #[error("output {output:?} is not a dense layer on an embedding ({what}); train on the model's scores instead")]
    NotDense { output: String, what: String },
}

/// One field of a protobuf message being read.
struct Field<'a> {
    number: u32,
    /// The value of a varint field.
    int: u64,
    /// The payload of a length-delimited field.
    bytes: &'a [u8],
    /// The whole field as encoded, key included, to copy it unchanged.
    raw: &'a [u8],
}

fn read_varint(b: &[u8], i: &mut usize) -> Result<u64, OnnxError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i).ok_or(OnnxError::TruncatedVarint)?;
        *i += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte < 0x80 {
            return Ok(v);
        }
    }
    Err(OnnxError::LongVarint)
}

/// Split an encoded message into its fields.
fn fields(b: &[u8]) -> Result<Vec<Field<'_>>, OnnxError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let start = i;
        let key = read_varint(b, &mut i)?;
        let (number, wire) = ((key >> 3) as u32, key & 7);
        let (mut int, mut bytes) = (0, &b[0..0]);
        match wire {
            0 => int = read_varint(b, &mut i)?,
            1 => i += 8,
            2 => {
                let n = read_varint(b, &mut i)? as usize;
                bytes = b.get(i..i + n).ok_or(OnnxError::TruncatedField)?;
                i += n;
            }
            5 => i += 4,
            w => return Err(OnnxError::WireType(w)),
        }
        let raw = b.get(start..i).ok_or(OnnxError::TruncatedField)?;
        out.push(Field {
            number,
            int,
            bytes,
            raw,
        });
    }
    Ok(out)
}

fn utf8(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The payload of the first field `number` of `fields`, as text.
fn text_field(fields: &[Field], number: u32) -> Option<String> {
    fields
        .iter()
        .find(|x| x.number == number)
        .map(|x| utf8(x.bytes))
}

/// What hark reads of a NodeProto.
struct Node {
    op: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    /// Integer attributes by name (Gemm's `transB`).
    ints: Vec<(String, u64)>,
}

impl Node {
    fn parse(b: &[u8]) -> Result<Node, OnnxError> {
        let mut n = Node {
            op: String::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            ints: Vec::new(),
        };
        for g in fields(b)? {
            match g.number {
                1 => n.inputs.push(utf8(g.bytes)),
                2 => n.outputs.push(utf8(g.bytes)),
                4 => n.op = utf8(g.bytes),
                5 => {
                    let a = fields(g.bytes)?;
                    let i = a.iter().find(|x| x.number == 3).map(|x| x.int);
                    if let (Some(name), Some(i)) = (text_field(&a, 1), i) {
                        n.ints.push((name, i));
                    }
                }
                _ => {}
            }
        }
        Ok(n)
    }
}

/// The name and dims of an initializer (a TensorProto).
fn initializer_dims(b: &[u8]) -> Result<Option<(String, Vec<usize>)>, OnnxError> {
    let t = fields(b)?;
    let mut dims = Vec::new();
    for d in t.iter().filter(|x| x.number == 1) {
        if d.bytes.is_empty() {
            dims.push(d.int as usize);
        } else {
            // Packed repeated int64.
            let mut i = 0;
            while i < d.bytes.len() {
                dims.push(read_varint(d.bytes, &mut i)? as usize);
            }
        }
    }
    Ok(text_field(&t, 8).map(|name| (name, dims)))
}

/// What hark reads of a GraphProto: its nodes, the shapes of its initializers and the name
/// of its first output.
struct GraphInfo {
    nodes: Vec<Node>,
    dims_of: Vec<(String, Vec<usize>)>,
    first_output: Option<String>,
}

impl GraphInfo {
    fn parse(graph: &[u8]) -> Result<GraphInfo, OnnxError> {
        let mut info = GraphInfo {
            nodes: Vec::new(),
            dims_of: Vec::new(),
            first_output: None,
        };
        for f in fields(graph)? {
            match f.number {
                12 if info.first_output.is_none() => {
                    info.first_output = text_field(&fields(f.bytes)?, 1);
                }
                1 => info.nodes.push(Node::parse(f.bytes)?),
                5 => info.dims_of.extend(initializer_dims(f.bytes)?),
                _ => {}
            }
        }
        Ok(info)
    }

    /// The node that outputs tensor `t`.
    fn producer(&self, t: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.outputs.iter().any(|o| o == t))
    }

    /// The dims of a weight: an initializer, possibly behind a DequantizeLinear.
    fn weight_dims(&self, t: &str) -> Option<Vec<usize>> {
        let mut t = t.to_string();
        for _ in 0..4 {
            if let Some((_, d)) = self.dims_of.iter().find(|(n, _)| *n == t) {
                return Some(d.clone());
            }
            let p = self.producer(&t)?;
            if p.op != "DequantizeLinear" {
                return None;
            }
            t = p.inputs.first()?.clone();
        }
        None
    }

    /// The input of the dense layer that makes `output` (through an optional `Sigmoid`,
    /// `Softmax` or `Identity`) and its size.
    fn dense_input(&self, output: &str) -> Result<(String, usize), OnnxError> {
        let not_dense = |what: &str| OnnxError::NotDense {
            output: output.to_string(),
            what: what.to_string(),
        };
        let mut node = self
            .producer(output)
            .ok_or_else(|| not_dense("no node makes it"))?;
        if matches!(node.op.as_str(), "Sigmoid" | "Softmax" | "Identity") {
            let input = node.inputs.first().ok_or_else(|| not_dense("no input"))?;
            node = self
                .producer(input)
                .ok_or_else(|| not_dense("no node makes its input"))?;
        }
        let (tensor, dim) = match node.op.as_str() {
            "Gemm" => {
                let trans_b = node.ints.iter().any(|(n, v)| n == "transB" && *v != 0);
                let w = self
                    .weight_dims(&node.inputs[1])
                    .ok_or_else(|| not_dense("Gemm weight not found"))?;
                let dim = if trans_b { w.get(1) } else { w.first() };
                (node.inputs[0].clone(), dim.copied())
            }
            "Add" => {
                let mm = node
                    .inputs
                    .iter()
                    .filter_map(|i| self.producer(i))
                    .find(|n| n.op == "MatMul")
                    .ok_or_else(|| not_dense("Add without MatMul"))?;
                let w = self
                    .weight_dims(&mm.inputs[1])
                    .ok_or_else(|| not_dense("MatMul weight not found"))?;
                (mm.inputs[0].clone(), w.first().copied())
            }
            other => return Err(not_dense(&format!("it is made by {other}"))),
        };
        let dim = dim
            .filter(|&d| d > 0)
            .ok_or_else(|| not_dense("weight shape unknown"))?;
        Ok((tensor, dim))
    }
}

/// A base model with one of its internal tensors added as a graph output.
#[derive(Debug)]
pub struct Exposed {
    /// The whole ONNX model, re-encoded.
    pub bytes: Vec<u8>,
    /// The tensor now exposed as an output.
    pub tensor: String,
    /// Its size per window.
    pub dim: usize,
}

/// Add the input of the model's final dense layer (its embedding, e.g. CED-tiny's 192-value
/// `layer_norm_25`) as a graph output, leaving everything else as it was.
///
/// The output `output` (default: the graph's first) must be a dense layer (`Gemm`, or `MatMul` + `Add`), optionally
/// followed by `Sigmoid`, `Softmax` or `Identity`: then the layer's input is the
/// representation the model's classes are read from. Anything else is an error saying so.
pub fn expose_embedding(model: &[u8], output: Option<&str>) -> Result<Exposed, OnnxError> {
    let top = fields(model)?;
    let graph = top
        .iter()
        .find(|f| f.number == 7)
        .ok_or(OnnxError::NoGraph)?
        .bytes;
    let info = GraphInfo::parse(graph)?;
    let output = match output {
        Some(o) => o.to_string(),
        None => info.first_output.clone().ok_or(OnnxError::NoOutputs)?,
    };
    let (tensor, dim) = info.dense_input(&output)?;
    Ok(Exposed {
        bytes: with_output(&top, graph, &tensor, dim),
        tensor,
        dim,
    })
}

/// The model `top` (its fields) with a `[batch, dim]` float output `tensor` appended to its
/// graph `graph`; every other field is copied as it was.
fn with_output(top: &[Field], graph: &[u8], tensor: &str, dim: usize) -> Vec<u8> {
    let mut new_graph = graph.to_vec();
    let mut extra = Msg::default();
    extra.msg(
        12,
        &value_info_dims(tensor, &[Dim::Param("batch"), Dim::Fixed(dim)]),
    );
    new_graph.extend_from_slice(&extra.0);
    let mut out = Msg::default();
    for f in top {
        if f.number == 7 {
            out.bytes(7, &new_graph);
        } else {
            out.0.extend_from_slice(f.raw);
        }
    }
    out.0
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
    fn the_input_of_a_heads_last_layer_is_found_and_exposed() {
        // A head is itself "a dense layer + softmax": its last layer's input is `dense0`'s
        // ReLU for an MLP, `standardized` for a logistic regression.
        let head = TrainedHead {
            transform: Transform::Identity,
            mean: vec![0.0; 3],
            std: vec![1.0; 3],
            layers: vec![super::super::fit::Layer {
                w: ndarray::Array2::zeros((3, 2)),
                b: ndarray::Array1::zeros(2),
            }],
        };
        let bytes = encode_head(&head, "");
        let e = expose_embedding(&bytes, None).unwrap();
        assert_eq!((e.tensor.as_str(), e.dim), ("standardized", 3));
        assert!(e.bytes.len() > bytes.len());
        // The original fields are still there, and the new output is last.
        let graph = fields(&e.bytes)
            .unwrap()
            .into_iter()
            .find(|f| f.number == 7)
            .unwrap();
        let outs: Vec<String> = fields(graph.bytes)
            .unwrap()
            .iter()
            .filter(|f| f.number == 12)
            .map(|f| utf8(fields(f.bytes).unwrap()[0].bytes))
            .collect();
        assert_eq!(outs, vec![OUTPUT_NAME, "standardized"]);
        let e = expose_embedding(&bytes, Some("centered"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a dense layer"), "{e}");
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
