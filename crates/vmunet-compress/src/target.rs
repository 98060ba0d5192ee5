//! Compression for a device target: the model must already suit the profile, and the int8
//! settings follow from the profile's runtime (vmunet_target decides; this applies it).

use std::path::Path;

use vmunet_onnx_ir::ModelMetadata;
use vmunet_target::{DeviceProfile, FindingKind, Host};

use crate::{CompressError, Int8Options, Int8Request};

/// Refuses a model that does not suit `profile` (any finding of the device target's check, but
/// the one quantisation itself resolves): a model compressed for a device is made for it.
pub fn check_for_profile(
    model: &Path,
    meta: &ModelMetadata,
    profile: &DeviceProfile,
) -> Result<(), CompressError> {
    match profile
        .check(meta)
        .into_iter()
        .find(|f| f.kind != FindingKind::Int8WithoutQuantisation)
    {
        Some(f) => Err(CompressError::Unsupported(format!(
            "{}: {f}; export for the profile first (vmunet export --profile {})",
            model.display(),
            profile.origin()
        ))),
        None => Ok(()),
    }
}

/// The int8 options for `request` (with `exclude` patterns and `dynamic` mode), completed by
/// what `profile` needs on `host`: its runtime's form, symmetric activations for TensorRT,
/// U8S8 with 7-bit weights for ONNX Runtime's CPU provider on x86 without VNNI (unless the
/// request names the activation type). Asking for another form than the profile's runtime
/// needs is an error.
pub fn int8_for_target(
    request: &Int8Request,
    exclude: Vec<String>,
    dynamic: bool,
    profile: Option<&DeviceProfile>,
    host: Host,
) -> Result<Int8Options, CompressError> {
    let mut opts = request.options(exclude, dynamic);
    let Some(profile) = profile else {
        return Ok(opts);
    };
    let d = profile.int8_defaults(host);
    if let Some(f) = request.format.filter(|f| *f != d.format) {
        return Err(CompressError::Options(format!(
            "profile `{}` runs {} and needs --format {}, not {f}",
            profile.name, profile.runtime, d.format
        )));
    }
    opts.format = d.format;
    opts.symmetric_activations |= d.symmetric_activations;
    if request.activations.is_none() {
        opts.activation_type = d.activations;
        opts.reduce_range |= d.reduce_range;
    }
    Ok(opts)
}
