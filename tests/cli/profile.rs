//! Device profiles.

use crate::common::*;

#[test]
fn bad_device_profile_names_file_and_field() {
    let tmp = tempfile::tempdir().unwrap();
    let prof = tmp.path().join("board.toml");
    std::fs::write(
        &prof,
        "name = \"board\"\nruntime = \"ort\"\nproviders = [\"npu\"]\n",
    )
    .unwrap();
    let model = tmp.path().join("m.onnx");
    std::fs::write(&model, "x").unwrap();
    let input = tmp.path().join("x.npy");
    vmunet_data::write_npy(&input, &[1, 3, 32, 32], &vec![0.0; 3 * 32 * 32]).unwrap();
    let out = tmp.path().join("y.npy");
    let o = run(&[
        "forward",
        "--model",
        s(&model),
        "--profile",
        s(&prof),
        "--input",
        s(&input),
        "--output",
        s(&out),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("board.toml") && err.contains("npu"), "{err}");
    assert!(!out.exists());
}
