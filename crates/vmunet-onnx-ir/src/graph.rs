//! An editable ONNX graph: building helpers for the exporter, lookups, edits and a
//! topological check.

use std::collections::{HashMap, HashSet};

use crate::pb::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::dimension,
    tensor_shape_proto::Dimension, type_proto, AttributeProto, GraphProto, NodeProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use crate::tensor::{tensor, tensor_data, Element, TensorError};

/// Errors of graph lookups, edits and checks; each names the node or value at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// No node has this name.
    #[error("no node named `{0}`")]
    NoNode(String),
    /// No initializer has this name.
    #[error("no initializer named `{0}`")]
    NoInitializer(String),
    /// Nothing produces or consumes this value.
    #[error("no value named `{0}` in the graph")]
    NoValue(String),
    /// The node has no such attribute, or it does not hold a graph.
    #[error("node `{node}` has no graph attribute `{attribute}`")]
    NoSubgraph {
        /// Node name.
        node: String,
        /// Attribute name.
        attribute: String,
    },
    /// A name is already taken.
    #[error("the name `{0}` is already used in the graph")]
    Duplicate(String),
    /// A node reads a value nobody defines.
    #[error("node `{node}` reads `{input}`, which is neither a graph input, an initializer nor a node output")]
    UndefinedInput {
        /// Node name (or op type and index when unnamed).
        node: String,
        /// The undefined value.
        input: String,
    },
    /// A node reads a value produced only by a later node.
    #[error(
        "node `{node}` reads `{input}` before it is produced (nodes are not in topological order)"
    )]
    NotSorted {
        /// Node name.
        node: String,
        /// The value.
        input: String,
    },
    /// The nodes form a cycle.
    #[error("the graph has a cycle through nodes {0:?}")]
    Cycle(Vec<String>),
    /// A value is produced twice.
    #[error("value `{0}` is produced more than once")]
    ProducedTwice(String),
    /// A graph output is never produced.
    #[error("graph output `{0}` is not produced by any node, input or initializer")]
    DanglingOutput(String),
    /// In a subgraph (`node`.`attribute`).
    #[error("in subgraph `{node}`.{attribute}: {source}")]
    InSubgraph {
        /// Node owning the subgraph.
        node: String,
        /// Attribute holding it.
        attribute: String,
        /// The error inside.
        source: Box<GraphError>,
    },
    /// A typed tensor could not be read or built.
    #[error(transparent)]
    Tensor(#[from] TensorError),
}

/// An attribute value for the building helpers.
#[derive(Debug, Clone, PartialEq)]
pub enum Attr {
    /// `INT`.
    Int(i64),
    /// `INTS`.
    Ints(Vec<i64>),
    /// `FLOAT`.
    Float(f32),
    /// `FLOATS`.
    Floats(Vec<f32>),
    /// `STRING`.
    String(String),
    /// `TENSOR`.
    Tensor(TensorProto),
    /// `GRAPH` (e.g. a `Scan` body).
    Graph(GraphProto),
}

impl Attr {
    /// The attribute proto `name` = `self`.
    pub fn into_proto(self, name: &str) -> AttributeProto {
        let mut a = AttributeProto {
            name: Some(name.to_string()),
            ..Default::default()
        };
        let ty = match self {
            Attr::Int(i) => {
                a.i = Some(i);
                AttributeType::Int
            }
            Attr::Ints(v) => {
                a.ints = v;
                AttributeType::Ints
            }
            Attr::Float(f) => {
                a.f = Some(f);
                AttributeType::Float
            }
            Attr::Floats(v) => {
                a.floats = v;
                AttributeType::Floats
            }
            Attr::String(s) => {
                a.s = Some(s.into_bytes());
                AttributeType::String
            }
            Attr::Tensor(t) => {
                a.t = Some(t);
                AttributeType::Tensor
            }
            Attr::Graph(g) => {
                a.g = Some(g);
                AttributeType::Graph
            }
        };
        a.r#type = Some(ty as i32);
        a
    }
}

/// A dimension of a [`value_info`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A named symbol (`batch`, `height`, ...).
    Named(String),
    /// Left open (Scan bodies: the batch comes from the outer graph).
    Any,
}

impl From<&str> for Dim {
    fn from(s: &str) -> Self {
        Dim::Named(s.to_string())
    }
}

/// A tensor value description of element type `elem` (a [`DataType`]).
pub fn value_info(name: &str, elem: DataType, dims: &[Dim]) -> ValueInfoProto {
    ValueInfoProto {
        name: Some(name.to_string()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem as i32),
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            value: match d {
                                Dim::Fixed(v) => Some(dimension::Value::DimValue(*v as i64)),
                                Dim::Named(s) => Some(dimension::Value::DimParam(s.clone())),
                                Dim::Any => None,
                            },
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The zero point (and so the quantized type) of a QuantizeLinear/DequantizeLinear pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroPoint {
    /// Signed 8-bit.
    I8(i8),
    /// Unsigned 8-bit.
    U8(u8),
}

/// An editable ONNX graph (the main graph or a subgraph such as a `Scan` body).
///
/// The building helpers ([`Graph::op`], [`Graph::constant`], ...) append in order, so a graph
/// built front to back is topologically sorted; the edit helpers keep it so.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    proto: GraphProto,
    counter: usize,
    consts: HashMap<(i32, Vec<usize>, Vec<u8>), String>,
    /// Every name in use (nodes, values, initializers); `None` once stale.
    names: Option<HashSet<String>>,
}

impl PartialEq for Graph {
    fn eq(&self, other: &Self) -> bool {
        self.proto == other.proto
    }
}

fn node_label(n: &NodeProto, i: usize) -> String {
    if n.name().is_empty() {
        format!("#{i} ({})", n.op_type())
    } else {
        n.name().to_string()
    }
}

/// `*` matches any run of characters, `?` any one character.
fn glob(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|k| glob(rest, &text[k..])),
        Some(('?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

impl Graph {
    /// An empty graph called `name`.
    pub fn new(name: &str) -> Self {
        Self::from_proto(GraphProto {
            name: Some(name.to_string()),
            ..Default::default()
        })
    }

    /// Wraps a decoded graph for editing.
    pub fn from_proto(proto: GraphProto) -> Self {
        Self {
            proto,
            ..Default::default()
        }
    }

    /// The graph proto.
    pub fn proto(&self) -> &GraphProto {
        &self.proto
    }

    /// The graph proto, for edits the helpers do not cover.
    pub fn proto_mut(&mut self) -> &mut GraphProto {
        self.names = None;
        self.consts.clear();
        &mut self.proto
    }

    /// The finished graph proto.
    pub fn into_proto(self) -> GraphProto {
        self.proto
    }

    /// The graph's name.
    pub fn name(&self) -> &str {
        self.proto.name()
    }

    /// Sets the graph's name.
    pub fn set_name(&mut self, name: &str) {
        self.proto.name = Some(name.to_string());
    }

    /// The nodes in order.
    pub fn nodes(&self) -> &[NodeProto] {
        &self.proto.node
    }

    /// The initializers.
    pub fn initializers(&self) -> &[TensorProto] {
        &self.proto.initializer
    }

    /// The declared inputs.
    pub fn inputs(&self) -> &[ValueInfoProto] {
        &self.proto.input
    }

    /// The declared outputs.
    pub fn outputs(&self) -> &[ValueInfoProto] {
        &self.proto.output
    }

    /// Declares a graph input.
    pub fn add_input(&mut self, vi: ValueInfoProto) {
        self.note_name(vi.name());
        self.proto.input.push(vi);
    }

    /// Declares a graph output.
    pub fn add_output(&mut self, vi: ValueInfoProto) {
        self.note_name(vi.name());
        self.proto.output.push(vi);
    }

    fn names(&mut self) -> &mut HashSet<String> {
        let proto = &self.proto;
        self.names.get_or_insert_with(|| {
            let mut s = HashSet::new();
            for n in &proto.node {
                s.insert(n.name().to_string());
                s.extend(n.input.iter().cloned());
                s.extend(n.output.iter().cloned());
            }
            s.extend(proto.initializer.iter().map(|t| t.name().to_string()));
            s.extend(proto.input.iter().map(|v| v.name().to_string()));
            s.extend(proto.output.iter().map(|v| v.name().to_string()));
            s
        })
    }

    fn note_name(&mut self, name: &str) {
        if let Some(s) = &mut self.names {
            s.insert(name.to_string());
        }
    }

    fn note_node(&mut self, n: &NodeProto) {
        if let Some(s) = &mut self.names {
            s.insert(n.name().to_string());
            s.extend(n.input.iter().cloned());
            s.extend(n.output.iter().cloned());
        }
    }

    /// Whether `name` is used by a node, value or initializer.
    pub fn is_used(&mut self, name: &str) -> bool {
        self.names().contains(name)
    }

    /// A fresh name `hint#N`, unused in the graph (and reserved).
    pub fn fresh(&mut self, hint: &str) -> String {
        loop {
            self.counter += 1;
            let name = format!("{hint}#{}", self.counter);
            if self.names().insert(name.clone()) {
                return name;
            }
        }
    }

    // ----- building -----

    /// Adds a typed initializer under `name` (used as given, e.g. checkpoint keys).
    pub fn add_initializer<T: Element>(
        &mut self,
        name: &str,
        dims: &[usize],
        data: &[T],
    ) -> Result<String, GraphError> {
        let t = tensor(name, dims, data)?;
        self.note_name(name);
        self.proto.initializer.push(t);
        Ok(name.to_string())
    }

    /// A constant initializer, deduplicated by type, shape and value; named `const_<type>#N`.
    pub fn constant<T: Element>(
        &mut self,
        dims: &[usize],
        data: &[T],
    ) -> Result<String, GraphError> {
        let mut bytes = Vec::with_capacity(data.len() * T::SIZE);
        for &v in data {
            v.put(&mut bytes);
        }
        let key = (T::DATA_TYPE as i32, dims.to_vec(), bytes);
        if let Some(n) = self.consts.get(&key) {
            return Ok(n.clone());
        }
        let name = self.fresh(&format!("const_{}", T::NAME));
        self.add_initializer(&name, dims, data)?;
        self.consts.insert(key, name.clone());
        Ok(name)
    }

    /// A 1-D int64 constant (shapes, axes), deduplicated.
    pub fn ints1(&mut self, data: &[i64]) -> String {
        // The length matches by construction.
        self.constant(&[data.len()], data)
            .unwrap_or_else(|_| unreachable!("1-D constant"))
    }

    /// Adds a node `op` with `n_out` fresh outputs named after `hint`; returns the outputs.
    pub fn node(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
        hint: &str,
        n_out: usize,
    ) -> Vec<String> {
        let outputs: Vec<String> = (0..n_out).map(|_| self.fresh(hint)).collect();
        let name = self.fresh(&format!("{hint}/{op}"));
        let n = NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: outputs.clone(),
            name: Some(name),
            op_type: Some(op.to_string()),
            attribute: attrs.into_iter().map(|(k, v)| v.into_proto(k)).collect(),
            ..Default::default()
        };
        self.note_node(&n);
        self.proto.node.push(n);
        outputs
    }

    /// Adds a single-output node; returns its output.
    pub fn op(
        &mut self,
        op: &str,
        inputs: &[&str],
        attrs: Vec<(&str, Attr)>,
        hint: &str,
    ) -> String {
        self.node(op, inputs, attrs, hint, 1).remove(0)
    }

    /// Adds a single-output, attribute-free node of operator domain `domain` (custom ops).
    pub fn op_in_domain(&mut self, domain: &str, op: &str, inputs: &[&str], hint: &str) -> String {
        let out = self.op(op, inputs, vec![], hint);
        if let Some(n) = self.proto.node.last_mut() {
            n.domain = Some(domain.to_string());
        }
        out
    }

    /// Adds an attribute-free node whose single output gets the fixed name `output`
    /// (graph outputs such as `logits`).
    pub fn op_into(&mut self, op: &str, inputs: &[&str], output: &str) {
        let name = self.fresh(&format!("{output}/{op}"));
        let n = NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name: Some(name),
            op_type: Some(op.to_string()),
            ..Default::default()
        };
        self.note_node(&n);
        self.proto.node.push(n);
    }

    // ----- lookups -----

    /// The node called `name`.
    pub fn find_node(&self, name: &str) -> Option<&NodeProto> {
        self.proto.node.iter().find(|n| n.name() == name)
    }

    fn index_of(&self, name: &str) -> Result<usize, GraphError> {
        self.proto
            .node
            .iter()
            .position(|n| n.name() == name)
            .ok_or_else(|| GraphError::NoNode(name.to_string()))
    }

    /// The nodes of operator type `op` (any domain), in order.
    pub fn nodes_by_op<'a>(&'a self, op: &'a str) -> impl Iterator<Item = &'a NodeProto> + 'a {
        self.proto.node.iter().filter(move |n| n.op_type() == op)
    }

    /// The nodes whose name matches the glob `pattern` (`*` any run, `?` one character).
    pub fn nodes_matching<'a>(&'a self, pattern: &str) -> impl Iterator<Item = &'a NodeProto> + 'a {
        let p: Vec<char> = pattern.chars().collect();
        self.proto.node.iter().filter(move |n| {
            let t: Vec<char> = n.name().chars().collect();
            glob(&p, &t)
        })
    }

    /// The node producing `value` (none for graph inputs and initializers).
    pub fn producer(&self, value: &str) -> Option<&NodeProto> {
        self.proto
            .node
            .iter()
            .find(|n| n.output.iter().any(|o| o == value))
    }

    /// The nodes reading `value`, in order.
    pub fn consumers<'a>(&'a self, value: &'a str) -> impl Iterator<Item = &'a NodeProto> + 'a {
        self.proto
            .node
            .iter()
            .filter(move |n| n.input.iter().any(|i| i == value))
    }

    /// The initializer called `name`.
    pub fn initializer_proto(&self, name: &str) -> Option<&TensorProto> {
        self.proto.initializer.iter().find(|t| t.name() == name)
    }

    /// Reads the initializer `name` as `T`: its dimensions and elements.
    pub fn initializer<T: Element>(&self, name: &str) -> Result<(Vec<usize>, Vec<T>), GraphError> {
        let t = self
            .initializer_proto(name)
            .ok_or_else(|| GraphError::NoInitializer(name.to_string()))?;
        Ok(tensor_data(t)?)
    }

    /// Replaces the contents (type, shape, data) of the existing initializer `name`.
    pub fn set_initializer<T: Element>(
        &mut self,
        name: &str,
        dims: &[usize],
        data: &[T],
    ) -> Result<(), GraphError> {
        let t = tensor(name, dims, data)?;
        let slot = self
            .proto
            .initializer
            .iter_mut()
            .find(|t| t.name() == name)
            .ok_or_else(|| GraphError::NoInitializer(name.to_string()))?;
        *slot = t;
        self.consts.clear();
        Ok(())
    }

    // ----- edits -----

    /// Inserts `node` at position `index` (clamped to the end); its name and outputs must be new.
    pub fn insert_node(&mut self, index: usize, node: NodeProto) -> Result<(), GraphError> {
        if !node.name().is_empty() && self.find_node(node.name()).is_some() {
            return Err(GraphError::Duplicate(node.name().to_string()));
        }
        for o in node.output.iter().filter(|o| !o.is_empty()) {
            let taken = self.producer(o).is_some()
                || self.proto.input.iter().any(|v| v.name() == o)
                || self.initializer_proto(o).is_some();
            if taken {
                return Err(GraphError::Duplicate(o.clone()));
            }
        }
        self.note_node(&node);
        let index = index.min(self.proto.node.len());
        self.proto.node.insert(index, node);
        Ok(())
    }

    /// Replaces the node called `name` by `node` in place; returns the old node.
    pub fn replace_node(&mut self, name: &str, node: NodeProto) -> Result<NodeProto, GraphError> {
        let i = self.index_of(name)?;
        self.note_node(&node);
        Ok(std::mem::replace(&mut self.proto.node[i], node))
    }

    /// Removes the node called `name`; returns it. Readers of its outputs are left as they
    /// are: rewire them first ([`Graph::replace_uses`]) or [`Graph::check`] reports them.
    pub fn remove_node(&mut self, name: &str) -> Result<NodeProto, GraphError> {
        let i = self.index_of(name)?;
        Ok(self.proto.node.remove(i))
    }

    /// Makes every node reading `old` (or only the node `only`) read `new`; returns how many
    /// inputs changed. Graph outputs are not renamed.
    pub fn replace_uses(&mut self, old: &str, new: &str, only: Option<&str>) -> usize {
        let mut count = 0;
        for n in &mut self.proto.node {
            if only.is_some_and(|o| o != n.name()) {
                continue;
            }
            for i in &mut n.input {
                if i == old {
                    *i = new.to_string();
                    count += 1;
                }
            }
        }
        self.note_name(new);
        count
    }

    /// Where a node reading `value` (the first reader of all, or `only`) sits.
    fn edge_position(&self, value: &str, only: Option<&str>) -> Result<usize, GraphError> {
        match only {
            Some(o) => self.index_of(o),
            None => self
                .proto
                .node
                .iter()
                .position(|n| n.input.iter().any(|i| i == value))
                .ok_or_else(|| GraphError::NoValue(value.to_string())),
        }
    }

    /// Inserts `Cast(to)` on the edge `value` -> its readers (all, or only the node `only`);
    /// returns the cast value's name.
    pub fn insert_cast(
        &mut self,
        value: &str,
        to: DataType,
        only: Option<&str>,
    ) -> Result<String, GraphError> {
        let at = self.edge_position(value, only)?;
        let out = self.fresh(&format!("{value}/cast"));
        let name = self.fresh(&format!("{value}/Cast"));
        self.replace_uses(value, &out, only);
        let node = NodeProto {
            input: vec![value.to_string()],
            output: vec![out.clone()],
            name: Some(name),
            op_type: Some("Cast".into()),
            attribute: vec![Attr::Int(to as i64).into_proto("to")],
            ..Default::default()
        };
        self.proto.node.insert(at, node);
        Ok(out)
    }

    /// Inserts `QuantizeLinear` then `DequantizeLinear` (per-tensor `scale` and `zero_point`,
    /// stored as initializers) on the edge `value` -> its readers (all, or only `only`);
    /// returns the dequantized value's name.
    pub fn insert_qdq(
        &mut self,
        value: &str,
        scale: f32,
        zero_point: ZeroPoint,
        only: Option<&str>,
    ) -> Result<String, GraphError> {
        let at = self.edge_position(value, only)?;
        let s = self.fresh(&format!("{value}/scale"));
        self.add_initializer(&s, &[], &[scale])?;
        let z = self.fresh(&format!("{value}/zero_point"));
        match zero_point {
            ZeroPoint::I8(v) => self.add_initializer(&z, &[], &[v])?,
            ZeroPoint::U8(v) => self.add_initializer(&z, &[], &[v])?,
        };
        let q = self.fresh(&format!("{value}/q"));
        let dq = self.fresh(&format!("{value}/dq"));
        let qn = self.fresh(&format!("{value}/QuantizeLinear"));
        let dqn = self.fresh(&format!("{value}/DequantizeLinear"));
        self.replace_uses(value, &dq, only);
        let mk = |name: String, op: &str, input: Vec<String>, out: &str| NodeProto {
            input,
            output: vec![out.to_string()],
            name: Some(name),
            op_type: Some(op.to_string()),
            ..Default::default()
        };
        let dqnode = mk(
            dqn,
            "DequantizeLinear",
            vec![q.clone(), s.clone(), z.clone()],
            &dq,
        );
        let qnode = mk(qn, "QuantizeLinear", vec![value.to_string(), s, z], &q);
        self.proto.node.insert(at, dqnode);
        self.proto.node.insert(at, qnode);
        Ok(dq)
    }

    // ----- subgraphs -----

    fn subgraph_attr(
        &mut self,
        node: &str,
        attribute: &str,
    ) -> Result<&mut AttributeProto, GraphError> {
        let missing = || GraphError::NoSubgraph {
            node: node.to_string(),
            attribute: attribute.to_string(),
        };
        let i = self.index_of(node)?;
        self.proto.node[i]
            .attribute
            .iter_mut()
            .find(|a| a.name() == attribute && a.g.is_some())
            .ok_or_else(missing)
    }

    /// A copy of the graph held by attribute `attribute` of node `node` (e.g. a Scan `body`).
    pub fn subgraph(&self, node: &str, attribute: &str) -> Result<Graph, GraphError> {
        let i = self.index_of(node)?;
        self.proto.node[i]
            .attribute
            .iter()
            .find_map(|a| (a.name() == attribute).then(|| a.g.clone()).flatten())
            .map(Graph::from_proto)
            .ok_or_else(|| GraphError::NoSubgraph {
                node: node.to_string(),
                attribute: attribute.to_string(),
            })
    }

    /// Edits the graph held by attribute `attribute` of node `node` in place through `f`.
    pub fn edit_subgraph<R>(
        &mut self,
        node: &str,
        attribute: &str,
        f: impl FnOnce(&mut Graph) -> R,
    ) -> Result<R, GraphError> {
        let a = self.subgraph_attr(node, attribute)?;
        let mut g = Graph::from_proto(a.g.take().unwrap_or_default());
        let r = f(&mut g);
        a.g = Some(g.into_proto());
        Ok(r)
    }

    // ----- checks -----

    /// Checks that every node input is defined before use (graph inputs, initializers, sparse
    /// initializers, earlier node outputs; for subgraphs also the enclosing scope), that there is no cycle, that no
    /// value is produced twice and that every graph output is produced; subgraphs included.
    pub fn check(&self) -> Result<(), GraphError> {
        self.check_in(&HashSet::new())
    }

    fn check_in(&self, outer: &HashSet<String>) -> Result<(), GraphError> {
        let g = &self.proto;
        let mut defined: HashSet<String> = outer.clone();
        defined.insert(String::new()); // an omitted optional input
        defined.extend(g.input.iter().map(|v| v.name().to_string()));
        defined.extend(g.initializer.iter().map(|t| t.name().to_string()));
        defined.extend(
            g.sparse_initializer
                .iter()
                .filter_map(|s| s.values.as_ref())
                .map(|v| v.name().to_string()),
        );
        let mut producer: HashMap<&str, usize> = HashMap::new();
        for (i, n) in g.node.iter().enumerate() {
            for o in n.output.iter().filter(|o| !o.is_empty()) {
                if producer.insert(o, i).is_some() || defined.contains(o) {
                    return Err(GraphError::ProducedTwice(o.clone()));
                }
            }
        }
        for (i, n) in g.node.iter().enumerate() {
            for inp in &n.input {
                if !defined.contains(inp) && !producer.contains_key(inp.as_str()) {
                    return Err(GraphError::UndefinedInput {
                        node: node_label(n, i),
                        input: inp.clone(),
                    });
                }
            }
        }
        self.check_acyclic(&producer)?;
        for (i, n) in g.node.iter().enumerate() {
            for inp in &n.input {
                if !defined.contains(inp) {
                    return Err(GraphError::NotSorted {
                        node: node_label(n, i),
                        input: inp.clone(),
                    });
                }
            }
            for a in &n.attribute {
                let subs = a.g.iter().chain(a.graphs.iter());
                for sub in subs {
                    Graph::from_proto(sub.clone())
                        .check_in(&defined)
                        .map_err(|e| GraphError::InSubgraph {
                            node: node_label(n, i),
                            attribute: a.name().to_string(),
                            source: Box::new(e),
                        })?;
                }
            }
            defined.extend(n.output.iter().cloned());
        }
        for o in &g.output {
            if !defined.contains(o.name()) {
                return Err(GraphError::DanglingOutput(o.name().to_string()));
            }
        }
        Ok(())
    }

    /// Kahn's algorithm over node -> node edges.
    fn check_acyclic(&self, producer: &HashMap<&str, usize>) -> Result<(), GraphError> {
        let nodes = &self.proto.node;
        let mut indeg = vec![0usize; nodes.len()];
        let mut next: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        for (i, n) in nodes.iter().enumerate() {
            for inp in &n.input {
                if let Some(&p) = producer.get(inp.as_str()) {
                    indeg[i] += 1;
                    next[p].push(i);
                }
            }
        }
        let mut ready: Vec<usize> = (0..nodes.len()).filter(|&i| indeg[i] == 0).collect();
        let mut seen = 0;
        while let Some(i) = ready.pop() {
            seen += 1;
            for &j in &next[i] {
                indeg[j] -= 1;
                if indeg[j] == 0 {
                    ready.push(j);
                }
            }
        }
        if seen == nodes.len() {
            return Ok(());
        }
        Err(GraphError::Cycle(
            (0..nodes.len())
                .filter(|&i| indeg[i] > 0)
                .map(|i| node_label(&nodes[i], i))
                .collect(),
        ))
    }
}
