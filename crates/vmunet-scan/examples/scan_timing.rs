//! Times the CPU scan at the paper's stage shapes: `cargo run --release --example scan_timing`.

use std::time::Instant;
use vmunet_scan::{CpuScan, ScanDims, ScanInputs, SelectiveScan};

fn main() {
    for (c, l) in [(768usize, 4096usize), (1536, 1024), (3072, 256), (6144, 64)] {
        let dims = ScanDims {
            batch: 1,
            channels: c,
            len: l,
            d_state: 16,
            groups: 4,
        };
        let n = dims.x_len();
        let u: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect();
        let delta: Vec<f32> = (0..n)
            .map(|i| ((i * 104729) % 1000) as f32 / 250.0 - 3.0)
            .collect();
        let a: Vec<f32> = (0..c * 16).map(|i| -((i % 16) as f32 + 1.0)).collect();
        let bc: Vec<f32> = (0..dims.bc_len())
            .map(|i| ((i * 31) % 100) as f32 / 50.0 - 1.0)
            .collect();
        let d = vec![1.0f32; c];
        let bias = vec![0.1f32; c];
        let inp = ScanInputs {
            dims,
            u: &u,
            delta: &delta,
            a: &a,
            b: &bc,
            c: &bc,
            d: &d,
            delta_bias: &bias,
            delta_softplus: true,
        };
        let _ = CpuScan.forward(&inp).unwrap();
        let t = Instant::now();
        let reps = 3;
        for _ in 0..reps {
            std::hint::black_box(CpuScan.forward(&inp).unwrap());
        }
        let s = t.elapsed().as_secs_f64() / reps as f64;
        println!(
            "C={c:5} L={l:5}: {:.1} ms ({:.2} ns/state-update)",
            s * 1e3,
            s * 1e9 / (n * 16) as f64
        );
    }
}
