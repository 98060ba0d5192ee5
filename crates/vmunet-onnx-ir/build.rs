//! Generates the ONNX protobuf types from the vendored official `proto/onnx.proto`
//! (ONNX 1.23.2, the release the Makefile pins) with a protoc from crates.io.

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let protoc = protoc_bin_vendored::protoc_bin_path()
        .map_err(|e| std::io::Error::other(format!("no vendored protoc for this host: {e}")))?;
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc);
    config.compile_protos(&["proto/onnx.proto"], &["proto"])
}
