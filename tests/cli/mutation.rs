//! Mutation test: deterministic corruptions (truncations, bit flips, overwritten blocks) of the
//! golden ONNX models, the checkpoint, an `.npy` and two images, fed to every loader and to
//! both runtimes. Each case must end in an error or a result, never a panic that reaches the
//! caller, a hang, or (through the binary) a partial output file.

// The focus regions of a file are a list; most files have one.
#![allow(clippy::single_range_in_vec_init)]

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use vmunet_runtime::{Runtime, RuntimeError};

/// Longest a single case may take before it counts as a hang.
const CASE_LIMIT: Duration = Duration::from_secs(30);

fn golden(name: &str) -> PathBuf {
    vmunet_testdata::golden(name)
}

/// xorshift64*: deterministic, no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One corruption of a file's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    /// Keep the first `n` bytes.
    Truncate(usize),
    /// Flip bit `bit` of byte `at`.
    Flip { at: usize, bit: u8 },
    /// Overwrite `len` bytes from `at` with xorshift bytes from `seed`.
    Overwrite { at: usize, len: usize, seed: u64 },
}

impl fmt::Display for Mutation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncate(n) => write!(f, "truncate at {n}"),
            Self::Flip { at, bit } => write!(f, "flip bit {bit} of byte {at}"),
            Self::Overwrite { at, len, seed } => {
                write!(f, "overwrite {len} bytes at {at} (seed {seed:#x})")
            }
        }
    }
}

impl Mutation {
    fn apply(&self, bytes: &[u8]) -> Vec<u8> {
        let mut b = bytes.to_vec();
        match *self {
            Self::Truncate(n) => b.truncate(n),
            Self::Flip { at, bit } => b[at] ^= 1 << bit,
            Self::Overwrite { at, len, seed } => {
                let mut r = XorShift(seed | 1);
                let end = (at + len).min(b.len());
                for x in &mut b[at..end] {
                    *x = r.next() as u8;
                }
            }
        }
        b
    }
}

/// `count` mutations of a file of `len` bytes, a third of each kind. Flips and overwrites land
/// in `focus` (the bytes that are not bulk weights) two times out of three, anywhere otherwise.
fn mutations(len: usize, focus: &[Range<usize>], count: usize, seed: u64) -> Vec<Mutation> {
    let mut r = XorShift(seed);
    let focus_len: usize = focus.iter().map(|f| f.len()).sum();
    let offset = |r: &mut XorShift| -> usize {
        if focus_len > 0 && r.below(3) > 0 {
            let mut k = r.below(focus_len);
            for f in focus {
                if k < f.len() {
                    return f.start + k;
                }
                k -= f.len();
            }
        }
        r.below(len)
    };
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        out.push(match i % 3 {
            0 => Mutation::Truncate(match i / 3 {
                0 => 0,
                1 => len - 1,
                2 => len / 2,
                _ => offset(&mut r),
            }),
            1 => Mutation::Flip {
                at: offset(&mut r),
                bit: r.below(8) as u8,
            },
            _ => Mutation::Overwrite {
                at: offset(&mut r),
                len: 1 + r.below(64),
                seed: r.next(),
            },
        });
    }
    out
}

fn varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The protobuf fields of `b[range]`: (field number, wire type, value range or varint).
fn fields(b: &[u8], range: Range<usize>) -> Vec<(u64, u64, Range<usize>, u64)> {
    let mut out = Vec::new();
    let mut pos = range.start;
    while pos < range.end {
        let Some(key) = varint(b, &mut pos) else {
            break;
        };
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => match varint(b, &mut pos) {
                Some(v) => out.push((field, wire, pos..pos, v)),
                None => break,
            },
            1 => pos += 8,
            2 => {
                let Some(n) = varint(b, &mut pos) else { break };
                let r = pos..pos + n as usize;
                pos = r.end;
                out.push((field, wire, r, 0));
            }
            5 => pos += 4,
            _ => break,
        }
    }
    out
}

/// The byte ranges of an ONNX file outside its float initializers' raw data: graph structure,
/// shapes, integer constants, metadata.
fn onnx_structure(b: &[u8]) -> Vec<Range<usize>> {
    let mut weights = Vec::new();
    for (f, _, graph, _) in fields(b, 0..b.len()) {
        if f != 7 {
            continue;
        }
        for (f, _, tensor, _) in fields(b, graph) {
            if f != 5 {
                continue;
            }
            let tf = fields(b, tensor);
            let float = tf.iter().any(|(f, w, _, v)| *f == 2 && *w == 0 && *v == 1);
            if let Some((_, _, raw, _)) = tf.iter().find(|(f, w, _, _)| *f == 9 && *w == 2) {
                if float {
                    weights.push(raw.clone());
                }
            }
        }
    }
    weights.sort_by_key(|r| r.start);
    let mut out = Vec::new();
    let mut at = 0;
    for w in weights {
        if w.start > at {
            out.push(at..w.start);
        }
        at = at.max(w.end);
    }
    if at < b.len() {
        out.push(at..b.len());
    }
    out
}

/// How one case ended.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// Every stage refused it; the label says the first error's kind.
    Error(String),
    /// It loaded (and ran) to a well-formed result.
    Result,
}

/// Runs `case` on a worker thread under [`CASE_LIMIT`]; a panic that reaches this function or
/// a hang is returned as `Err` naming the mutation.
fn guarded<F>(what: &str, case: F) -> Result<Outcome, String>
where
    F: FnOnce() -> Result<Outcome, String> + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(case));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(CASE_LIMIT) {
        Ok(Ok(r)) => {
            let _ = worker.join();
            r.map_err(|e| format!("{what}: {e}"))
        }
        Ok(Err(payload)) => Err(format!(
            "{what}: a panic escaped: {}",
            vmunet_runtime::panic_message(payload.as_ref())
        )),
        Err(_) => Err(format!("{what}: no answer within {CASE_LIMIT:?} (hang)")),
    }
}

fn error_kind(e: &RuntimeError) -> String {
    match e {
        RuntimeError::Io { .. } => "io",
        RuntimeError::NotOnnx { .. } => "not-onnx",
        RuntimeError::Malformed { .. } => "malformed",
        RuntimeError::Shape { .. } => "shape",
        RuntimeError::Panicked { .. } => "contained-panic",
        RuntimeError::Poisoned { .. } => "poisoned",
        RuntimeError::Backend { .. } => "backend",
    }
    .to_string()
}

/// Checks a runtime's answer for the golden input: an error naming the file, or logits of the
/// model's output shape.
fn check_run(
    r: Result<vmunet_data::Array, RuntimeError>,
    path: &Path,
    runtime: &str,
) -> Result<Option<String>, String> {
    match r {
        Ok(y) => {
            if y.shape.iter().product::<usize>() != y.data.len() || y.data.is_empty() {
                return Err(format!("{runtime}: inconsistent result {:?}", y.shape));
            }
            Ok(None)
        }
        Err(e) => {
            let msg = e.to_string();
            // Shape and back-end errors come from the run, whose caller names the file.
            if !matches!(e, RuntimeError::Shape { .. } | RuntimeError::Backend { .. })
                && !msg.contains(&path.display().to_string())
            {
                return Err(format!("{runtime}: error does not name the file: {msg}"));
            }
            Ok(Some(format!("{runtime}:{}", error_kind(&e))))
        }
    }
}

/// One mutated ONNX file through `ModelFile::read`, tract and (when configured) ONNX Runtime.
fn onnx_case(path: PathBuf, input: vmunet_data::Array, ort: bool) -> Result<Outcome, String> {
    let mut errors = Vec::new();
    if let Err(e) = vmunet_runtime::ModelFile::read(&path) {
        if !e.to_string().contains(&path.display().to_string()) {
            return Err(format!(
                "ModelFile::read: error does not name the file: {e}"
            ));
        }
        errors.push(format!("read:{}", error_kind(&e)));
    }
    match vmunet_runtime::TractRuntime::open(&path) {
        Ok(mut rt) => {
            let first = rt.run(&input);
            let panicked = matches!(first, Err(RuntimeError::Panicked { .. }));
            errors.extend(check_run(first, &path, "tract")?);
            if panicked {
                match rt.run(&input) {
                    Err(RuntimeError::Poisoned { .. }) => {}
                    other => return Err(format!("tract ran again after a panic: {other:?}")),
                }
            }
        }
        Err(e) => errors.extend(check_run(Err(e), &path, "tract-open")?),
    }
    if ort {
        let opts = vmunet_runtime::OrtOptions::default();
        match vmunet_runtime::OrtRuntime::open(&path, &opts) {
            Ok(mut rt) => errors.extend(check_run(rt.run(&input), &path, "ort")?),
            Err(e) => errors.extend(check_run(Err(e), &path, "ort-open")?),
        }
    }
    Ok(match errors.first() {
        None => Outcome::Result,
        Some(_) => Outcome::Error(errors.join(",")),
    })
}

struct Tally {
    kind: &'static str,
    cases: usize,
    errors: usize,
    results: usize,
    by_error: BTreeMap<String, usize>,
}

impl Tally {
    fn new(kind: &'static str) -> Self {
        Self {
            kind,
            cases: 0,
            errors: 0,
            results: 0,
            by_error: BTreeMap::new(),
        }
    }
    fn add(&mut self, o: &Outcome) {
        self.cases += 1;
        match o {
            Outcome::Result => self.results += 1,
            Outcome::Error(k) => {
                self.errors += 1;
                *self.by_error.entry(k.clone()).or_default() += 1;
            }
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} cases, {} errors, {} results",
            self.kind, self.cases, self.errors, self.results
        )
    }
}

/// Feeds `muts` of `original` (written to `dir/name`) to `case`, collecting failures.
fn run_all(
    tally: &mut Tally,
    failures: &mut Vec<String>,
    dir: &Path,
    name: &str,
    original: &[u8],
    muts: &[Mutation],
    case: impl Fn(PathBuf) -> Box<dyn FnOnce() -> Result<Outcome, String> + Send>,
) -> Vec<(Mutation, Outcome)> {
    let mut seen = Vec::new();
    for (i, m) in muts.iter().enumerate() {
        let path = dir.join(format!("{i:03}-{name}"));
        std::fs::write(&path, m.apply(original)).expect("write mutated file");
        match guarded(&format!("{name}, {m}"), case(path.clone())) {
            Ok(o) => {
                tally.add(&o);
                seen.push((m.clone(), o));
            }
            Err(e) => failures.push(e),
        }
        let _ = std::fs::remove_file(&path);
    }
    seen
}

fn encode_images(dir: &Path) -> Vec<(&'static str, Vec<u8>)> {
    let img = image::RgbImage::from_fn(40, 30, |x, y| {
        image::Rgb([(x * 6) as u8, (y * 8) as u8, ((x + y) * 3) as u8])
    });
    let mut out = Vec::new();
    for (name, fmt) in [
        ("image.png", image::ImageFormat::Png),
        ("image.jpg", image::ImageFormat::Jpeg),
    ] {
        let p = dir.join(name);
        img.save_with_format(&p, fmt).expect("encode test image");
        out.push((name, std::fs::read(&p).expect("read test image")));
    }
    out
}

/// The checks every kind ends with: nothing failed, and some mutations were refused (a
/// corruption that is never noticed means the mutations did not reach the loader).
fn conclude(what: &str, start: Instant, tallies: &[Tally], failures: &[String], cli: &str) {
    let summary: Vec<String> = tallies.iter().map(ToString::to_string).collect();
    eprintln!(
        "mutation summary, {what} ({:.1} s): {}; vmunet forward: {cli}",
        start.elapsed().as_secs_f64(),
        summary.join("; ")
    );
    for t in tallies {
        eprintln!("  {}: {:?}", t.kind, t.by_error);
    }
    assert!(
        failures.is_empty(),
        "{} of the mutated cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for t in tallies {
        assert!(t.errors > 0, "{t}: no mutation was refused");
    }
}

/// Mutated copies of the golden model `name` (seed offset `k`) in tract and, when available,
/// ONNX Runtime; then `vmunet forward` on a few of them (three that decode but are refused, one
/// that does not decode).
fn onnx_models(name: &'static str, k: u64) {
    let start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let input = vmunet_data::read_npy(&golden("tiny-input.npy")).unwrap();
    let ort = std::env::var_os("ORT_DYLIB_PATH").is_some_and(|p| Path::new(&p).is_file());
    if !ort {
        eprintln!("SKIP: ONNX Runtime cases (ORT_DYLIB_PATH is not set; `make test` sets it)");
    }
    let mut failures = Vec::new();
    let original = std::fs::read(golden(name)).unwrap();
    let focus = onnx_structure(&original);
    let muts = mutations(original.len(), &focus, 150, 0x5eed_0000 + k);
    let mut tally = Tally::new(name);
    let seen = run_all(
        &mut tally,
        &mut failures,
        dir.path(),
        name,
        &original,
        &muts,
        |p| {
            let input = input.clone();
            Box::new(move || onnx_case(p, input, ort))
        },
    );
    // For the binary: mutations that decode but that tract refuses (validation or a contained
    // panic), and one that fails to decode.
    let mut cli_candidates: Vec<(String, Vec<u8>)> = Vec::new();
    let (mut decodable, mut undecodable) = (0, 0);
    for (m, o) in &seen {
        let Outcome::Error(e) = o else { continue };
        let not_onnx = e.contains("read:not-onnx");
        let slot = if not_onnx {
            &mut undecodable
        } else {
            &mut decodable
        };
        if *slot < if not_onnx { 1 } else { 3 } {
            *slot += 1;
            cli_candidates.push((format!("{name}, {m}"), m.apply(&original)));
        }
    }
    let cli = cli_checks(dir.path(), &cli_candidates, &mut failures);
    conclude(name, start, &[tally], &failures, &cli);
}

#[test]
fn malformed_scan_form_models_never_panic_hang_or_leave_partial_output() {
    onnx_models("tiny-scan.onnx", 0);
}

#[test]
fn malformed_custom_form_models_never_panic_hang_or_leave_partial_output() {
    onnx_models("tiny-custom.onnx", 1);
}

#[test]
fn malformed_checkpoints_never_panic_or_hang() {
    let start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let bpk = std::fs::read(golden("tiny.bpk")).unwrap();
    let mut tally = Tally::new("tiny.bpk");
    run_all(
        &mut tally,
        &mut failures,
        dir.path(),
        "tiny.bpk",
        &bpk,
        &mutations(bpk.len(), &[0..bpk.len().min(4096)], 100, 0xb9c),
        |p| {
            Box::new(move || {
                let device = Default::default();
                match vmunet_model::checkpoint::load::<vmunet_model::CpuBackend>(&p, &device) {
                    Ok(_) => Ok(Outcome::Result),
                    Err(e) => Ok(Outcome::Error(format!("checkpoint:{}", short(&e)))),
                }
            })
        },
    );
    conclude("checkpoints", start, &[tally], &failures, "not run");
}

#[test]
fn malformed_arrays_never_panic_or_hang() {
    let start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let npy = std::fs::read(golden("tiny-input.npy")).unwrap();
    let mut tally = Tally::new("tiny-input.npy");
    run_all(
        &mut tally,
        &mut failures,
        dir.path(),
        "tiny-input.npy",
        &npy,
        &mutations(npy.len(), &[0..128], 100, 0x9e7),
        |p| {
            Box::new(move || match vmunet_data::read_npy(&p) {
                Ok(a) if a.shape.iter().product::<usize>() == a.data.len() => Ok(Outcome::Result),
                Ok(a) => Err(format!("inconsistent array {:?}", a.shape)),
                Err(e) => Ok(Outcome::Error(format!("npy:{}", short(&e)))),
            })
        },
    );
    conclude("arrays", start, &[tally], &failures, "not run");
}

#[test]
fn malformed_images_never_panic_or_hang() {
    let start = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut tallies = Vec::new();
    for (k, (name, bytes)) in encode_images(dir.path()).into_iter().enumerate() {
        let mut tally = Tally::new(if k == 0 { "image.png" } else { "image.jpg" });
        let focus = [0..bytes.len().min(700)];
        run_all(
            &mut tally,
            &mut failures,
            dir.path(),
            name,
            &bytes,
            &mutations(bytes.len(), &focus, 100, 0x1a6 + k as u64),
            |p| {
                Box::new(move || match vmunet_data::load_image(&p) {
                    Ok(img) if img.width() > 0 && img.height() > 0 => Ok(Outcome::Result),
                    Ok(img) => Err(format!("empty image {}x{}", img.width(), img.height())),
                    Err(e) => Ok(Outcome::Error(format!("image:{}", short(&e)))),
                })
            },
        );
        tallies.push(tally);
    }
    conclude("images", start, &tallies, &failures, "not run");
}

/// The first words of an error (its kind), for the summary.
fn short(e: &dyn std::error::Error) -> String {
    let s = e.to_string();
    let s = s.rsplit(": ").next().unwrap_or(&s).to_string();
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// `vmunet forward --runtime tract` on mutated models: non-zero exit, an error naming the
/// file, no output and no temporary file left behind.
fn cli_checks(dir: &Path, cases: &[(String, Vec<u8>)], failures: &mut Vec<String>) -> String {
    let Some(bin) = std::env::var_os("VMUNET_BIN").map(PathBuf::from) else {
        eprintln!(
            "SKIP: vmunet forward on mutated models (VMUNET_BIN is not set; `make test` sets it)"
        );
        return "skipped".into();
    };
    assert!(
        !cases.is_empty(),
        "no mutated model was picked for the binary"
    );
    let mut checked = 0;
    for (i, (what, bytes)) in cases.iter().enumerate() {
        let out_dir = dir.join(format!("cli-{i}"));
        std::fs::create_dir_all(&out_dir).unwrap();
        let model = out_dir.join("mutated.onnx");
        std::fs::write(&model, bytes).unwrap();
        let output = out_dir.join("out.npy");
        let o = Command::new(&bin)
            .args(["forward", "--runtime", "tract", "--model"])
            .arg(&model)
            .arg("--input")
            .arg(golden("tiny-input.npy"))
            .arg("--output")
            .arg(&output)
            .output()
            .expect("spawn vmunet");
        let err = String::from_utf8_lossy(&o.stderr);
        let left: Vec<String> = std::fs::read_dir(&out_dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "mutated.onnx")
            .collect();
        if o.status.success() {
            failures.push(format!("vmunet forward on {what}: exit 0\n{err}"));
        } else if !err.contains(&model.display().to_string()) {
            failures.push(format!(
                "vmunet forward on {what}: error does not name the file: {err}"
            ));
        } else if err.contains("panicked at") && !err.contains("tract panicked while") {
            failures.push(format!(
                "vmunet forward on {what}: uncontained panic: {err}"
            ));
        }
        if !left.is_empty() {
            failures.push(format!("vmunet forward on {what}: left files {left:?}"));
        }
        checked += 1;
    }
    format!("{checked} mutated models refused")
}
