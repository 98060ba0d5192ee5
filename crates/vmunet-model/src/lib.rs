//! VM-UNet (Ruan & Xiang, arXiv 2402.02491) on burn, numerically identical to the official
//! PyTorch code (GitHub JCruan519/VM-UNet), generic over the backend.
//!
//! [`VmUnetConfig`] is the single description of the architecture; [`VmUnet`] is the network;
//! [`checkpoint`] loads official `.pth` / safetensors files and the project's own records.

#![deny(missing_docs)]

pub mod checkpoint;
mod config;
mod error;
mod patch;
pub mod source;
mod ss2d;
mod trace;
mod vmunet;
mod vss;

pub use config::{BlockWidth, StageShape, VmUnetConfig};
pub use error::ModelError;
pub use patch::{PatchEmbed2D, PatchExpand2D, PatchMerging2D};
pub use source::{init_checkpoint, LoadedModel, ModelSource, Preset, SourceError};
pub use ss2d::Ss2d;
pub use trace::{ModulePath, NoTrace, Sink, Trace, Tracer};
pub use vmunet::{OutputActivation, VmUnet};
pub use vss::{DropPath, VssBlock, VssLayer, VssLayerUp};

/// The default CPU backend (burn-ndarray, f32).
pub type CpuBackend = burn::backend::NdArray<f32>;

/// A count with thousands separators (`27,427,561`), as parameter counts are printed.
pub fn format_count(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
