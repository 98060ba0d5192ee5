//! `vmunet init`.

use crate::common::*;

#[test]
fn init_writes_a_loadable_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("small.bpk");
    let o = run(&["init", "--preset", "small", "--seed", "7", "-o", s(&ck)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&["info", "--checkpoint", s(&ck), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["parameters"], 2_169_403);
    assert_eq!(v["format"], "burnpack");
    // Same seed, same weights: identical outputs (the files differ only in parameter ids).
    let again = tmp.path().join("again.bpk");
    assert!(
        run(&["init", "--preset", "small", "--seed", "7", "-o", s(&again)])
            .status
            .success()
    );
    let x = tmp.path().join("x.npy");
    let data: Vec<f32> = (0..3 * 32 * 32).map(|i| (i % 251) as f32).collect();
    vmunet_data::write_npy(&x, &[1, 3, 32, 32], &data).unwrap();
    let outs: Vec<Vec<f32>> = [&ck, &again]
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let y = tmp.path().join(format!("y{i}.npy"));
            let o = run(&[
                "forward",
                "--checkpoint",
                s(c),
                "--input",
                s(&x),
                "--output",
                s(&y),
            ]);
            assert!(o.status.success(), "{}", stderr(&o));
            vmunet_data::read_npy(&y).unwrap().data
        })
        .collect();
    assert_eq!(outs[0], outs[1]);
}
