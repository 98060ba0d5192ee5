//! The storage layer: burn-store's PyTorch, safetensors and burnpack stores behind one face,
//! with the official key names (`A_logs`, `Ds`, optional `module.` / `vmunet.` prefixes,
//! wrapper dictionaries of training checkpoints).

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::backend::Backend;
use burn_store::{
    ApplyResult, BurnpackStore, ModuleSnapshot, ModuleStore, PyTorchToBurnAdapter, PytorchStore,
    SafetensorsStore,
};

use super::error::CheckpointError;
use super::format::CheckpointFormat;
use crate::VmUnet;

/// Burn field names that differ from the official keys.
const RENAMES: [(&str, &str); 2] = [("A_logs", "a_logs"), ("Ds", "ds")];

fn load_remaps() -> Vec<(String, String)> {
    let mut v = vec![(r"^(module\.)?(vmunet\.)?".to_string(), String::new())];
    for (official, ours) in RENAMES {
        v.push((format!(r"\.{official}$"), format!(".{ours}")));
    }
    v
}

pub(super) fn save_remaps() -> Vec<(String, String)> {
    RENAMES
        .iter()
        .map(|(official, ours)| (format!(r"\.{ours}$"), format!(".{official}")))
        .collect()
}

/// Official key for a burn parameter path (`.a_logs` -> `.A_logs`, `gamma` -> `weight`).
pub fn official_key(burn_path: &str) -> String {
    let mut k = burn_path.to_string();
    for (official, ours) in RENAMES {
        if let Some(stem) = k.strip_suffix(&format!(".{ours}")) {
            k = format!("{stem}.{official}");
        }
    }
    if let Some(stem) = k.strip_suffix(".gamma") {
        k = format!("{stem}.weight");
    } else if let Some(stem) = k.strip_suffix(".beta") {
        k = format!("{stem}.bias");
    }
    k
}

/// Shapes of every tensor in the file (official keys without prefix, PyTorch layout).
pub(super) fn read_shapes(
    path: &Path,
    format: CheckpointFormat,
) -> Result<BTreeMap<String, Vec<usize>>, CheckpointError> {
    let mut store = open_store(path, format)?;
    let snaps = store.snapshots(path)?;
    Ok(snaps
        .into_iter()
        .map(|(k, s)| (official_key(&k), s))
        .collect())
}

/// The three stores behind one face.
pub(super) enum Store {
    Pytorch(Box<PytorchStore>),
    Safetensors(Box<SafetensorsStore>),
    Burnpack(Box<BurnpackStore>),
}

fn store_err(path: &Path, format: CheckpointFormat, message: String) -> CheckpointError {
    let p = path.to_path_buf();
    let lower = message.to_lowercase();
    if format == CheckpointFormat::Pytorch
        && (lower.contains("zip") || lower.contains("central directory") || lower.contains("eof"))
    {
        return CheckpointError::Truncated {
            path: p,
            detail: message,
        };
    }
    if lower.contains("eof") || lower.contains("truncat") || lower.contains("out of bounds") {
        return CheckpointError::Truncated {
            path: p,
            detail: message,
        };
    }
    if lower.contains("pickle") || lower.contains("invalid") || lower.contains("dictionary") {
        return CheckpointError::NotACheckpoint {
            path: p,
            detail: message,
        };
    }
    CheckpointError::Store { path: p, message }
}

/// Top-level dictionaries that wrap a state dict in training checkpoints.
const WRAPPERS: [&str; 3] = ["model_state_dict", "state_dict", "model"];

/// Opens the store for `path` with the official key remaps.
pub(super) fn open_store(path: &Path, format: CheckpointFormat) -> Result<Store, CheckpointError> {
    open_store_with(path, format, &[])
}

/// [`open_store`] with `extra` key remaps (regex, replacement) after the official ones.
pub(super) fn open_store_with(
    path: &Path,
    format: CheckpointFormat,
    extra: &[(String, String)],
) -> Result<Store, CheckpointError> {
    let remaps: Vec<(String, String)> = load_remaps()
        .into_iter()
        .chain(extra.iter().cloned())
        .collect();
    Ok(match format {
        CheckpointFormat::Pytorch => Store::Pytorch(Box::new(pytorch_store(path, &remaps)?)),
        CheckpointFormat::Safetensors => {
            let mut s = SafetensorsStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter)
                .map_indices_contiguous(false)
                .allow_partial(true)
                .validate(false);
            for (from, to) in &remaps {
                s = s.with_key_remapping(from, to);
            }
            Store::Safetensors(Box::new(s))
        }
        CheckpointFormat::Burnpack => {
            let mut s = BurnpackStore::from_file(path)
                .with_from_adapter(PyTorchToBurnAdapter)
                .allow_partial(true)
                .validate(false);
            for (from, to) in &remaps {
                s = s.with_remap_pattern(from.as_str(), to.as_str());
            }
            Store::Burnpack(Box::new(s))
        }
    })
}

/// A PyTorch store that looks inside the wrapper dictionary, if the file has one.
fn pytorch_store(
    path: &Path,
    remaps: &[(String, String)],
) -> Result<PytorchStore, CheckpointError> {
    // Find a wrapper dictionary, if any, from the flattened keys.
    let mut probe = PytorchStore::from_file(path).map_indices_contiguous(false);
    let keys = probe
        .keys()
        .map_err(|e| store_err(path, CheckpointFormat::Pytorch, e.to_string()))?;
    let wrapper = WRAPPERS
        .iter()
        .find(|w| keys.iter().any(|k| k.starts_with(&format!("{w}."))));
    let mut s = PytorchStore::from_file(path);
    if let Some(w) = wrapper {
        s = s.with_top_level_key(*w);
    }
    let mut s = s
        .map_indices_contiguous(false)
        .allow_partial(true)
        .validate(false);
    for (from, to) in remaps {
        s = s.with_key_remapping(from, to);
    }
    Ok(s)
}

fn shape_map<S: ModuleStore>(s: &mut S) -> Result<BTreeMap<String, Vec<usize>>, S::Error> {
    Ok(s.get_all_snapshots()?
        .iter()
        .map(|(k, v)| (k.clone(), v.shape.to_vec()))
        .collect())
}

impl Store {
    fn format(&self) -> CheckpointFormat {
        match self {
            Store::Pytorch(_) => CheckpointFormat::Pytorch,
            Store::Safetensors(_) => CheckpointFormat::Safetensors,
            Store::Burnpack(_) => CheckpointFormat::Burnpack,
        }
    }

    fn snapshots(&mut self, path: &Path) -> Result<BTreeMap<String, Vec<usize>>, CheckpointError> {
        let f = self.format();
        match self {
            Store::Pytorch(s) => {
                shape_map(s.as_mut()).map_err(|e| store_err(path, f, e.to_string()))
            }
            Store::Safetensors(s) => {
                shape_map(s.as_mut()).map_err(|e| store_err(path, f, e.to_string()))
            }
            Store::Burnpack(s) => {
                shape_map(s.as_mut()).map_err(|e| store_err(path, f, e.to_string()))
            }
        }
    }

    /// Loads the stored tensors into `model`.
    pub(super) fn apply<B: Backend>(
        &mut self,
        path: &Path,
        model: &mut VmUnet<B>,
    ) -> Result<ApplyResult, CheckpointError> {
        let f = self.format();
        match self {
            Store::Pytorch(s) => model
                .load_from(s.as_mut())
                .map_err(|e| store_err(path, f, e.to_string())),
            Store::Safetensors(s) => model
                .load_from(s.as_mut())
                .map_err(|e| store_err(path, f, e.to_string())),
            Store::Burnpack(s) => model
                .load_from(s.as_mut())
                .map_err(|e| store_err(path, f, e.to_string())),
        }
    }
}
