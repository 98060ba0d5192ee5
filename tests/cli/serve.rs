//! `vmunet serve --watch`: real images in, masks out, exactly once across `kill -9` at every
//! stage (crash points inside the service and kills from outside at arbitrary moments), bad
//! files set aside, half-copied files never read, graceful stop, one service per folder,
//! health endpoint.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::*;

/// `n` images: real ISIC 2017 validation images when ../shared has them, else generated ones.
fn images(n: usize, dir: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    if let Some(isic) = vmunet_testdata::shared_data("isic2017", "service on real images") {
        let mut files: Vec<PathBuf> = std::fs::read_dir(isic.join("val/images"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        return files.into_iter().take(n).collect();
    }
    (0..n)
        .map(|i| {
            let p = dir.join(format!("gen_{i:02}.png"));
            image::RgbImage::from_fn(96 + 16 * i as u32, 80, |x, y| {
                let d = (x as i32 - 48).pow(2) + (y as i32 - 40).pow(2);
                if d < 600 + 40 * i as i32 {
                    image::Rgb([90, 50, 40])
                } else {
                    image::Rgb([210, 170, 150])
                }
            })
            .save(&p)
            .unwrap();
            p
        })
        .collect()
}

/// The shipped reference model exported (custom scan) into `dir`.
fn reference_model(dir: &Path) -> PathBuf {
    let out = dir.join("isic-ref-custom.onnx");
    let ck = vmunet_testdata::repo_root().join("models/isic2017-16-128.bpk");
    let o = run(&[
        "export",
        "--checkpoint",
        s(&ck),
        "--scan",
        "custom",
        "-o",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", all_output(&o));
    out
}

/// `vmunet serve` on `input` into `out`; files without a close event must hold still for
/// `settle_ms`.
fn serve(input: &Path, out: &Path, model: &Path, settle_ms: u64, extra: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args([
        "serve",
        "--watch",
        s(input),
        "--out",
        s(out),
        "--model",
        s(model),
        "--settle-ms",
        &settle_ms.to_string(),
        "--poll-ms",
        "50",
    ])
    .args(extra)
    .env_remove("VMUNET_FAILPOINT");
    c
}

fn journal(out: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(out.join(".vmunet/journal.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("journal line {l:?}: {e}")))
        .collect()
}

fn status(out: &Path) -> serde_json::Value {
    std::fs::read(out.join("status.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null)
}

fn sha256(p: &Path) -> String {
    use std::fmt::Write as _;
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut h = String::new();
    let _ = write!(h, "{}", text.split_whitespace().next().unwrap_or(""));
    h
}

fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap()
}

/// Every good image has exactly one `done` in the journal and complete outputs whose record
/// names its content; every bad one exactly one `failed` and one copy in failed/; nothing
/// temporary is left; the audit log has one line per outcome.
fn check_exactly_once(input_names: &[(String, String)], bad: &[(String, String)], out: &Path) {
    let recs = journal(out);
    let mut outcomes: HashMap<(String, String), Vec<String>> = HashMap::new();
    for r in &recs {
        let key = (
            r["name"].as_str().unwrap().to_string(),
            r["sha256"].as_str().unwrap().to_string(),
        );
        let ev = r["event"].as_str().unwrap().to_string();
        if ev != "started" {
            outcomes.entry(key).or_default().push(ev);
        }
    }
    for (name, sha) in input_names {
        let o = outcomes.get(&(name.clone(), sha.clone()));
        assert_eq!(
            o.map(Vec::as_slice),
            Some(&["done".to_string()][..]),
            "{name}: outcomes {o:?}"
        );
        let stem = Path::new(name).file_stem().unwrap().to_str().unwrap();
        let rec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(format!("{stem}.json"))).unwrap())
                .unwrap();
        assert_eq!(rec["sha256"], sha.as_str(), "{name}");
        let mask = image::open(out.join(format!("{stem}_mask.png"))).unwrap();
        assert_eq!(mask.width() as u64, rec["width"].as_u64().unwrap());
        image::open(out.join(format!("{stem}_overlay.png"))).unwrap();
    }
    for (name, sha) in bad {
        let o = outcomes.get(&(name.clone(), sha.clone()));
        assert_eq!(
            o.map(Vec::as_slice),
            Some(&["failed".to_string()][..]),
            "{name}: outcomes {o:?}"
        );
        assert_eq!(sha256(&out.join("failed").join(name)), *sha);
        let reason =
            std::fs::read_to_string(out.join("failed").join(format!("{name}.reason.txt"))).unwrap();
        assert!(reason.contains("cannot decode"), "{reason}");
    }
    assert_eq!(
        outcomes.len(),
        input_names.len() + bad.len(),
        "outcomes for unknown images: {outcomes:?}"
    );
    let failed: Vec<_> = std::fs::read_dir(out.join("failed")).unwrap().collect();
    assert_eq!(failed.len(), 2 * bad.len(), "failed/ holds {failed:?}");
    for dir in [out.to_path_buf(), out.join("failed"), out.join(".vmunet")] {
        for e in std::fs::read_dir(&dir).unwrap() {
            let n = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                !n.ends_with(".vmunet-tmp"),
                "temporary file {n} left in {}",
                dir.display()
            );
        }
    }
    let audit = std::fs::read_to_string(out.join("audit.jsonl")).unwrap();
    let mut audited: HashMap<String, usize> = HashMap::new();
    for l in audit.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        *audited
            .entry(v["image"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for (name, _) in input_names.iter().chain(bad) {
        assert_eq!(
            audited.get(name),
            Some(&1),
            "audit lines for {name}: {audit}"
        );
    }
}

fn copy_in(files: &[PathBuf], input: &Path) -> Vec<(String, String)> {
    files
        .iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_str().unwrap().to_string();
            std::fs::copy(f, input.join(&name)).unwrap();
            (name, sha256(f))
        })
        .collect()
}

fn corrupt(input: &Path) -> Vec<(String, String)> {
    let p = input.join("corrupt_scan.png");
    std::fs::write(&p, b"\x89PNG\r\n\x1a\nthis is not an image").unwrap();
    vec![("corrupt_scan.png".into(), sha256(&p))]
}

#[test]
fn service_segments_real_images_as_infer_does_and_never_reads_half_copied_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    std::fs::create_dir_all(&input).unwrap();
    let files = images(5, &tmp.path().join("src"));
    let model_file = reference_model(tmp.path());
    let model = model_file.as_path();
    let port = 20_000 + std::process::id() % 20_000;
    // Complete files are ready at their close event; a writer that holds a file open must
    // stall for 5 s before it is read.
    let mut child = serve(
        &input,
        &out,
        model,
        5000,
        &[
            "--health",
            &format!("127.0.0.1:{port}"),
            "--log-format",
            "json",
        ],
    )
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    wait_for(60, "the service to be ready", || {
        status(&out)["ready"] == true
    });

    // A second service on the same output folder is refused.
    let o = serve(&input, &out, model, 300, &["--once"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("another vmunet serve"),
        "{}",
        stderr(&o)
    );

    // Copies in progress: a `.part` file, and a file written in two halves.
    let (first, rest) = files.split_at(1);
    let part = input.join(format!(
        "{}.part",
        first[0].file_name().unwrap().to_str().unwrap()
    ));
    std::fs::copy(&first[0], &part).unwrap();
    let bytes = std::fs::read(&rest[0]).unwrap();
    let slow_name = "slow_copy.jpg";
    let mut slow = std::fs::File::create(input.join(slow_name)).unwrap();
    slow.write_all(&bytes[..bytes.len() / 2]).unwrap();
    slow.flush().unwrap();
    // The rest arrive at once; the corrupt file too.
    let mut good = copy_in(&rest[1..], &input);
    let bad = corrupt(&input);
    wait_for(60, "the complete files", || {
        status(&out)["done"] == (rest.len() - 1) as u64 && status(&out)["failed"] == 1
    });
    // Neither copy in progress was read (within the settle time of the last write).
    let names: Vec<String> = journal(&out)
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !names.iter().any(|n| n == slow_name || n.ends_with(".part")),
        "{names:?}"
    );
    slow.write_all(&bytes[bytes.len() / 2..]).unwrap();
    drop(slow);
    std::fs::rename(&part, input.join(first[0].file_name().unwrap())).unwrap();
    good.push((slow_name.to_string(), sha256(&rest[0])));
    good.push((
        first[0].file_name().unwrap().to_str().unwrap().to_string(),
        sha256(&first[0]),
    ));
    wait_for(60, "every image", || {
        status(&out)["done"] == files.len() as u64
    });

    // Health endpoint.
    let get = |path: &str| {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port as u16)).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        r
    };
    assert!(get("/health/ready").starts_with("HTTP/1.1 200"));
    let st = get("/status");
    assert!(st.contains(&format!("\"done\":{}", files.len())), "{st}");

    // SIGTERM: a clean stop, recorded in the status file.
    let code = sigterm(&mut child);
    assert!(code.success(), "exit {code:?}");
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert_eq!(status(&out)["state"], "stopped");
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{log}"
    );
    assert!(log.contains("\"msg\":\"stopped on signal\""), "{log}");
    check_exactly_once(&good, &bad, &out);

    // The masks are those `vmunet infer` writes with the same model (one pipeline).
    let infer_out = tmp.path().join("infer");
    let o = run(&[
        "infer",
        "--model",
        s(model),
        s(&rest[1]),
        "--out",
        s(&infer_out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stem = rest[1].file_stem().unwrap().to_str().unwrap();
    let a = image::open(out.join(format!("{stem}_mask.png")))
        .unwrap()
        .to_luma8();
    let b = image::open(infer_out.join(format!("{stem}_mask.png")))
        .unwrap()
        .to_luma8();
    assert_eq!(a, b, "service and infer masks differ");
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(format!("{stem}.json"))).unwrap()).unwrap();
    assert_eq!(rec["model_sha256"], sha256(model).as_str());
    assert!(rec["timings"]["latency"].as_f64().unwrap() > 0.0);
    let area = rec["lesion"]["fraction"].as_f64().unwrap();
    assert!(area > 0.0 && area < 1.0, "lesion fraction {area}");

    // A restart finds everything done and redoes nothing.
    let o = serve(&input, &out, model, 300, &["--once"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!(
            "0 segmented, 0 failed, {} already done",
            files.len()
        )),
        "{}",
        stdout(&o)
    );
    check_exactly_once(&good, &bad, &out);
}

#[test]
fn a_crash_at_any_stage_leaves_exactly_one_result_per_image() {
    let model = vmunet_testdata::golden("tiny-custom.onnx");
    let tmp = tempfile::tempdir().unwrap();
    let files = images(4, &tmp.path().join("src"));
    for point in [
        "after-start",
        "mid-write",
        "before-json",
        "before-done",
        "mid-journal",
        "before-failed-move",
    ] {
        let dir = tmp.path().join(point);
        let (input, out) = (dir.join("in"), dir.join("out"));
        std::fs::create_dir_all(&input).unwrap();
        let good = copy_in(&files, &input);
        let bad = corrupt(&input);
        // The second time the point is reached (one image already through), SIGKILL.
        let nth = if point == "before-failed-move" { 1 } else { 2 };
        let o = serve(&input, &out, &model, 300, &["--once"])
            .env("VMUNET_FAILPOINT", format!("{point}:{nth}"))
            .output()
            .unwrap();
        assert_eq!(
            o.status.signal(),
            Some(9),
            "{point}: expected SIGKILL, got {:?}: {}",
            o.status,
            stderr(&o)
        );
        let o = serve(&input, &out, &model, 300, &["--once"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{point}: {}", stderr(&o));
        check_exactly_once(&good, &bad, &out);
        // What was done before the crash was not done again.
        let recs = journal(&out);
        let starts = recs.iter().filter(|r| r["event"] == "started").count();
        assert!(
            starts <= good.len() + bad.len() + 1,
            "{point}: {starts} starts for {} images",
            good.len() + bad.len()
        );
    }
}

#[test]
fn kill_9_at_arbitrary_moments_then_restart_completes_every_image_once() {
    let model = vmunet_testdata::golden("tiny-custom.onnx");
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = (tmp.path().join("in"), tmp.path().join("out"));
    std::fs::create_dir_all(&input).unwrap();
    let files = images(24, &tmp.path().join("src"));
    let good = copy_in(&files, &input);
    let bad = corrupt(&input);
    let (mut killed, mut killed_mid_stream) = (0, 0);
    for delay_ms in [90, 140, 190, 240, 290, 340] {
        let mut child = serve(&input, &out, &model, 0, &[])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed += 1;
            let done = journal(&out)
                .iter()
                .filter(|r| r["event"] != "started")
                .count();
            if done > 0 && done < files.len() + 1 {
                killed_mid_stream += 1;
            }
        }
        child.wait().unwrap();
    }
    assert!(
        killed_mid_stream > 0,
        "none of {killed} kills landed while images were being processed"
    );
    // The last run polls the folder (no file-system events), as on a network file system.
    let o = serve(&input, &out, &model, 300, &["--once", "--poll"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("(polling watcher)"), "{}", stdout(&o));
    check_exactly_once(&good, &bad, &out);
}
