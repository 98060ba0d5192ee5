//! `vmunet serve --dicom`: the DICOM node with real peers. DCMTK's echoscu and storescu send a
//! series, storescp receives the SEG the node sends back; pynetdicom aborts an association
//! mid-series, proposes SOP classes the node does not take and a malformed data set; `kill -9`
//! at the journal's crash points and from outside, then a restart, segment each series once.
//!
//! What this group adds: the node's network behaviour and its exactly-once journal, against
//! implementations no one here wrote.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::clinical::{check_outputs, clinical_python, ct_model, fixtures, script, CLASSES};
use crate::common::*;

/// `n` distinct free ports (held together while chosen, so no two are the same).
fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !ok {
        eprintln!("SKIP: {tool} (DCMTK) is not installed (run through `make test`)");
    }
    ok
}

/// The node on `port`, its log in `out/../node-N.log`.
struct Node {
    child: Child,
    log: PathBuf,
}

impl Node {
    fn start(
        out: &Path,
        model: &Path,
        port: u16,
        settle_ms: u64,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let log = out.with_extension(format!("start-{n}.log"));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(bin());
        cmd.args([
            "serve",
            "--dicom",
            &format!("127.0.0.1:{port}"),
            "--ae-title",
            "VMUNET",
        ])
        .args([
            "--out",
            s(out),
            "--model",
            s(model),
            "--settle-ms",
            &settle_ms.to_string(),
        ])
        .args(extra)
        .stdout(file.try_clone().unwrap())
        .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let node = Self { child, log };
        wait_for(30, "the node to listen", || {
            node.log().contains("listening on")
        });
        node
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn stop(mut self) -> String {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let st = self.child.wait().unwrap();
        assert!(st.success(), "node exit {st:?}: {}", self.log());
        self.log()
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn journal(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.join("state/journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn events(out: &Path) -> Vec<String> {
    journal(out)
        .iter()
        .map(|r| r["event"].as_str().unwrap().to_string())
        .collect()
}

fn series_uid(fx: &Path) -> String {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fx.join("fixtures.json")).unwrap()).unwrap();
    m["series"]["ct"]["series_instance_uid"]
        .as_str()
        .unwrap_or_else(|| panic!("no ct series UID in fixtures.json: {m}"))
        .to_string()
}

fn peer(py: &Path, args: &[&str]) -> (bool, String) {
    let o = Command::new(py)
        .arg(script("dicom_peer.py"))
        .args(args)
        .output()
        .unwrap();
    (o.status.success(), all_output(&o))
}

/// DCMTK end to end: C-ECHO, a series by storescu, the SEG back to storescp, where dcmdump
/// reads it; the node's outputs pass highdicom / dciodvfy / nibabel.
#[test]
fn dcmtk_sends_a_series_and_receives_the_seg() {
    let Some(py) = clinical_python() else { return };
    if !(have("storescu") && have("storescp") && have("echoscu") && have("dcmdump")) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixtures(&py, tmp.path());
    let (_, model) = ct_model(tmp.path());
    let [port, pacs_port] = free_ports::<2>();
    let recv = tmp.path().join("pacs");
    std::fs::create_dir_all(&recv).unwrap();
    let mut pacs = Command::new("storescp")
        .args(["-aet", "PACS", "-od", s(&recv), &pacs_port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = tmp.path().join("node");
    let node = Node::start(
        &out,
        &model,
        port,
        500,
        &["--send-to", &format!("127.0.0.1:{pacs_port}:PACS")],
        &[],
    );
    let st = Command::new("echoscu")
        .args(["-aec", "VMUNET", "127.0.0.1", &port.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "echoscu failed: {}", node.log());
    let files: Vec<PathBuf> = std::fs::read_dir(fx.join("ct"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let o = Command::new("storescu")
        .args(["-aec", "VMUNET", "127.0.0.1", &port.to_string()])
        .args(files.iter().map(|p| s(p)))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "storescu: {} {}",
        all_output(&o),
        node.log()
    );
    let uid = series_uid(&fx);
    wait_for(120, "the SEG at storescp and done in the journal", || {
        std::fs::read_dir(&recv)
            .map(|d| d.count() > 0)
            .unwrap_or(false)
            && events(&out).len() == 2
    });
    let log = node.stop();
    let _ = pacs.kill();
    let _ = pacs.wait();
    assert!(log.contains("20 stored") && log.contains("1 echo"), "{log}");
    assert!(log.contains("SEG sent to PACS@"), "{log}");
    let got: Vec<PathBuf> = std::fs::read_dir(&recv)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(got.len(), 1, "{got:?}");
    let dump = Command::new("dcmdump").arg(&got[0]).output().unwrap();
    let text = String::from_utf8_lossy(&dump.stdout);
    assert!(
        text.contains("[BINARY]") && text.contains("=SegmentationStorage") && text.contains(&uid),
        "{text}"
    );
    check_outputs(
        &py,
        &fx.join("ct"),
        &out,
        &uid,
        &["--expect-classes", CLASSES],
    );
    assert_eq!(events(&out), ["started", "done"]);
}

/// An association aborted mid-series loses nothing acknowledged; the rest sent later
/// completes the series, segmented once; SOP classes it does not take are rejected at
/// negotiation, a malformed data set is refused with 0xA900, and the node keeps serving.
#[test]
fn an_abort_loses_nothing_acknowledged_and_bad_requests_are_refused() {
    let Some(py) = clinical_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixtures(&py, tmp.path());
    let (_, model) = ct_model(tmp.path());
    let [port] = free_ports::<1>();
    let p = port.to_string();
    let out = tmp.path().join("node");
    let node = Node::start(&out, &model, port, 4000, &[], &[]);
    let (ok, text) = peer(
        &py,
        &[
            "abort",
            s(&fx.join("ct")),
            "127.0.0.1",
            &p,
            "VMUNET",
            "--after",
            "7",
        ],
    );
    assert!(ok, "{text}");
    let uid = series_uid(&fx);
    let stored = out.join("incoming").join(&uid);
    wait_for(10, "7 instances on disk", || {
        std::fs::read_dir(&stored)
            .map(|d| d.count() == 7)
            .unwrap_or(false)
    });
    let (ok, text) = peer(&py, &["send", s(&fx.join("ct")), "127.0.0.1", &p, "VMUNET"]);
    assert!(ok, "{text}");
    let (ok, text) = peer(&py, &["unknown", "127.0.0.1", &p, "VMUNET"]);
    assert!(ok, "unknown SOP class / malformed data set: {text}");
    assert!(text.contains("0xA900") || text.contains("43264"), "{text}");
    let (ok, text) = peer(&py, &["echo", "127.0.0.1", &p, "VMUNET"]);
    assert!(ok, "the node stopped serving: {text}");
    wait_for(120, "the series' record", || {
        out.join(format!("{uid}.json")).exists()
    });
    let log = node.stop();
    assert!(log.contains("aborted"), "{log}");
    assert_eq!(std::fs::read_dir(&stored).unwrap().count(), 20);
    assert_eq!(events(&out), ["started", "done"], "{log}");
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(format!("{uid}.json"))).unwrap()).unwrap();
    assert_eq!(rec["dims"][2], 20);
}

/// `kill -9` after the journal says started (nothing written), then a restart: the series
/// is segmented; killed again and restarted, it is not segmented a second time.
#[test]
fn kill_9_then_restart_segments_each_series_once() {
    let Some(py) = clinical_python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixtures(&py, tmp.path());
    let (_, model) = ct_model(tmp.path());
    let [port] = free_ports::<1>();
    let p = port.to_string();
    let out = tmp.path().join("node");
    let mut node = Node::start(
        &out,
        &model,
        port,
        300,
        &[],
        &[("VMUNET_FAILPOINT", "after-start")],
    );
    let (ok, text) = peer(&py, &["send", s(&fx.join("ct")), "127.0.0.1", &p, "VMUNET"]);
    assert!(ok, "{text}");
    let t = Instant::now();
    let st = loop {
        if let Some(st) = node.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the failpoint did not fire: {}",
            node.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(9), "{}", node.log());
    assert_eq!(events(&out), ["started"]);
    let uid = series_uid(&fx);
    assert!(!out.join(format!("{uid}.json")).exists());
    let node = Node::start(&out, &model, port, 300, &[], &[]);
    wait_for(120, "the record after the restart", || {
        out.join(format!("{uid}.json")).exists()
    });
    wait_for(10, "done in the journal", || events(&out).len() == 3);
    node.kill9();
    assert_eq!(events(&out), ["started", "started", "done"]);
    let node = Node::start(&out, &model, port, 300, &[], &[]);
    wait_for(30, "the skip", || node.log().contains("already segmented"));
    let log = node.stop();
    assert_eq!(events(&out), ["started", "started", "done"], "{log}");
    assert!(log.contains("0 series segmented"), "{log}");
}
