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
//!
//! Inside: `setup` (folders, lock, status board, model), `recovery` (start after a crash),
//! `handle` (one image), `record` (what is written about an image), `audit` (the audit log),
//! `worker` (the state the service holds while it runs) and, here, the loop.

mod audit;
mod handle;
pub mod journal;
pub mod log;
mod options;
mod prefetch;
mod record;
mod recovery;
mod setup;
pub mod status;
pub mod watch;
mod worker;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::ScopedJoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;
use vmunet_data::is_image_file;

use crate::DeployError;
use handle::{Images, Staged};
use prefetch::Prefetched;
use watch::Watcher;
use worker::Service;

/// Images whose outputs may be being written at once (each on its own thread, beside the
/// model's): two keep both cores of a small board busy while a full-size overlay is encoded.
const WRITERS: usize = 2;

/// An image's outputs as the writer thread leaves them.
type Written = (Staged, Result<Images, DeployError>);

pub use options::{ServeOptions, ServeSummary};
pub use record::{ImageRecord, ImageTimings, Lesion};

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

/// Runs the service until `stop` is raised (or, with `once`, the folder is drained).
pub fn serve(opts: &ServeOptions, stop: StopFlag) -> Result<ServeSummary, DeployError> {
    setup::keep_freed_memory();
    // The lock is held until this function returns.
    let folders = setup::prepare_folders(opts)?;
    let journal = recovery::open_after_crash(
        &[&opts.out, &folders.failed, &folders.state],
        &folders.state.join("journal.jsonl"),
        opts.log,
    )?;
    let model_sha = vmunet_fs::sha256_file(&opts.model)?;
    let board = setup::open_board(opts, &model_sha, &journal)?;
    let seg = setup::open_segmenter(opts, &board)?;
    let mut svc = Service::new(opts, seg, journal, board, &folders.failed, model_sha)?;
    svc.recover()?;
    let watcher = Watcher::new(&opts.watch, opts.poll);
    svc.announce_ready(&watcher)?;
    let result = svc.run(&watcher, &stop);
    let stopping = stop.load(Ordering::SeqCst);
    svc.show_final_state(&result);
    result?;
    opts.log.info(
        if stopping {
            "stopped on signal"
        } else {
            "stopped: folder drained"
        },
        json!({"done": svc.summary.done, "failed": svc.summary.failed, "skipped": svc.summary.skipped}),
    );
    drop(folders.lock);
    Ok(svc.summary)
}

impl Service<'_> {
    /// The folder is watched and the model loaded: board `ready`, a log line.
    fn announce_ready(&mut self, watcher: &Watcher) -> Result<(), DeployError> {
        self.summary.watcher = watcher.mode;
        if let Some(why) = &watcher.fallback_reason {
            self.log()
                .warn("polling the folder", json!({"reason": why}));
        }
        let (h, w) = self.seg.input_size();
        self.board.update(|s| {
            s.state = "ready".into();
            s.ready = true;
            s.model_loaded = true;
            s.runtime = self.runtime.clone();
            s.provider = self.provider.clone();
            s.watcher = watcher.mode.into();
        })?;
        let opts = self.opts;
        self.log().info(
            "ready",
            json!({
                "watch": opts.watch.display().to_string(),
                "out": opts.out.display().to_string(),
                "model": opts.model.display().to_string(),
                "model_sha256": self.model_sha,
                "runtime": self.runtime,
                "provider": self.provider,
                "input": format!("{h}x{w}"),
                "watcher": watcher.mode,
            }),
        );
        Ok(())
    }

    /// Lists the folder, handles what is ready, waits for events; until `stop` (or, with
    /// `once`, the folder is drained).
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
            // Several images in flight: while one goes through the model, the two before it
            // have their masks and overlays encoded and written, and the one after it is read
            // and decoded. Records, `done` and the status board follow the arrival order.
            let plan = self.seg.plan();
            let out = self.opts.out.clone();
            std::thread::scope(|s| -> Result<(), DeployError> {
                let mut ready = ready.into_iter().peekable();
                let mut next: Option<ScopedJoinHandle<'_, Prefetched>> = None;
                let mut writing: VecDeque<ScopedJoinHandle<'_, Written>> = VecDeque::new();
                while let Some(r) = ready.next() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let pre = next.take().and_then(|h| h.join().ok());
                    if let Some(n) = ready.peek() {
                        let path = n.path.clone();
                        next = Some(s.spawn(move || prefetch::prefetch(path, plan)));
                    }
                    if self.first_arrival.is_none() {
                        self.first_arrival = Some(r.arrived);
                    }
                    let staged = match self.stage(r, pre) {
                        Ok(staged) => staged,
                        Err(e) => {
                            // The images already written still get their records first.
                            while let Some(w) = writing.pop_front() {
                                self.complete_written(w)?;
                            }
                            return Err(e);
                        }
                    };
                    if writing.len() >= WRITERS {
                        if let Some(w) = writing.pop_front() {
                            self.complete_written(w)?;
                        }
                    }
                    if let Some(st) = staged {
                        let out = &out;
                        writing.push_back(s.spawn(move || {
                            let images = st.write_images(out);
                            (st, images)
                        }));
                    }
                    heartbeat = Instant::now();
                }
                while let Some(w) = writing.pop_front() {
                    self.complete_written(w)?;
                }
                Ok(())
            })?;
            let queued = self.tracker.pending();
            if heartbeat.elapsed() >= Duration::from_secs(5) {
                self.board.update(|s| s.queued = queued)?;
                heartbeat = Instant::now();
            }
            if self.opts.once && drained {
                return Ok(());
            }
            self.wait(watcher);
        }
    }

    /// The second half of an image whose outputs were written on the writer thread.
    fn complete_written(&mut self, w: ScopedJoinHandle<'_, Written>) -> Result<(), DeployError> {
        match w.join() {
            Ok((staged, images)) => self.complete(staged, images),
            Err(_) => Err(DeployError::invalid(
                &self.opts.out,
                "the thread writing a mask and overlay panicked",
            )),
        }
    }

    /// Waits for file events (or the poll interval; briefly while files are settling).
    fn wait(&mut self, watcher: &Watcher) {
        let timeout = if self.tracker.pending() > 0 {
            (self.opts.settle / 4).clamp(Duration::from_millis(10), Duration::from_millis(100))
        } else {
            self.opts.poll_interval.min(Duration::from_millis(250))
        };
        let (complete, _) = watcher.wait(timeout);
        self.tracker.mark_complete(&complete);
    }

    /// The board's last word: `stopped`, or `error` with the error.
    fn show_final_state(&self, result: &Result<(), DeployError>) {
        let final_state = match result {
            Ok(()) => "stopped",
            Err(_) => "error",
        };
        let err_text = result.as_ref().err().map(|e| e.to_string());
        let _ = self.board.update(|s| {
            s.state = final_state.into();
            s.live = false;
            s.ready = false;
            s.queued = 0;
            if let Some(e) = err_text {
                s.last_error = Some(e);
            }
        });
    }
}
