//! Choosing nodes by name or glob pattern (`--exclude`, `--keep-fp32`).

use std::collections::BTreeSet;

use vmunet_onnx_ir::Graph;

use crate::CompressError;

/// A set of node names chosen by exact names or glob patterns (`*` any run, `?` one
/// character). A pattern that matches nothing is an error, so a typo never passes silently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// The patterns as given.
    pub patterns: Vec<String>,
    /// The node names they matched.
    pub nodes: BTreeSet<String>,
}

impl Selection {
    /// Resolves `patterns` against the nodes of `graph`.
    pub fn resolve(graph: &Graph, patterns: &[String]) -> Result<Self, CompressError> {
        let mut nodes = BTreeSet::new();
        for p in patterns {
            let matched: Vec<String> = if graph.find_node(p).is_some() {
                vec![p.clone()]
            } else {
                graph
                    .nodes_matching(p)
                    .map(|n| n.name().to_string())
                    .collect()
            };
            if matched.is_empty() {
                let example = graph
                    .nodes()
                    .iter()
                    .map(|n| n.name())
                    .find(|n| n.contains('/'))
                    .unwrap_or("")
                    .to_string();
                return Err(CompressError::UnknownPattern {
                    pattern: p.clone(),
                    example,
                });
            }
            nodes.extend(matched);
        }
        Ok(Self {
            patterns: patterns.to_vec(),
            nodes,
        })
    }

    /// Whether `node` is selected.
    pub fn contains(&self, node: &str) -> bool {
        self.nodes.contains(node)
    }
}
