//! The scan and the depthwise convolution as burn ops (feature `burn`): autodiff against finite
//! differences and the host kernels, one test binary.

mod autodiff;
mod dwconv;
