//! One ready file, start to end: read and identify it (name and SHA-256), look it up in the
//! journal (`started` before the first output byte), decode and segment it, write the mask,
//! overlay and record durably, then the audit line, `done`, the status board and a log line.
//! An image that cannot be decoded or segmented is set aside in `failed/` with its reason.

use std::path::Path;
use std::time::{Instant, SystemTime};

use image::DynamicImage;
use serde_json::json;
use vmunet_data::{decode_image, output_stem};
use vmunet_fs::{failpoint, free_name, move_durable, sha256_hex, write_durable_output};
use vmunet_runtime::{OutputNames, RuntimeError, Segmentation};

use super::journal::{Event, ImageKey};
use super::prefetch::{Decoded, Prefetched};
use super::record::{
    done_audit_line, failed_audit_line, reason_text, ImageRecord, ImageTimings, Lesion,
};
use super::status::LastImage;
use super::watch::Ready;
use super::worker::Service;
use crate::DeployError;

/// A ready file read whole and identified.
pub(super) struct ReadFile {
    bytes: Vec<u8>,
    key: ImageKey,
    mtime: Option<SystemTime>,
    /// Seconds reading and hashing it took.
    read_seconds: f64,
    /// Decoded ahead of its turn (the prefetch thread), when it was.
    decoded: Option<Decoded>,
}

/// An image and what the model made of it.
pub(super) struct Processed {
    img: DynamicImage,
    seg: Segmentation,
    /// Seconds decoding it took.
    decode_seconds: f64,
}

/// The mask and overlay written, and the seconds encoding and writing them took.
pub(super) struct Images {
    mask: String,
    overlay: String,
    seconds: f64,
}

/// An image through the model, its outputs still to write: the handler's first half done.
pub(super) struct Staged {
    r: Ready,
    file: ReadFile,
    stem: String,
    processed: Processed,
}

impl Staged {
    /// Encodes and durably writes `STEM_mask.png` and `STEM_overlay.png` into `out` (the
    /// segmenter's one output path: [`vmunet_runtime::Segmentation::write_images`]). Touches
    /// nothing but those two files, so it may run on another thread while the next image is
    /// staged.
    pub(super) fn write_images(&self, out: &Path) -> Result<Images, DeployError> {
        let started = Instant::now();
        let names = OutputNames::new(&self.stem);
        let p = &self.processed;
        p.seg.write_images(&p.img, out, &names)?;
        Ok(Images {
            mask: names.mask(),
            overlay: names.overlay(),
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

impl Service<'_> {
    /// The first half of handling one ready file, with what the prefetch thread prepared for
    /// it, if anything: read, journal `started`, decode and segment. `None` when there is
    /// nothing to write (gone, still changing, done before, set aside). Errors are the
    /// service's own (cannot write the output folder): the caller stops.
    pub(super) fn stage(
        &mut self,
        r: Ready,
        pre: Option<Prefetched>,
    ) -> Result<Option<Staged>, DeployError> {
        let Some(mut file) = self.read(&r, pre) else {
            return Ok(None);
        };
        let Some(stem) = self.begin(&r, &file)? else {
            return Ok(None);
        };
        failpoint::hit("after-start");
        let decoded = file.decoded.take();
        let Some(processed) = self.process(&r, &file, decoded)? else {
            return Ok(None);
        };
        Ok(Some(Staged {
            r,
            file,
            stem,
            processed,
        }))
    }

    /// The second half, once the images are written ([`Staged::write_images`]): the record
    /// (last of the outputs), the audit line, `done`, the status board and a log line.
    pub(super) fn complete(
        &mut self,
        staged: Staged,
        images: Result<Images, DeployError>,
    ) -> Result<(), DeployError> {
        let images = images?;
        failpoint::hit("before-json");
        let Staged {
            r,
            file,
            stem,
            processed,
        } = staged;
        let record = self.write_record(&r, &file, &stem, &processed, images)?;
        failpoint::hit("before-done");
        self.finish(&r, &file, &stem, &record)
    }

    /// Reads the file whole and hashes it; `None` when it is gone, unreadable (retried) or
    /// still changing (listed again next pass).
    fn read(&mut self, r: &Ready, pre: Option<Prefetched>) -> Option<ReadFile> {
        let t0 = Instant::now();
        // What the prefetch thread read, if it read this file at the size found ready.
        let pre = pre.filter(|p| p.path == r.path).and_then(|p| {
            let (bytes, sha) = p.bytes?;
            (bytes.len() as u64 == r.size).then_some((bytes, sha, p.read_seconds, p.decoded))
        });
        let (bytes, sha, read_seconds, decoded) = match pre {
            Some(p) => p,
            None => match self.read_now(r) {
                Some(bytes) => {
                    let sha = sha256_hex(&bytes);
                    (bytes, sha, t0.elapsed().as_secs_f64(), None)
                }
                None => return None,
            },
        };
        let meta = std::fs::metadata(&r.path).ok();
        if bytes.len() as u64 != r.size || meta.as_ref().map(|m| m.len()) != Some(r.size) {
            return None;
        }
        let mtime = meta.and_then(|m| m.modified().ok());
        let key = ImageKey::new(r.name.clone(), sha);
        Some(ReadFile {
            bytes,
            key,
            mtime,
            read_seconds,
            decoded,
        })
    }

    /// Reads the file whole; `None` when it is gone or unreadable (retried).
    fn read_now(&mut self, r: &Ready) -> Option<Vec<u8>> {
        match std::fs::read(&r.path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.tracker.forget(&r.path);
                None
            }
            Err(e) => {
                self.log().warn(
                    "cannot read; will retry",
                    json!({"image": r.name, "error": e.to_string()}),
                );
                None
            }
        }
    }

    /// Looks the image up in the journal: the output stem to write when it is to be
    /// processed (`started` is journaled first for a new image), `None` when it was done
    /// (skipped) or failed before (set aside again).
    fn begin(&mut self, r: &Ready, file: &ReadFile) -> Result<Option<String>, DeployError> {
        let key = &file.key;
        match self.journal.last(key) {
            Some((Event::Done, _)) => {
                self.tracker.settle(&r.path, r.size, file.mtime);
                self.summary.skipped += 1;
                self.log().info(
                    "skipped: already processed",
                    json!({"image": r.name, "sha256": key.sha256}),
                );
                Ok(None)
            }
            Some((Event::Failed, _)) => {
                self.fail(r, key, "this image (same name and content) failed before")?;
                Ok(None)
            }
            Some((Event::Started, stem)) => {
                let stem = stem
                    .map(str::to_string)
                    .unwrap_or_else(|| self.choose_stem(key));
                self.log().info(
                    "processing again after an interrupted run",
                    json!({"image": r.name}),
                );
                Ok(Some(stem))
            }
            None => {
                let stem = self.choose_stem(key);
                self.journal
                    .append(Event::Started, key, Some(&stem), None)?;
                Ok(Some(stem))
            }
        }
    }

    /// The output stem of a new image: its file stem, or with the hash's first 8 digits when
    /// another image already has that stem.
    fn choose_stem(&self, key: &ImageKey) -> String {
        let base = output_stem(Path::new(&key.name));
        if self.journal.stem_taken(&base, key) {
            format!("{base}-{}", key.short_hash())
        } else {
            base
        }
    }

    /// Decodes and segments the image; `None` when it was set aside (cannot be decoded, the
    /// model failed on it). A model that panicked or is poisoned is an error: the service
    /// stops.
    fn process(
        &mut self,
        r: &Ready,
        file: &ReadFile,
        decoded: Option<Decoded>,
    ) -> Result<Option<Processed>, DeployError> {
        let (img, decode_seconds, input) = match decoded {
            Some(d) => (d.img, d.decode_seconds, d.input),
            None => {
                let t1 = Instant::now();
                let img = decode_image(&r.path, &file.bytes);
                (img, t1.elapsed().as_secs_f64(), None)
            }
        };
        let img = match img {
            Ok(img) => img,
            Err(e) => {
                self.fail(r, &file.key, &e.to_string())?;
                return Ok(None);
            }
        };
        let segmented = match input {
            Some((x, seconds)) => {
                let size = (img.height() as usize, img.width() as usize);
                self.seg.segment_input(&x, size, seconds)
            }
            None => self.seg.segment(&img),
        };
        match segmented {
            Ok(seg) => Ok(Some(Processed {
                img,
                seg,
                decode_seconds,
            })),
            Err(e) => {
                let fatal = matches!(
                    e,
                    RuntimeError::Panicked { .. } | RuntimeError::Poisoned { .. }
                );
                self.fail(r, &file.key, &format!("the model failed on it: {e}"))?;
                if fatal {
                    return Err(e.into());
                }
                Ok(None)
            }
        }
    }

    /// Builds the image's record and durably writes it to `STEM.json` (last: a record that
    /// names the image's SHA-256 means the outputs are complete).
    fn write_record(
        &self,
        r: &Ready,
        file: &ReadFile,
        stem: &str,
        p: &Processed,
        images: Images,
    ) -> Result<ImageRecord, DeployError> {
        let now = crate::unix_now();
        let latency = r.arrived.elapsed().as_secs_f64();
        let arrived_unix = now - latency;
        let record = ImageRecord {
            image: r.name.clone(),
            sha256: file.key.sha256.clone(),
            width: p.img.width(),
            height: p.img.height(),
            model: self.model_file.clone(),
            model_sha256: self.model_sha.clone(),
            runtime: self.runtime.clone(),
            provider: self.provider.clone(),
            input_size: self.seg.input_size(),
            threshold: self.opts.threshold,
            timings: ImageTimings {
                read: file.read_seconds,
                decode: p.decode_seconds,
                preprocess: p.seg.timing.preprocess,
                inference: p.seg.timing.inference,
                postprocess: p.seg.timing.postprocess,
                write: images.seconds,
                latency,
            },
            lesion: Lesion::of(&p.seg.mask),
            mask: images.mask,
            overlay: images.overlay,
            arrived: crate::utc_timestamp(arrived_unix),
            finished: crate::utc_timestamp(now),
            toolkit_version: crate::TOOLKIT_VERSION.into(),
        };
        let json_path = self.opts.out.join(OutputNames::new(stem).record());
        let text = serde_json::to_string_pretty(&record)
            .map_err(|e| DeployError::invalid(&json_path, format!("cannot encode: {e}")))?;
        write_durable_output(&json_path, format!("{text}\n").as_bytes())?;
        Ok(record)
    }

    /// The outputs are durable: audit line, `done`, counts, status board, log line.
    fn finish(
        &mut self,
        r: &Ready,
        file: &ReadFile,
        stem: &str,
        record: &ImageRecord,
    ) -> Result<(), DeployError> {
        let key = &file.key;
        // The audit line first: a crash before `done` is recovered without a second line.
        self.audit
            .append_once(key, "done", done_audit_line(key, stem, record, false))?;
        self.journal.append(Event::Done, key, Some(stem), None)?;
        self.tracker.settle(&r.path, r.size, file.mtime);
        let latency = record.timings.latency;
        let inference = record.timings.inference;
        self.summary.done += 1;
        self.summary.latencies.push(latency);
        self.summary.inference.push(inference);
        if let Some(first) = self.first_arrival {
            self.summary.busy_seconds = first.elapsed().as_secs_f64();
        }
        let (done, failed) = self.journal.counts();
        let queued = self.tracker.pending();
        let last = LastImage {
            name: r.name.clone(),
            outcome: "done".into(),
            time: record.finished.clone(),
        };
        self.board.update(|s| {
            s.done = done;
            s.failed = failed;
            s.queued = queued;
            s.last = Some(last);
        })?;
        self.log().info(
            "segmented",
            json!({
                "image": r.name,
                "size": format!("{}x{}", record.width, record.height),
                "lesion_fraction": (record.lesion.fraction * 1e4).round() / 1e4,
                "inference_s": (inference * 1e3).round() / 1e3,
                "latency_s": (latency * 1e3).round() / 1e3,
                "mask": self.opts.out.join(&record.mask).display().to_string(),
            }),
        );
        Ok(())
    }

    /// Sets an image aside: reason file, image moved to `failed/`, journal, audit.
    fn fail(&mut self, r: &Ready, key: &ImageKey, reason: &str) -> Result<(), DeployError> {
        let target = free_name(&self.failed_dir, &r.name);
        let reason_path = self.failed_dir.join(format!("{target}.reason.txt"));
        let now = crate::unix_now();
        let text = reason_text(key, now, reason, &self.model_id());
        write_durable_output(&reason_path, text.as_bytes())?;
        failpoint::hit("before-failed-move");
        move_durable(&r.path, &self.failed_dir.join(&target))?;
        let line = failed_audit_line(key, now, &target, reason, &self.model_id());
        self.audit.append_once(key, "failed", line)?;
        self.journal
            .append(Event::Failed, key, None, Some(reason))?;
        self.tracker.forget(&r.path);
        self.summary.failed += 1;
        let (done, failed) = self.journal.counts();
        let last = LastImage {
            name: r.name.clone(),
            outcome: "failed".into(),
            time: crate::utc_timestamp(now),
        };
        let reason_s = reason.to_string();
        self.board.update(|s| {
            s.done = done;
            s.failed = failed;
            s.last = Some(last);
            s.last_error = Some(reason_s);
        })?;
        self.log().warn(
            "failed: moved aside",
            json!({"image": r.name, "to": format!("failed/{target}"), "reason": reason}),
        );
        Ok(())
    }
}
