//! `vmunet serve --watch IN --out OUT`: the watch-folder segmentation service.
//!
//! Every image that appears in `IN` (and those already there at start) is segmented once:
//! `OUT/STEM_mask.png`, `OUT/STEM_overlay.png` and `OUT/STEM.json` (model SHA-256, runtime,
//! provider, timings, lesion area), each written durably (temporary file, fsync, rename). An
//! image that cannot be decoded or segmented is moved to `OUT/failed/` beside a
//! `NAME.reason.txt`, and the service goes on.
//!
//! Exactly once, across `kill -9` and power loss: the journal (`OUT/.vmunet/journal.jsonl`,
//! see [`journal`]) records `started` before the first output byte and `done` after the last
//! output is durable. At start, temporary files of a crashed run are removed, and an image
//! left `started` is either found complete (its record names its SHA-256; `done` is
//! appended, nothing is redone) or processed again from scratch into the same names. Input
//! images are never modified or deleted (failed ones are moved).
//!
//! Also: `OUT/status.json` (+ optional HTTP health endpoint, [`status`]), `OUT/audit.jsonl`
//! (one fsynced line per image: what, by which model, outcome), structured logs on standard
//! error ([`log`]), graceful stop on SIGTERM / SIGINT (the image in hand is finished), and
//! one service per output folder (a lock file).

pub mod journal;
pub mod log;
pub mod status;
pub mod watch;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use image::DynamicImage;
use serde::Serialize;
use serde_json::json;
use vmunet_data::{decode_image, is_image_file, output_stem, overlay};
use vmunet_runtime::{Runtime, RuntimeError, Segmenter, SegmenterOptions, Session, SessionOptions};

use crate::fsutil::{free_name, move_durable, remove_stale_temporaries, write_output};
use crate::hash::{sha256_file, sha256_hex};
use crate::{failpoint, DeployError};
use journal::{Event, Journal, Key};
use log::Log;
use status::{LastImage, Status, StatusBoard};
use watch::{Ready, Tracker, Watcher};

/// Set to stop the service after the image in hand.
pub type StopFlag = Arc<AtomicBool>;

/// A stop flag raised by SIGTERM and SIGINT.
pub fn stop_on_signals() -> std::io::Result<StopFlag> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&flag))?;
    }
    Ok(flag)
}

/// How the service runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Folder watched for images (not recursive).
    pub watch: PathBuf,
    /// Output folder.
    pub out: PathBuf,
    /// The ONNX model.
    pub model: PathBuf,
    /// Runtime, profile, threads.
    pub session: SessionOptions,
    /// Model input size (default: the model's / profile's).
    pub size: Option<usize>,
    /// Foreground threshold.
    pub threshold: f32,
    /// How long a file's size and time must hold when no close event is seen.
    pub settle: Duration,
    /// How often the folder is listed when nothing happens.
    pub poll_interval: Duration,
    /// Poll instead of using file-system events.
    pub poll: bool,
    /// Exit once the folder is drained (batch mode), instead of watching on.
    pub once: bool,
    /// Serve `/health/live`, `/health/ready`, `/status` here.
    pub health: Option<SocketAddr>,
    /// Log format.
    pub log: Log,
}

/// What a service run did.
#[derive(Debug, Clone, Default)]
pub struct ServeSummary {
    /// Images segmented in this run.
    pub done: usize,
    /// Images set aside in this run.
    pub failed: usize,
    /// Images found already processed.
    pub skipped: usize,
    /// Images a crash interrupted that were found complete at start.
    pub recovered: usize,
    /// `inotify` or `polling`.
    pub watcher: &'static str,
    /// Arrival-to-mask seconds of each image done in this run.
    pub latencies: Vec<f64>,
    /// Model seconds of each image done in this run.
    pub inference: Vec<f64>,
    /// Wall seconds from the first arrival to the last mask.
    pub busy_seconds: f64,
}

/// Per-image record (`OUT/STEM.json`).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ImageRecord {
    /// File name in the watched folder.
    pub image: String,
    /// SHA-256 of its bytes.
    pub sha256: String,
    /// Displayed width.
    pub width: u32,
    /// Displayed height.
    pub height: u32,
    /// Model file.
    pub model: String,
    /// Model SHA-256.
    pub model_sha256: String,
    /// What ran it.
    pub runtime: String,
    /// Execution provider.
    pub provider: String,
    /// Model input (H, W).
    pub input_size: (usize, usize),
    /// Foreground threshold.
    pub threshold: f32,
    /// Seconds per stage.
    pub timings: ImageTimings,
    /// Lesion (foreground) area.
    pub lesion: Lesion,
    /// `STEM_mask.png`.
    pub mask: String,
    /// `STEM_overlay.png`.
    pub overlay: String,
    /// When the service first saw the file (UTC).
    pub arrived: String,
    /// When the mask was durable (UTC).
    pub finished: String,
    /// vmunet version.
    pub toolkit_version: String,
}

/// Seconds per stage of one image.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
pub struct ImageTimings {
    /// Reading and hashing the file.
    pub read: f64,
    /// Decoding.
    pub decode: f64,
    /// Preprocessing.
    pub preprocess: f64,
    /// The model.
    pub inference: f64,
    /// Activation, resize back, threshold.
    pub postprocess: f64,
    /// Encoding and durably writing the outputs.
    pub write: f64,
    /// From arrival (first seen) to the mask on disk, waiting included.
    pub latency: f64,
}

/// Foreground area of the mask.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
pub struct Lesion {
    /// Pixels.
    pub pixels: u64,
    /// Fraction of the image.
    pub fraction: f64,
}

struct Service<'a> {
    opts: &'a ServeOptions,
    seg: Segmenter,
    journal: Journal,
    tracker: Tracker,
    board: StatusBoard,
    audit: std::fs::File,
    audit_path: PathBuf,
    failed_dir: PathBuf,
    model_sha: String,
    runtime: String,
    provider: String,
    summary: ServeSummary,
    first_arrival: Option<Instant>,
    /// (image, sha256, outcome) already in the audit log (checked when a crash is recovered).
    audited: std::collections::HashSet<(String, String, String)>,
}

/// The audit line of an image done (`recovered`: found complete at start after a crash).
fn done_audit_line(
    key: &Key,
    stem: &str,
    record: &ImageRecord,
    recovered: bool,
) -> serde_json::Value {
    let mut v = json!({
        "time": crate::utc_timestamp(crate::unix_now()),
        "image": key.0,
        "sha256": key.1,
        "outcome": "done",
        "outputs": [record.mask, record.overlay, format!("{stem}.json")],
        "model": record.model,
        "model_sha256": record.model_sha256,
        "runtime": record.runtime,
        "provider": record.provider,
        "lesion_fraction": record.lesion.fraction,
    });
    if recovered {
        v["recovered"] = true.into();
    }
    v
}

fn png_bytes(img: &DynamicImage, path: &Path) -> Result<Vec<u8>, DeployError> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png)
        .map_err(|e| DeployError::invalid(path, format!("cannot encode PNG: {e}")))?;
    Ok(buf.into_inner())
}

/// Runs the service until `stop` is raised (or, with `once`, the folder is drained).
pub fn serve(opts: &ServeOptions, stop: StopFlag) -> Result<ServeSummary, DeployError> {
    let log = opts.log;
    if !opts.watch.is_dir() {
        return Err(DeployError::invalid(
            &opts.watch,
            "the watched folder does not exist",
        ));
    }
    std::fs::create_dir_all(&opts.out).map_err(DeployError::io(&opts.out))?;
    let same = |a: &Path, b: &Path| matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y);
    if same(&opts.watch, &opts.out) {
        return Err(DeployError::invalid(
            &opts.out,
            "the output folder is the watched folder: masks would be segmented again",
        ));
    }
    let state_dir = opts.out.join(".vmunet");
    let failed_dir = opts.out.join("failed");
    for d in [&state_dir, &failed_dir] {
        std::fs::create_dir_all(d).map_err(DeployError::io(d))?;
    }
    // One service per output folder.
    let lock_path = state_dir.join("lock");
    let mut lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .read(true)
        .open(&lock_path)
        .map_err(DeployError::io(&lock_path))?;
    if let Err(e) = lock.try_lock() {
        let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
        return Err(DeployError::invalid(
            &opts.out,
            format!(
                "another vmunet serve{} is writing here ({e})",
                holder
                    .trim()
                    .parse::<u32>()
                    .map(|p| format!(" (pid {p})"))
                    .unwrap_or_default()
            ),
        ));
    }
    let _ = lock.set_len(0);
    let _ = write!(lock, "{}", std::process::id());

    let mut removed = 0;
    for d in [&opts.out, &failed_dir, &state_dir] {
        removed += remove_stale_temporaries(d)?;
    }
    let journal = Journal::open(&state_dir.join("journal.jsonl"))?;
    if journal.repaired_bytes > 0 || removed > 0 {
        log.warn(
            "recovering from an interrupted run",
            json!({"torn_journal_bytes": journal.repaired_bytes, "temporary_files_removed": removed}),
        );
    }
    let model_sha = sha256_file(&opts.model)?;
    let started = crate::utc_timestamp(crate::unix_now());
    let (done0, failed0) = journal.counts();
    let board = StatusBoard::new(
        &opts.out.join("status.json"),
        Status {
            pid: std::process::id(),
            state: "starting".into(),
            live: true,
            ready: false,
            model: opts.model.display().to_string(),
            model_sha256: model_sha.clone(),
            model_loaded: false,
            runtime: String::new(),
            provider: String::new(),
            watch: opts.watch.display().to_string(),
            watcher: String::new(),
            done: done0,
            failed: failed0,
            queued: 0,
            last: None,
            last_error: None,
            started: started.clone(),
            updated: started,
            version: crate::TOOLKIT_VERSION.into(),
        },
    );
    board.update(|_| {})?;
    if let Some(addr) = opts.health {
        let bound = board.serve_http(addr)?;
        log.info("health endpoint", json!({"addr": bound.to_string()}));
    }
    let session = Session::open(&opts.model, &opts.session);
    let session = match session {
        Ok(s) => s,
        Err(e) => {
            let msg = e.to_string();
            board.update(|s| {
                s.state = "error".into();
                s.live = false;
                s.last_error = Some(msg);
            })?;
            return Err(e.into());
        }
    };
    let seg = Segmenter::new(
        session,
        &SegmenterOptions {
            size: opts.size,
            threshold: opts.threshold,
        },
    )?;
    let runtime = seg.session().description();
    let provider = seg.session().provider().to_string();
    let audit_path = opts.out.join("audit.jsonl");
    journal::cut_torn_tail(&audit_path)?;
    let audited = journal::read_lines(&audit_path)?
        .into_iter()
        .filter_map(|v| {
            let f = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
            Some((f("image")?, f("sha256")?, f("outcome")?))
        })
        .collect();
    let audit = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&audit_path)
        .map_err(DeployError::io(&audit_path))?;
    let mut svc = Service {
        opts,
        seg,
        journal,
        tracker: Tracker::default(),
        board,
        audit,
        audit_path,
        failed_dir,
        model_sha,
        runtime,
        provider,
        summary: ServeSummary::default(),
        first_arrival: None,
        audited,
    };
    svc.recover()?;
    let watcher = Watcher::new(&opts.watch, opts.poll);
    svc.summary.watcher = watcher.mode;
    if let Some(why) = &watcher.fallback_reason {
        log.warn("polling the folder", json!({"reason": why}));
    }
    let (h, w) = svc.seg.input_size();
    svc.board.update(|s| {
        s.state = "ready".into();
        s.ready = true;
        s.model_loaded = true;
        s.runtime = svc.runtime.clone();
        s.provider = svc.provider.clone();
        s.watcher = watcher.mode.into();
    })?;
    log.info(
        "ready",
        json!({
            "watch": opts.watch.display().to_string(),
            "out": opts.out.display().to_string(),
            "model": opts.model.display().to_string(),
            "model_sha256": svc.model_sha,
            "runtime": svc.runtime,
            "provider": svc.provider,
            "input": format!("{h}x{w}"),
            "watcher": watcher.mode,
        }),
    );
    let result = svc.run(&watcher, &stop);
    let stopping = stop.load(Ordering::SeqCst);
    let final_state = match &result {
        Ok(()) => "stopped",
        Err(_) => "error",
    };
    let err_text = result.as_ref().err().map(|e| e.to_string());
    let _ = svc.board.update(|s| {
        s.state = final_state.into();
        s.live = false;
        s.ready = false;
        s.queued = 0;
        if let Some(e) = err_text {
            s.last_error = Some(e);
        }
    });
    result?;
    log.info(
        if stopping { "stopped on signal" } else { "stopped: folder drained" },
        json!({"done": svc.summary.done, "failed": svc.summary.failed, "skipped": svc.summary.skipped}),
    );
    Ok(svc.summary)
}

impl Service<'_> {
    fn log(&self) -> Log {
        self.opts.log
    }

    /// Settles images a crash left `started`: complete outputs get their `done`, a failed
    /// image already moved gets its `failed`, a vanished one is recorded as such; the rest
    /// are processed again when the folder is listed.
    fn recover(&mut self) -> Result<(), DeployError> {
        for (key, stem) in self.journal.in_progress() {
            let stem = stem.unwrap_or_else(|| output_stem(Path::new(&key.0)));
            if let Some(record) = self.complete_record(&stem, &key.1) {
                self.audit_once(&key, "done", done_audit_line(&key, &stem, &record, true))?;
                self.journal
                    .append(Event::Done, &key, Some(&stem), Some("recovered"))?;
                self.summary.recovered += 1;
                self.log().info(
                    "recovered: outputs were complete",
                    json!({"image": key.0, "sha256": key.1}),
                );
                continue;
            }
            let input = self.opts.watch.join(&key.0);
            let moved = self.failed_dir.join(&key.0);
            let same_content = |p: &Path| sha256_file(p).ok().as_deref() == Some(key.1.as_str());
            if !input.exists() && moved.exists() && same_content(&moved) {
                let line = json!({
                    "time": crate::utc_timestamp(crate::unix_now()),
                    "image": key.0,
                    "sha256": key.1,
                    "outcome": "failed",
                    "recovered": true,
                    "moved_to": format!("failed/{}", key.0),
                    "model_sha256": self.model_sha,
                });
                self.audit_once(&key, "failed", line)?;
                self.journal
                    .append(Event::Failed, &key, None, Some("recovered"))?;
                continue;
            }
            if !input.exists() || !same_content(&input) {
                self.journal.append(
                    Event::Failed,
                    &key,
                    None,
                    Some("the image left the watched folder before it was processed"),
                )?;
                self.log().warn(
                    "an interrupted image is gone from the folder",
                    json!({"image": key.0}),
                );
            }
        }
        Ok(())
    }

    /// The record of `stem` when it names `sha` and both images are in place (the record is
    /// written last, so this means the outputs are complete).
    fn complete_record(&self, stem: &str, sha: &str) -> Option<ImageRecord> {
        let out = &self.opts.out;
        let record: ImageRecord = std::fs::read(out.join(format!("{stem}.json")))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())?;
        (record.sha256 == sha
            && out.join(format!("{stem}_mask.png")).is_file()
            && out.join(format!("{stem}_overlay.png")).is_file())
        .then_some(record)
    }

    fn run(&mut self, watcher: &Watcher, stop: &StopFlag) -> Result<(), DeployError> {
        let mut heartbeat = Instant::now();
        loop {
            if stop.load(Ordering::SeqCst) {
                self.board.update(|s| {
                    s.state = "stopping".into();
                    s.ready = false;
                })?;
                return Ok(());
            }
            let (ready, ignored) = self
                .tracker
                .scan(&self.opts.watch, self.opts.settle, is_image_file)
                .map_err(DeployError::io(&self.opts.watch))?;
            for p in ignored {
                self.log().warn(
                    "ignored: not an image file",
                    json!({"file": p.display().to_string()}),
                );
            }
            let drained = ready.is_empty() && self.tracker.pending() == 0;
            for r in ready {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                if self.first_arrival.is_none() {
                    self.first_arrival = Some(r.arrived);
                }
                self.handle(r)?;
                heartbeat = Instant::now();
            }
            let queued = self.tracker.pending();
            if heartbeat.elapsed() >= Duration::from_secs(5) {
                self.board.update(|s| s.queued = queued)?;
                heartbeat = Instant::now();
            }
            if self.opts.once && drained {
                return Ok(());
            }
            let timeout = if self.tracker.pending() > 0 {
                (self.opts.settle / 4).clamp(Duration::from_millis(10), Duration::from_millis(100))
            } else {
                self.opts.poll_interval.min(Duration::from_millis(250))
            };
            let (complete, _) = watcher.wait(timeout);
            self.tracker.mark_complete(&complete);
        }
    }

    fn choose_stem(&self, key: &Key) -> String {
        let base = output_stem(Path::new(&key.0));
        if self.journal.stem_taken(&base, key) {
            format!("{base}-{}", &key.1[..8])
        } else {
            base
        }
    }

    /// Processes one ready file. Errors are the service's own (cannot write the output
    /// folder): the caller stops.
    fn handle(&mut self, r: Ready) -> Result<(), DeployError> {
        let t0 = Instant::now();
        let bytes = match std::fs::read(&r.path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.tracker.forget(&r.path);
                return Ok(());
            }
            Err(e) => {
                self.log().warn(
                    "cannot read; will retry",
                    json!({"image": r.name, "error": e.to_string()}),
                );
                return Ok(());
            }
        };
        let meta = std::fs::metadata(&r.path).ok();
        if bytes.len() as u64 != r.size || meta.as_ref().map(|m| m.len()) != Some(r.size) {
            // Still changing: listed again next pass.
            return Ok(());
        }
        let mtime = meta.and_then(|m| m.modified().ok());
        let key: Key = (r.name.clone(), sha256_hex(&bytes));
        let t_read = t0.elapsed().as_secs_f64();
        let stem = match self.journal.last(&key) {
            Some((Event::Done, _)) => {
                self.tracker.settle(&r.path, r.size, mtime);
                self.summary.skipped += 1;
                self.log().info(
                    "skipped: already processed",
                    json!({"image": r.name, "sha256": key.1}),
                );
                return Ok(());
            }
            Some((Event::Failed, _)) => {
                return self.fail(&r, &key, "this image (same name and content) failed before");
            }
            Some((Event::Started, stem)) => {
                let stem = stem
                    .map(str::to_string)
                    .unwrap_or_else(|| self.choose_stem(&key));
                self.log().info(
                    "processing again after an interrupted run",
                    json!({"image": r.name}),
                );
                stem
            }
            None => {
                let stem = self.choose_stem(&key);
                self.journal
                    .append(Event::Started, &key, Some(&stem), None)?;
                stem
            }
        };
        failpoint::hit("after-start");
        let t1 = Instant::now();
        let img = match decode_image(&r.path, &bytes) {
            Ok(img) => img,
            Err(e) => return self.fail(&r, &key, &e.to_string()),
        };
        let t_decode = t1.elapsed().as_secs_f64();
        let seg = match self.seg.segment(&img) {
            Ok(s) => s,
            Err(e) => {
                let fatal = matches!(
                    e,
                    RuntimeError::Panicked { .. } | RuntimeError::Poisoned { .. }
                );
                self.fail(&r, &key, &format!("the model failed on it: {e}"))?;
                if fatal {
                    return Err(e.into());
                }
                return Ok(());
            }
        };
        let t2 = Instant::now();
        let out = &self.opts.out;
        let mask_name = format!("{stem}_mask.png");
        let overlay_name = format!("{stem}_overlay.png");
        let mask_path = out.join(&mask_name);
        let overlay_path = out.join(&overlay_name);
        let mask_png = png_bytes(&DynamicImage::ImageLuma8(seg.mask.to_image()), &mask_path)?;
        let overlay_png = png_bytes(
            &DynamicImage::ImageRgb8(overlay(&img, &seg.mask)),
            &overlay_path,
        )?;
        write_output(&mask_path, &mask_png)?;
        write_output(&overlay_path, &overlay_png)?;
        failpoint::hit("before-json");
        let pixels = seg.mask.data.iter().filter(|&&c| c > 0).count() as u64;
        let now = crate::unix_now();
        let latency = r.arrived.elapsed().as_secs_f64();
        let arrived_unix = now - latency;
        let record = ImageRecord {
            image: r.name.clone(),
            sha256: key.1.clone(),
            width: img.width(),
            height: img.height(),
            model: self.opts.model.display().to_string(),
            model_sha256: self.model_sha.clone(),
            runtime: self.runtime.clone(),
            provider: self.provider.clone(),
            input_size: self.seg.input_size(),
            threshold: self.opts.threshold,
            timings: ImageTimings {
                read: t_read,
                decode: t_decode,
                preprocess: seg.timing.preprocess,
                inference: seg.timing.inference,
                postprocess: seg.timing.postprocess,
                write: t2.elapsed().as_secs_f64(),
                latency,
            },
            lesion: Lesion {
                pixels,
                fraction: seg.mask.foreground_fraction(),
            },
            mask: mask_name,
            overlay: overlay_name,
            arrived: crate::utc_timestamp(arrived_unix),
            finished: crate::utc_timestamp(now),
            toolkit_version: crate::TOOLKIT_VERSION.into(),
        };
        let json_path = out.join(format!("{stem}.json"));
        let text = serde_json::to_string_pretty(&record)
            .map_err(|e| DeployError::invalid(&json_path, format!("cannot encode: {e}")))?;
        write_output(&json_path, format!("{text}\n").as_bytes())?;
        failpoint::hit("before-done");
        // The audit line first: a crash before `done` is recovered without a second line.
        self.audit_once(&key, "done", done_audit_line(&key, &stem, &record, false))?;
        self.journal.append(Event::Done, &key, Some(&stem), None)?;
        self.tracker.settle(&r.path, r.size, mtime);
        self.summary.done += 1;
        self.summary.latencies.push(latency);
        self.summary.inference.push(seg.timing.inference);
        if let Some(first) = self.first_arrival {
            self.summary.busy_seconds = first.elapsed().as_secs_f64();
        }
        let (done, failed) = self.journal.counts();
        let queued = self.tracker.pending();
        let name = r.name.clone();
        self.board.update(|s| {
            s.done = done;
            s.failed = failed;
            s.queued = queued;
            s.last = Some(LastImage {
                name,
                outcome: "done".into(),
                time: crate::utc_timestamp(now),
            });
        })?;
        self.log().info(
            "segmented",
            json!({
                "image": r.name,
                "size": format!("{}x{}", record.width, record.height),
                "lesion_fraction": (record.lesion.fraction * 1e4).round() / 1e4,
                "inference_s": (seg.timing.inference * 1e3).round() / 1e3,
                "latency_s": (latency * 1e3).round() / 1e3,
                "mask": mask_path.display().to_string(),
            }),
        );
        Ok(())
    }

    /// Sets an image aside: reason file, image moved to `failed/`, journal, audit.
    fn fail(&mut self, r: &Ready, key: &Key, reason: &str) -> Result<(), DeployError> {
        let target = free_name(&self.failed_dir, &r.name);
        let reason_path = self.failed_dir.join(format!("{target}.reason.txt"));
        let now = crate::unix_now();
        let text = format!(
            "image: {}\nsha256: {}\ntime: {}\nmodel: {} (sha256 {})\nreason: {reason}\n",
            r.name,
            key.1,
            crate::utc_timestamp(now),
            self.opts.model.display(),
            self.model_sha
        );
        write_output(&reason_path, text.as_bytes())?;
        failpoint::hit("before-failed-move");
        move_durable(&r.path, &self.failed_dir.join(&target))?;
        let line = json!({
            "time": crate::utc_timestamp(now),
            "image": r.name,
            "sha256": key.1,
            "outcome": "failed",
            "moved_to": format!("failed/{target}"),
            "reason": reason,
            "model": self.opts.model.display().to_string(),
            "model_sha256": self.model_sha,
        });
        self.audit_once(key, "failed", line)?;
        self.journal
            .append(Event::Failed, key, None, Some(reason))?;
        self.tracker.forget(&r.path);
        self.summary.failed += 1;
        let (done, failed) = self.journal.counts();
        let name = r.name.clone();
        let reason_s = reason.to_string();
        self.board.update(|s| {
            s.done = done;
            s.failed = failed;
            s.last = Some(LastImage {
                name,
                outcome: "failed".into(),
                time: crate::utc_timestamp(now),
            });
            s.last_error = Some(reason_s);
        })?;
        self.log().warn(
            "failed: moved aside",
            json!({"image": r.name, "to": format!("failed/{target}"), "reason": reason}),
        );
        Ok(())
    }

    /// Appends `v` to the audit log unless it already has a line for this image and outcome
    /// (a crash between the audit line and the journal).
    fn audit_once(
        &mut self,
        key: &Key,
        outcome: &str,
        v: serde_json::Value,
    ) -> Result<(), DeployError> {
        let id = (key.0.clone(), key.1.clone(), outcome.to_string());
        if self.audited.contains(&id) {
            return Ok(());
        }
        let mut line = v.to_string();
        line.push('\n');
        self.audit
            .write_all(line.as_bytes())
            .and_then(|_| self.audit.sync_data())
            .map_err(DeployError::io(&self.audit_path))?;
        self.audited.insert(id);
        Ok(())
    }
}
