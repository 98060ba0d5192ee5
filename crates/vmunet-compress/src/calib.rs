//! Calibration: real images through the float32 model, and the range of every probed value
//! (min-max, percentile, entropy).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use vmunet_data::{preprocess, Array, Preprocess};
use vmunet_onnx_ir::Model;
use vmunet_runtime::Probe;

use crate::CompressError;

/// Bins of the per-value histograms the percentile and entropy methods read.
pub const HIST_BINS: usize = 4096;

/// How an activation's quantisation range is chosen from its calibrated values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// The smallest and largest value seen.
    MinMax,
    /// The given percentile of the values (e.g. 99.99) and its mirror at the low end; outliers
    /// beyond are clipped.
    Percentile(f64),
    /// The clipping threshold that minimises the KL divergence between the distribution of
    /// |x| and its 128-level quantisation (TensorRT's entropy calibration).
    Entropy,
}

impl Method {
    /// The command-line name (`minmax`, `percentile`, `entropy`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::MinMax => "minmax",
            Self::Percentile(_) => "percentile",
            Self::Entropy => "entropy",
        }
    }

    /// Parses `minmax`, `percentile` (99.99), `percentile:P` or `entropy`.
    pub fn parse(s: &str) -> Result<Self, CompressError> {
        match s {
            "minmax" => Ok(Self::MinMax),
            "percentile" => Ok(Self::Percentile(99.99)),
            "entropy" => Ok(Self::Entropy),
            _ => {
                if let Some(p) = s.strip_prefix("percentile:") {
                    let v: f64 = p.parse().map_err(|_| {
                        CompressError::Options(format!("`{s}`: the percentile is not a number"))
                    })?;
                    if !(50.0..100.0).contains(&v) {
                        return Err(CompressError::Options(format!(
                            "`{s}`: the percentile must be in [50, 100)"
                        )));
                    }
                    Ok(Self::Percentile(v))
                } else {
                    Err(CompressError::Options(format!(
                        "unknown calibration method `{s}` (expected minmax, percentile, percentile:P or entropy)"
                    )))
                }
            }
        }
    }

    /// Whether the method reads histograms (a second pass over the images).
    pub fn needs_histograms(&self) -> bool {
        !matches!(self, Self::MinMax)
    }
}

impl std::str::FromStr for Method {
    type Err = CompressError;

    /// Parses the command-line name, as [`Method::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Percentile(p) => write!(f, "percentile:{p}"),
            m => f.write_str(m.name()),
        }
    }
}

/// Preprocessed calibration inputs (the official test-time preprocessing).
#[derive(Debug, Clone)]
pub struct CalibrationSet {
    /// Where the images came from (a folder), or `synthetic`.
    pub source: String,
    /// The image files used, in order (empty for synthetic inputs).
    pub files: Vec<PathBuf>,
    /// One NCHW batch of one image per file.
    pub inputs: Vec<Array>,
}

/// The folder holding the images: `dir` itself, else `dir/images`, else `dir/train/images`
/// (an ISIC-style dataset root).
fn image_folder(dir: &Path) -> PathBuf {
    for sub in ["", "images", "train/images"] {
        let d = dir.join(sub);
        let has_images = std::fs::read_dir(&d)
            .map(|mut it| {
                it.any(|e| {
                    e.map(|e| vmunet_data::is_image_file(&e.path()))
                        .unwrap_or(false)
                })
            })
            .unwrap_or(false);
        if has_images {
            return d;
        }
    }
    dir.to_path_buf()
}

impl CalibrationSet {
    /// Up to `limit` images of `dir` (evenly spread over its sorted files), preprocessed to
    /// `pre`. An empty or unreadable folder, or an image that does not decode, is an error that
    /// names it.
    pub fn from_dir(dir: &Path, limit: usize, pre: &Preprocess) -> Result<Self, CompressError> {
        let err = |path: &Path, reason: String| CompressError::Calibration {
            path: path.to_path_buf(),
            reason,
        };
        if limit == 0 {
            return Err(CompressError::Options(
                "the number of calibration images must be at least 1".into(),
            ));
        }
        if !dir.is_dir() {
            return Err(err(dir, "not a readable folder".into()));
        }
        let folder = image_folder(dir);
        let mut all = vmunet_data::image_files(std::slice::from_ref(&folder))
            .map_err(|e| err(&folder, e.to_string()))?;
        all.sort();
        if all.is_empty() {
            return Err(err(
                &folder,
                "no images (png, jpg, bmp, tif, webp) in the folder".into(),
            ));
        }
        let n = limit.min(all.len());
        let files: Vec<PathBuf> = (0..n).map(|i| all[i * all.len() / n].clone()).collect();
        let mut inputs = Vec::with_capacity(n);
        for f in &files {
            let img = vmunet_data::load_image(f).map_err(|e| err(f, e.to_string()))?;
            let t = preprocess(&img, pre);
            inputs.push(Array {
                shape: vec![1, t.channels, t.height, t.width],
                data: t.data,
            });
        }
        Ok(Self {
            source: folder.display().to_string(),
            files,
            inputs,
        })
    }

    /// `n` deterministic synthetic images (smooth colour fields with a dark blob, in the
    /// preprocessed [0, 255] range): a range check when no real images are given.
    pub fn synthetic(n: usize, pre: &Preprocess) -> Self {
        let (c, h, w) = (pre.channels, pre.height, pre.width);
        let inputs = (0..n.max(1))
            .map(|k| {
                let mut data = vec![0f32; c * h * w];
                let (cy, cx) = (0.3 + 0.4 * ((k * 37 % 11) as f32 / 10.0), 0.5);
                for ch in 0..c {
                    for y in 0..h {
                        for x in 0..w {
                            let (fy, fx) = (y as f32 / h as f32, x as f32 / w as f32);
                            let d = ((fy - cy).powi(2) + (fx - cx).powi(2)).sqrt();
                            let skin = 180.0 + 40.0 * (fx * 3.0 + ch as f32).sin();
                            let v = if d < 0.25 { skin * 0.4 } else { skin };
                            data[(ch * h + y) * w + x] = v.clamp(0.0, 255.0);
                        }
                    }
                }
                Array {
                    shape: vec![1, c, h, w],
                    data,
                }
            })
            .collect();
        Self {
            source: "synthetic".into(),
            files: Vec::new(),
            inputs,
        }
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// The input shape of the batches.
    pub fn shape(&self) -> Vec<usize> {
        self.inputs
            .first()
            .map(|a| a.shape.clone())
            .unwrap_or_default()
    }
}

/// What calibration saw of one value.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueStats {
    /// Smallest finite value.
    pub min: f32,
    /// Largest finite value.
    pub max: f32,
    /// Largest |x| that is not zero, and the smallest.
    pub abs_min_nonzero: f32,
    /// Values that were NaN or infinite.
    pub nonfinite: u64,
    /// Values seen.
    pub count: u64,
    /// [`HIST_BINS`] counts over `[min, max]` (empty when only min-max was asked).
    pub hist: Vec<u64>,
}

impl Default for ValueStats {
    fn default() -> Self {
        Self {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            abs_min_nonzero: f32::INFINITY,
            nonfinite: 0,
            count: 0,
            hist: Vec::new(),
        }
    }
}

impl ValueStats {
    fn observe_range(&mut self, data: &[f32]) {
        for &v in data {
            if !v.is_finite() {
                self.nonfinite += 1;
                continue;
            }
            self.min = self.min.min(v);
            self.max = self.max.max(v);
            let a = v.abs();
            if a > 0.0 {
                self.abs_min_nonzero = self.abs_min_nonzero.min(a);
            }
        }
        self.count += data.len() as u64;
    }

    fn observe_hist(&mut self, data: &[f32]) {
        if self.hist.is_empty() {
            self.hist = vec![0; HIST_BINS];
        }
        let width = (self.max - self.min).max(f32::MIN_POSITIVE);
        for &v in data.iter().filter(|v| v.is_finite()) {
            let b = (((v - self.min) / width) * HIST_BINS as f32) as usize;
            self.hist[b.min(HIST_BINS - 1)] += 1;
        }
    }

    /// Largest |x|.
    pub fn abs_max(&self) -> f32 {
        if self.count == 0 {
            0.0
        } else {
            self.min.abs().max(self.max.abs())
        }
    }

    fn bin_edge(&self, b: usize) -> f32 {
        self.min + (self.max - self.min) * b as f32 / HIST_BINS as f32
    }

    fn quantile(&self, q: f64) -> f32 {
        let total: u64 = self.hist.iter().sum();
        if total == 0 {
            return self.min;
        }
        let target = (q * total as f64).ceil() as u64;
        let mut acc = 0;
        for (b, &c) in self.hist.iter().enumerate() {
            acc += c;
            if acc >= target.max(1) {
                return self.bin_edge(b + 1);
            }
        }
        self.max
    }

    /// The range `[lo, hi]` the method keeps (always containing 0).
    pub fn range(&self, method: Method) -> (f32, f32) {
        if self.count == 0 || self.min > self.max {
            return (0.0, 0.0);
        }
        let (lo, hi) = match method {
            Method::MinMax => (self.min, self.max),
            _ if self.hist.is_empty() => (self.min, self.max),
            Method::Percentile(p) => {
                let p = p / 100.0;
                (self.quantile(1.0 - p).max(self.min), self.quantile(p))
            }
            Method::Entropy => {
                let t = self.entropy_threshold();
                (self.min.max(-t), self.max.min(t))
            }
        };
        (lo.min(0.0), hi.max(0.0))
    }

    /// The |x| histogram (2048 bins over `[0, abs_max]`) rebuilt from the signed one.
    fn abs_hist(&self) -> Vec<f64> {
        const N: usize = 2048;
        let amax = self.abs_max().max(f32::MIN_POSITIVE);
        let mut h = vec![0f64; N];
        for (b, &c) in self.hist.iter().enumerate() {
            if c == 0 {
                continue;
            }
            let centre = (self.bin_edge(b) + self.bin_edge(b + 1)) / 2.0;
            let k = ((centre.abs() / amax) * N as f32) as usize;
            h[k.min(N - 1)] += c as f64;
        }
        h
    }

    /// TensorRT's entropy calibration: the |x| threshold minimising KL(P || Q).
    fn entropy_threshold(&self) -> f32 {
        const LEVELS: usize = 128;
        let h = self.abs_hist();
        let n = h.len();
        let amax = self.abs_max();
        let mut best = (f64::INFINITY, n);
        let mut i = LEVELS;
        while i <= n {
            let mut p: Vec<f64> = h[..i].to_vec();
            let outliers: f64 = h[i..].iter().sum();
            p[i - 1] += outliers;
            // Q: merge the first i bins into LEVELS groups, spread back over non-empty bins.
            let mut q = vec![0f64; i];
            for g in 0..LEVELS {
                let (a, b) = (
                    g * i / LEVELS,
                    ((g + 1) * i / LEVELS).max(g * i / LEVELS + 1),
                );
                let b = b.min(i);
                let total: f64 = h[a..b].iter().sum();
                let nonzero = h[a..b].iter().filter(|&&v| v > 0.0).count();
                if nonzero > 0 {
                    for k in a..b {
                        if h[k] > 0.0 {
                            q[k] = total / nonzero as f64;
                        }
                    }
                }
            }
            let (sp, sq): (f64, f64) = (p.iter().sum(), q.iter().sum());
            if sp > 0.0 && sq > 0.0 {
                let mut kl = 0.0;
                for k in 0..i {
                    if p[k] > 0.0 {
                        let pk = p[k] / sp;
                        let qk = (q[k] / sq).max(1e-12);
                        kl += pk * (pk / qk).ln();
                    }
                }
                if kl < best.0 {
                    best = (kl, i);
                }
            }
            i += 16;
        }
        amax * best.1 as f32 / n as f32
    }
}

/// Calibrated statistics of a model's values.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Per value name.
    pub values: BTreeMap<String, ValueStats>,
    /// Images run.
    pub images: usize,
}

impl Stats {
    /// Runs `set` through `model` (tract) and records `values`; with `histograms`, a second
    /// pass fills each value's histogram over its range.
    pub fn collect(
        model: &Model,
        values: &[String],
        set: &CalibrationSet,
        histograms: bool,
    ) -> Result<Self, CompressError> {
        let shape = set.shape();
        let probe = Probe::new(model, values, &shape, "the model being calibrated")?;
        let index: Vec<(usize, &String)> = probe
            .names()
            .iter()
            .enumerate()
            .filter(|(_, n)| values.contains(n))
            .collect();
        let mut stats: BTreeMap<String, ValueStats> = BTreeMap::new();
        for x in &set.inputs {
            let out = probe.run(x)?;
            for &(i, name) in &index {
                stats
                    .entry(name.clone())
                    .or_default()
                    .observe_range(&out[i].data);
            }
        }
        if histograms {
            for x in &set.inputs {
                let out = probe.run(x)?;
                for &(i, name) in &index {
                    if let Some(s) = stats.get_mut(name) {
                        s.observe_hist(&out[i].data);
                    }
                }
            }
        }
        Ok(Self {
            values: stats,
            images: set.len(),
        })
    }

    /// The statistics of `value`.
    pub fn get(&self, value: &str) -> Option<&ValueStats> {
        self.values.get(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_of(data: &[f32]) -> ValueStats {
        let mut s = ValueStats::default();
        s.observe_range(data);
        s.observe_hist(data);
        s
    }

    #[test]
    fn minmax_is_the_extremes_and_contains_zero() {
        let s = stats_of(&[1.0, 2.0, 3.0]);
        assert_eq!(s.range(Method::MinMax), (0.0, 3.0));
        let s = stats_of(&[-4.0, 2.0]);
        assert_eq!(s.range(Method::MinMax), (-4.0, 2.0));
    }

    #[test]
    fn percentile_and_entropy_clip_a_rare_outlier() {
        // 100,000 values in [-1, 1] and one at 100.
        let mut v: Vec<f32> = (0..100_000)
            .map(|i| ((i as f32) * 0.618_034).fract() * 2.0 - 1.0)
            .collect();
        v.push(100.0);
        let s = stats_of(&v);
        let (_, hi_mm) = s.range(Method::MinMax);
        let (lo_p, hi_p) = s.range(Method::Percentile(99.9));
        let (_, hi_e) = s.range(Method::Entropy);
        assert_eq!(hi_mm, 100.0);
        assert!(hi_p < 1.2 && hi_p > 0.9, "percentile high {hi_p}");
        assert!(lo_p < -0.9, "percentile low {lo_p}");
        assert!(hi_e < 10.0, "entropy threshold {hi_e}");
    }

    #[test]
    fn methods_parse_and_refuse() {
        assert_eq!(Method::parse("entropy").unwrap(), Method::Entropy);
        assert_eq!(
            Method::parse("percentile:99.9").unwrap(),
            Method::Percentile(99.9)
        );
        assert!(Method::parse("percentile:120").is_err());
        assert!(Method::parse("kl").is_err());
    }

    #[test]
    fn from_str_is_parse() {
        for s in ["minmax", "percentile", "percentile:99.9", "entropy"] {
            let m: Method = s.parse().unwrap();
            assert_eq!(m, Method::parse(s).unwrap());
            assert_eq!(m.to_string().parse::<Method>().unwrap(), m);
        }
        for bad in ["kl", "percentile:120", "percentile:x"] {
            assert_eq!(
                bad.parse::<Method>().unwrap_err().to_string(),
                Method::parse(bad).unwrap_err().to_string()
            );
        }
    }
}
