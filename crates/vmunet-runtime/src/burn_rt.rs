//! burn itself as a runtime (ndarray backend, CPU), so parity and inference compare like with
//! like: the checkpoint's model behind the same [`Runtime`] trait as the ONNX back-ends.

use burn::tensor::{Tensor, TensorData};
use vmunet_data::Array;
use vmunet_model::{CpuBackend, LoadedModel, VmUnet};

use crate::{Runtime, RuntimeError, Session};

/// A loaded burn model.
pub struct BurnRuntime {
    model: VmUnet<CpuBackend>,
}

impl BurnRuntime {
    /// Wraps a loaded model.
    pub fn new(model: VmUnet<CpuBackend>) -> Self {
        Self { model }
    }

    /// A loaded checkpoint (or preset) as a [`Session`]: any input size that is a multiple of
    /// 32, by default the size it was trained at.
    pub fn session(loaded: LoadedModel) -> Session {
        let trained = loaded.input_size();
        Session::from_runtime(
            Box::new(Self::new(loaded.model)),
            loaded.config.input_channels,
            loaded.label,
        )
        .with_trained_size(trained)
    }

    /// The model.
    pub fn model(&self) -> &VmUnet<CpuBackend> {
        &self.model
    }

    fn dims(&self, shape: &[usize]) -> Result<[usize; 4], RuntimeError> {
        let bad = |expected: String| RuntimeError::Shape {
            expected,
            found: shape.to_vec(),
        };
        let dims = <[usize; 4]>::try_from(shape)
            .map_err(|_| bad("[batch, channels, height, width]".into()))?;
        self.model
            .check_input(dims)
            .map_err(|e| bad(e.to_string()))?;
        Ok(dims)
    }
}

impl Runtime for BurnRuntime {
    fn description(&self) -> String {
        "burn (ndarray, CPU)".into()
    }

    fn check(&self, shape: &[usize]) -> Result<(), RuntimeError> {
        self.dims(shape).map(|_| ())
    }

    fn run(&mut self, input: &Array) -> Result<Array, RuntimeError> {
        let [n, c, h, w] = self.dims(&input.shape)?;
        let x = Tensor::<CpuBackend, 4>::from_data(
            TensorData::new(input.data.clone(), [n, c, h, w]),
            &Default::default(),
        );
        let y = self.model.forward(x).map_err(|e| RuntimeError::Backend {
            runtime: "burn".into(),
            message: e.to_string(),
        })?;
        let shape = y.dims().to_vec();
        let data = y
            .into_data()
            .into_vec::<f32>()
            .map_err(|e| RuntimeError::Backend {
                runtime: "burn".into(),
                message: format!("the output is not float32: {e}"),
            })?;
        Ok(Array { shape, data })
    }
}
