//! PyTorch's `CosineAnnealingLR`, stepped once per epoch.

/// The learning rate of epoch `epoch` (0-based): `eta_min + (base - eta_min) (1 + cos(pi e /
/// t_max)) / 2`. This closed form equals PyTorch's recursive update at every epoch, including
/// past `t_max`, where the rate climbs back (period `2 t_max`), as in the official 300-epoch
/// runs with `T_max = 50`.
pub fn cosine_lr(base: f64, eta_min: f64, t_max: usize, epoch: usize) -> f64 {
    let phase = std::f64::consts::PI * epoch as f64 / t_max.max(1) as f64;
    eta_min + (base - eta_min) * (1.0 + phase.cos()) / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PyTorch's recursive (chainable) form, written out.
    fn recursive(base: f64, eta_min: f64, t_max: usize, epochs: usize) -> Vec<f64> {
        let pi = std::f64::consts::PI;
        let t = t_max as f64;
        let mut lr = vec![base];
        for e in 1..epochs {
            let prev = lr[e - 1];
            let ef = e as f64;
            let next = if (e as i64 - 1 - t_max as i64) % (2 * t_max as i64) == 0 {
                prev + (base - eta_min) * (1.0 - (pi / t).cos()) / 2.0
            } else {
                (1.0 + (pi * ef / t).cos()) / (1.0 + (pi * (ef - 1.0) / t).cos()) * (prev - eta_min)
                    + eta_min
            };
            lr.push(next);
        }
        lr
    }

    #[test]
    fn matches_pytorch_over_300_epochs() {
        let r = recursive(1e-3, 1e-5, 50, 300);
        for (e, want) in r.iter().enumerate() {
            let got = cosine_lr(1e-3, 1e-5, 50, e);
            assert!((got - want).abs() < 1e-12, "epoch {e}: {got} vs {want}");
        }
        assert_eq!(cosine_lr(1e-3, 1e-5, 50, 0), 1e-3);
        assert!((cosine_lr(1e-3, 1e-5, 50, 50) - 1e-5).abs() < 1e-15);
        assert!((cosine_lr(1e-3, 1e-5, 50, 100) - 1e-3).abs() < 1e-15);
    }
}
