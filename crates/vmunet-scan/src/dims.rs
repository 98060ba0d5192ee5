//! Shapes and argument checking for the scan and the cross scan. Uses only [`crate::math`].

/// Errors from the scan: always a caller's shape mistake.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScanError {
    /// A buffer's length does not match the declared dimensions.
    #[error("selective scan: `{name}` has {found} elements, expected {expected}")]
    Length {
        /// Argument name.
        name: &'static str,
        /// Expected element count.
        expected: usize,
        /// Actual element count.
        found: usize,
    },
    /// Inconsistent dimensions.
    #[error("selective scan: {0}")]
    Dims(String),
}

/// Dimensions of one scan call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanDims {
    /// Batch size `B`.
    pub batch: usize,
    /// Channels `C` (all directions stacked: `K * d_inner` in SS2D).
    pub channels: usize,
    /// Sequence length `L`.
    pub len: usize,
    /// State size `N`.
    pub d_state: usize,
    /// Number of `B`/`C` groups `K`; group `k` serves channels `[k*C/K, (k+1)*C/K)`.
    pub groups: usize,
}

impl ScanDims {
    /// Element count of `u`, `delta` and `y`.
    pub fn x_len(&self) -> usize {
        self.batch * self.channels * self.len
    }
    /// Element count of `B` and `C`.
    pub fn bc_len(&self) -> usize {
        self.batch * self.groups * self.d_state * self.len
    }
    /// Channels per group.
    pub fn channels_per_group(&self) -> usize {
        self.channels / self.groups
    }

    pub(crate) fn check_len(
        &self,
        name: &'static str,
        found: usize,
        expected: usize,
    ) -> Result<(), ScanError> {
        if found == expected {
            Ok(())
        } else {
            Err(ScanError::Length {
                name,
                expected,
                found,
            })
        }
    }
}

/// Dimensions of one cross-scan call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CrossScanDims {
    /// Batch `N`.
    pub batch: usize,
    /// Feature-map height `H`.
    pub height: usize,
    /// Feature-map width `W`.
    pub width: usize,
    /// Channels `D` (SS2D's d_inner).
    pub channels: usize,
    /// State size `S`.
    pub d_state: usize,
    /// Delta rank `R`.
    pub dt_rank: usize,
}

impl CrossScanDims {
    /// Sequence length `H * W`.
    pub fn len(&self) -> usize {
        self.height * self.width
    }
    /// True when the map is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Width of one direction's projection row: `R + 2S`.
    pub fn proj(&self) -> usize {
        self.dt_rank + 2 * self.d_state
    }
}

/// Borrowed scan arguments in mamba's layouts.
#[derive(Debug, Clone, Copy)]
pub struct ScanInputs<'a> {
    /// Dimensions.
    pub dims: ScanDims,
    /// `u`, `(B, C, L)`.
    pub u: &'a [f32],
    /// `delta` before bias and softplus, `(B, C, L)`.
    pub delta: &'a [f32],
    /// `A` (already negative: `-exp(A_logs)`), `(C, N)`.
    pub a: &'a [f32],
    /// `B`, `(B, K, N, L)`.
    pub b: &'a [f32],
    /// `C`, `(B, K, N, L)`.
    pub c: &'a [f32],
    /// `D` skip, `(C)`.
    pub d: &'a [f32],
    /// Bias added to delta before softplus, `(C)`.
    pub delta_bias: &'a [f32],
    /// Apply softplus to `delta + delta_bias` (VM-UNet: always true).
    pub delta_softplus: bool,
}

impl ScanInputs<'_> {
    /// Checks every buffer against `dims`.
    pub fn validate(&self) -> Result<(), ScanError> {
        let d = &self.dims;
        if d.groups == 0 || !d.channels.is_multiple_of(d.groups) {
            return Err(ScanError::Dims(format!(
                "channels ({}) must be a positive multiple of groups ({})",
                d.channels, d.groups
            )));
        }
        d.check_len("u", self.u.len(), d.x_len())?;
        d.check_len("delta", self.delta.len(), d.x_len())?;
        d.check_len("A", self.a.len(), d.channels * d.d_state)?;
        d.check_len("B", self.b.len(), d.bc_len())?;
        d.check_len("C", self.c.len(), d.bc_len())?;
        d.check_len("D", self.d.len(), d.channels)?;
        d.check_len("delta_bias", self.delta_bias.len(), d.channels)?;
        Ok(())
    }

    /// `dt` for channel `ch` of batch `b` at position `l`.
    #[inline(always)]
    pub(crate) fn dt(&self, x: f32, ch: usize) -> f32 {
        let v = x + self.delta_bias[ch];
        if self.delta_softplus {
            crate::math::softplus(v)
        } else {
            v
        }
    }
}
