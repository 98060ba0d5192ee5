//! How close the cross scan runs to its arithmetic bound: times [`cross_scan`] at a shape,
//! estimates the core clock, and compares the cycles per eight-lane state update with the
//! cycles its floating-point work needs on two fused-multiply-add pipes (AVX2 x86-64: two
//! 256-bit FMA pipes per core; the bound is for that class of CPU).
//!
//! The count, per state update of eight lanes (one vector), from [`crate::cross`]'s kernel:
//! `dt * A` (1 multiply), `exp2` (5 fused multiply-adds, 2 multiplies, 1 fused multiply-add
//! with the exponent scale), `du * B` (1), the state update and the output (2 fused
//! multiply-adds): [`FMA_OPS_PER_STATE`] = 11. Per position, shared by the `S` states:
//! softplus (an `exp` and a `log1p` without division, 27 multiply-class operations), `dt * u`
//! and the skip term: [`FMA_OPS_PER_POSITION`] = 29. The add-class operations (4 per state)
//! go to the two add pipes and never bind.

use std::time::Instant;

use crate::cross::{cross_scan, CrossScanInputs};
use crate::dims::{CrossScanDims, ScanError};
use crate::order::DIRECTIONS;

/// Multiply-class vector operations per state update (see the module documentation).
pub const FMA_OPS_PER_STATE: f64 = 11.0;
/// Multiply-class vector operations per position and direction, shared by its states.
pub const FMA_OPS_PER_POSITION: f64 = 29.0;
/// Fused-multiply-add pipes per core the bound assumes.
pub const FMA_PIPES: f64 = 2.0;

/// The arithmetic bound in cycles per eight-lane state update for `d_state` states.
pub fn bound_cycles(d_state: usize) -> f64 {
    (FMA_OPS_PER_STATE + FMA_OPS_PER_POSITION / d_state.max(1) as f64) / FMA_PIPES
}

/// One timed shape.
#[derive(Debug, Clone, Copy)]
pub struct KernelTiming {
    /// The shape (batch 1).
    pub dims: CrossScanDims,
    /// Median seconds per call.
    pub seconds: f64,
    /// Fastest call's seconds: what the kernel can do when nothing else on the machine
    /// interferes (the ratios to the bound use it).
    pub best_seconds: f64,
    /// Nanoseconds per single-lane state update (all threads together), best call.
    pub ns_per_update: f64,
    /// Cycles per eight-lane state update per core (`threads` cores at `clock_hz`), best call.
    pub cycles_per_vector_update: f64,
    /// [`bound_cycles`] for the shape.
    pub bound_cycles: f64,
}

impl KernelTiming {
    /// Fraction of the arithmetic bound reached (1 = at the bound).
    pub fn fraction_of_bound(&self) -> f64 {
        self.bound_cycles / self.cycles_per_vector_update
    }
}

/// Deterministic values in `[offset - scale, offset + scale)`.
fn values(n: usize, salt: usize, scale: f32, offset: f32) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * salt) % 1000) as f32 / 500.0 * scale - scale + offset)
        .collect()
}

/// Owned cross-scan inputs at a shape, deterministic and in the ranges of a trained model
/// (`A = -(s + 1)`, softplus inputs in [-3, 1)), for timing.
pub struct SampleInputs {
    dims: CrossScanDims,
    u: Vec<f32>,
    delta: Vec<f32>,
    x_dbl: Vec<f32>,
    a: Vec<f32>,
    d: Vec<f32>,
    bias: Vec<f32>,
}

impl SampleInputs {
    /// Inputs for `dims`.
    pub fn new(dims: CrossScanDims) -> Self {
        let (l, c, k, s) = (dims.len(), dims.channels, DIRECTIONS, dims.d_state);
        let n = dims.batch;
        Self {
            dims,
            u: values(n * l * c, 7919, 1.0, 0.0),
            delta: values(n * k * l * c, 104_729, 2.0, -1.0),
            x_dbl: values(n * l * k * dims.proj(), 31, 1.0, 0.0),
            a: (0..k * c * s).map(|i| -((i % s) as f32 + 1.0)).collect(),
            d: vec![1.0; k * c],
            bias: vec![0.1; k * c],
        }
    }

    /// The borrowed inputs [`cross_scan`] takes.
    pub fn inputs(&self) -> CrossScanInputs<'_> {
        CrossScanInputs {
            dims: self.dims,
            u: &self.u,
            delta: &self.delta,
            x_dbl: &self.x_dbl,
            a: &self.a,
            d: &self.d,
            delta_bias: &self.bias,
        }
    }
}

/// Times [`cross_scan`] at `dims` (`runs` calls after one warm-up) on [`SampleInputs`], and
/// relates the fastest call to the bound at `clock_hz` over `threads` cores.
pub fn time_cross_scan(
    dims: CrossScanDims,
    runs: usize,
    threads: usize,
    clock_hz: f64,
) -> Result<KernelTiming, ScanError> {
    let (l, c, k, s) = (dims.len(), dims.channels, DIRECTIONS, dims.d_state);
    let n = dims.batch;
    let sample = SampleInputs::new(dims);
    let inp = sample.inputs();
    std::hint::black_box(cross_scan(&inp)?);
    let mut times = Vec::with_capacity(runs.max(1));
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        std::hint::black_box(cross_scan(&inp)?);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let (seconds, best) = (times[times.len() / 2], times[0]);
    let updates = (n * l * c * k * s) as f64;
    Ok(KernelTiming {
        dims,
        seconds,
        best_seconds: best,
        ns_per_update: best * 1e9 / updates,
        cycles_per_vector_update: best * clock_hz * threads as f64 / (updates / 8.0),
        bound_cycles: bound_cycles(s),
    })
}

/// The core clock in Hz while busy, from chains of dependent integer operations of known
/// latency: the fastest of five ~20 ms chains (a chain the machine interrupts reads as a slower
/// clock, which would flatter the cycle counts); `None` on targets without the measurement.
pub fn clock_hz() -> Option<f64> {
    (0..5).filter_map(|_| chain_hz(20_000_000)).reduce(f64::max)
}

/// One chain of `n` dependent operations, timed: cycles per second.
///
/// x86-64: 64-bit multiplications, three cycles each on every core since Nehalem and Zen (an
/// add chain is not safe there: Intel's Golden Cove and later fold dependent immediate adds at
/// rename, and such a chain reads as 6-19 GHz on a 2.6 GHz Xeon). aarch64: one-cycle adds.
fn chain_hz(n: u64) -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        const LATENCY: f64 = 3.0;
        let t = Instant::now();
        let (mut x, mut count): (u64, u64) = (3, n / 4);
        // SAFETY: register arithmetic only; four dependent multiplications per loop, the
        // counter and branch run beside them.
        unsafe {
            std::arch::asm!(
                "2:", "imul {x}, {x}", "imul {x}, {x}", "imul {x}, {x}", "imul {x}, {x}",
                "dec {c}", "jnz 2b",
                x = inout(reg) x, c = inout(reg) count, options(nomem, nostack)
            );
        }
        std::hint::black_box((x, count));
        Some(LATENCY * (n / 4 * 4) as f64 / t.elapsed().as_secs_f64())
    }
    #[cfg(target_arch = "aarch64")]
    {
        let t = Instant::now();
        let mut x: u64 = 0;
        // SAFETY: register arithmetic only; four dependent adds (one cycle each) per loop,
        // the compare and branch run beside them.
        unsafe {
            std::arch::asm!(
                "2:", "add {x}, {x}, 1", "add {x}, {x}, 1", "add {x}, {x}, 1", "add {x}, {x}, 1",
                "cmp {x}, {n}", "b.lo 2b",
                x = inout(reg) x, n = in(reg) n, options(nomem, nostack)
            );
        }
        std::hint::black_box(x);
        Some(n as f64 / t.elapsed().as_secs_f64())
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = n;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_and_timing_are_consistent() {
        assert!((bound_cycles(16) - (11.0 + 29.0 / 16.0) / 2.0).abs() < 1e-12);
        let dims = CrossScanDims {
            batch: 1,
            height: 8,
            width: 8,
            channels: 16,
            d_state: 16,
            dt_rank: 2,
        };
        let t = time_cross_scan(dims, 3, 1, 3e9).unwrap();
        assert!(t.seconds > 0.0 && t.ns_per_update > 0.0);
        assert!(t.best_seconds <= t.seconds);
        let cycles = t.best_seconds * 3e9 / ((64 * 16 * 4 * 16) as f64 / 8.0);
        assert!((t.cycles_per_vector_update - cycles).abs() < 1e-9 * cycles);
        assert!(t.fraction_of_bound() > 0.0);
        let hz = clock_hz().unwrap_or(1e9);
        assert!(hz > 1e8 && hz < 1e10, "clock {hz}");
    }
}
