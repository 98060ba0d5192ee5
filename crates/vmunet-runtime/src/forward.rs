//! The tensor-level contract (`vmunet forward`): an NCHW float32 `.npy` or an image in, the
//! model's logits (or probabilities) out.

use std::path::Path;

use vmunet_data::{activate, load_image, preprocess, read_npy, Array, DataError, Preprocess};

use crate::{Runtime, SegmentError, Session};

/// The input at `path`: an NCHW float32 `.npy`, or an image (any format the decoder reads)
/// given the official preprocessing at the session's input size (or `size`), as a batch of
/// one. It is checked against the model before anything runs.
pub fn read_input(
    session: &Session,
    path: &Path,
    size: Option<usize>,
) -> Result<Array, SegmentError> {
    let runtime = |source| SegmentError::Runtime {
        image: path.to_path_buf(),
        source: Box::new(source),
    };
    let npy = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    let x = if npy {
        read_npy(path)?
    } else {
        let img = load_image(path)?;
        let (height, width) = session.input_size(size).map_err(runtime)?;
        let pre = Preprocess {
            height,
            width,
            channels: session.channels(),
        };
        let t = preprocess(&img, &pre);
        Array {
            shape: vec![1, t.channels, t.height, t.width],
            data: t.data,
        }
    };
    if x.shape.len() != 4 {
        return Err(DataError::Format {
            path: path.to_path_buf(),
            reason: format!("expected a 4-D NCHW array, got shape {:?}", x.shape),
        }
        .into());
    }
    session.check(&x.shape).map_err(runtime)?;
    Ok(x)
}

/// Runs `session` on the input at `path` ([`read_input`]): its logits `(N, classes, H, W)`, or
/// with `probabilities` the model's activation of them (sigmoid / softmax).
pub fn forward_file(
    session: &mut Session,
    path: &Path,
    size: Option<usize>,
    probabilities: bool,
) -> Result<Array, SegmentError> {
    let x = read_input(session, path, size)?;
    let mut y = session.run(&x).map_err(|source| SegmentError::Runtime {
        image: path.to_path_buf(),
        source: Box::new(source),
    })?;
    if probabilities {
        activate(&mut y.data, &y.shape);
    }
    Ok(y)
}
