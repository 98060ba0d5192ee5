//! Times the cross scan (the custom operator's kernel) forward and backward at the paper
//! model's four stage shapes (batch 1, 256x256 input):
//! `cargo run --release -p vmunet-scan --example cross_scan_timing`.

use std::time::Instant;
use vmunet_scan::perf::SampleInputs;
use vmunet_scan::{cross_scan, cross_scan_backward, CrossScanDims, DIRECTIONS};

/// Deterministic values in `[offset - scale, offset + scale)`.
fn values(n: usize, salt: usize, scale: f32, offset: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * salt) % 1000) as f32 / 500.0 * scale - scale + offset)
        .collect()
}

/// Mean seconds per call over `reps` calls after one warm-up call.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..reps {
        f();
    }
    t.elapsed().as_secs_f64() / reps as f64
}

fn main() {
    // (d_inner, side, dt_rank) of the paper model's stages: dims 96..768 doubled, 64x64 to 8x8,
    // dt_rank ceil(dim / 16).
    for (c, side, r) in [
        (192usize, 64usize, 6usize),
        (384, 32, 12),
        (768, 16, 24),
        (1536, 8, 48),
    ] {
        let dims = CrossScanDims {
            batch: 1,
            height: side,
            width: side,
            channels: c,
            d_state: 16,
            dt_rank: r,
        };
        let (l, k, s) = (dims.len(), DIRECTIONS, dims.d_state);
        let sample = SampleInputs::new(dims);
        let inp = sample.inputs();
        let updates = (l * c * k * s) as f64;
        let fwd = time(5, || {
            std::hint::black_box(cross_scan(&inp).unwrap());
        });
        let dy = values(l * c, 13, 1.0, 0.0);
        let bwd = time(2, || {
            std::hint::black_box(cross_scan_backward(&inp, &dy).unwrap());
        });
        println!(
            "D={c:5} {side:3}x{side:<3}: forward {:7.2} ms ({:.3} ns/state-update), backward {:7.2} ms ({:.3} ns/state-update)",
            fwd * 1e3,
            fwd * 1e9 / updates,
            bwd * 1e3,
            bwd * 1e9 / updates
        );
    }
}
