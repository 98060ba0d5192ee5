//! What `vmunet info` shows: an ONNX file's input, metadata and history, and this build and
//! machine.

use crate::ModelFile;

impl ModelFile {
    /// The metadata entries as the file stores them (the contract crate's one writer names the
    /// keys).
    fn props(&self) -> Vec<(String, String)> {
        self.metadata
            .to_props()
            .into_iter()
            .map(|e| (e.key().to_string(), e.value().to_string()))
            .collect()
    }

    fn bytes(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// The file's input, size, metadata and compression history, one item a line.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "model:        {} ({:.2} MB)\ninput:        {}\n",
            self.path.display(),
            self.bytes() as f64 / 1e6,
            self.input
        );
        if let Some(p) = self.metadata.precision {
            s += &format!("precision:    {p}\n");
        }
        for (k, v) in self
            .props()
            .iter()
            .filter(|(k, _)| k != vmunet_onnx_ir::keys::COMPRESSION)
        {
            s += &format!("{k:<26}{v}\n");
        }
        if !self.metadata.compression.is_empty() {
            s += "history:\n";
        }
        for (i, step) in self.metadata.compression.iter().enumerate() {
            let tool = step.tool.as_deref().map(|t| format!(" ({t})"));
            s += &format!("  {}. {}{}\n", i + 1, step.kind, tool.unwrap_or_default());
            for (k, v) in &step.params {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Array(a) if a.len() > 6 => format!("{} entries", a.len()),
                    other => other.to_string(),
                };
                s += &format!("       {k:<18}{text}\n");
            }
        }
        s
    }

    /// [`ModelFile::summary`] as JSON.
    pub fn summary_json(&self) -> serde_json::Value {
        let metadata: serde_json::Map<String, serde_json::Value> = self
            .props()
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        serde_json::json!({
            "model": self.path.display().to_string(),
            "bytes": self.bytes(),
            "input": self.input.to_string(),
            "metadata": metadata,
        })
    }
}

impl ModelFile {
    /// The typed metadata as JSON values, for front ends that hand it on (the Python package's
    /// `Session` properties): input and output, input size, class names, activation,
    /// preprocessing, precision, scan form, provenance and the compression history.
    pub fn metadata_json(&self) -> serde_json::Value {
        use vmunet_onnx_ir::InputSize;
        let m = &self.metadata;
        let dims = |input: &crate::ModelInput| -> Vec<serde_json::Value> {
            input
                .dims
                .iter()
                .map(|d| match d {
                    crate::ModelDim::Fixed(v) => serde_json::Value::from(*v),
                    crate::ModelDim::Free(s) => serde_json::Value::from(s.clone()),
                })
                .collect()
        };
        let (input_size, max_size) = match m.input_size {
            Some(InputSize::Fixed { height, width }) => (serde_json::json!([height, width]), None),
            Some(InputSize::Dynamic { max_size }) => (serde_json::Value::Null, max_size),
            None => (serde_json::Value::Null, None),
        };
        serde_json::json!({
            "path": self.path.display().to_string(),
            "input": {
                "name": self.input.name,
                "shape": dims(&self.input),
                "dtype": elem_name(self.input.elem),
            },
            "output": {
                "name": self.output.name,
                "shape": dims(&self.output),
                "dtype": elem_name(self.output_elem),
            },
            "input_size": input_size,
            "max_size": max_size,
            "classes": m.class_names,
            "activation": m.output_activation.map(|a| a.to_string()),
            "preprocessing": m.preprocessing.map(|p| p.to_string()),
            "precision": m.precision.map(|p| p.to_string()),
            "scan": m.scan.map(|s| s.to_string()),
            "chunk": m.chunk,
            "toolkit_version": m.toolkit_version,
            "source": m.source,
            "source_sha256": m.source_sha256,
            "config": m.config.as_deref().and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok()),
            "history": m.compression,
            "extra": m.extra.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.clone()))).collect::<serde_json::Map<String, serde_json::Value>>(),
        })
    }
}

/// numpy's name for an ONNX element type (`float32`, `float16`; others by ONNX's name).
fn elem_name(t: vmunet_onnx_ir::DataType) -> String {
    match t {
        vmunet_onnx_ir::DataType::Float => "float32".into(),
        vmunet_onnx_ir::DataType::Float16 => "float16".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// This build and machine: what a deployer checks first on a new device.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SystemInfo {
    /// vmunet version.
    pub version: String,
    /// `arch-os`.
    pub target: String,
    /// The scan kernels' instruction set on this CPU.
    pub scan_kernels: String,
    /// Cargo features the binary was built with.
    pub features: Vec<String>,
    /// CPU threads available.
    pub cpu_threads: usize,
}

impl SystemInfo {
    /// This machine, for a binary of `version` built with `features`.
    pub fn this(version: &str, features: &[&str]) -> Self {
        Self {
            version: version.into(),
            target: format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
            scan_kernels: crate::scan_kernels().into(),
            features: features.iter().map(|f| f.to_string()).collect(),
            cpu_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// One item a line.
    pub fn summary(&self) -> String {
        format!(
            "vmunet {}\ntarget:       {}\nscan kernels: {}\nfeatures:     {}\ncpu threads:  {}\n",
            self.version,
            self.target,
            self.scan_kernels,
            self.features.join(", "),
            self.cpu_threads
        )
    }
}
