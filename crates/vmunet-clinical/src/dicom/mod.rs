//! DICOM: series and images in ([`read`]), DICOM Segmentation out ([`seg`]), the SOP classes
//! and transfer syntaxes this toolkit reads ([`classes`]), and the DICOM node ([`node`]).

pub mod attrs;
pub mod classes;
pub mod pixels;
pub mod read;
pub mod seg;
pub mod uid;
