//! Integration tests of vmunet-data (decoding, the ISIC and Synapse datasets), one test binary: one module per
//! subject.

mod decode;
mod isic;
mod synapse;
