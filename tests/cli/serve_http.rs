//! `vmunet serve --http`: the binary with its built-in model, spoken to by tritonclient.http
//! (PyPI) in binary and JSON, logits equal to `vmunet forward`'s; `vmunet infer` with no model
//! uses the built-in one; `kill -9` under load, then a restart serves again.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// Starts `vmunet serve --http 127.0.0.1:0 ARGS` and returns it with the address it printed.
fn start(args: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(bin())
        .args(["serve", "--http", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    let addr = loop {
        assert!(
            Instant::now() < deadline,
            "the server did not say where it listens"
        );
        let line = lines.next().expect("server exited").unwrap();
        eprintln!("server: {line}");
        if let Some(rest) = line.strip_prefix("listening on http://") {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    // Keep draining its standard error so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines.by_ref() {});
    (child, addr)
}

fn status_of(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    String::from_utf8_lossy(&buf)
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
}

#[test]
fn tritonclient_gets_the_logits_of_vmunet_forward_from_the_built_in_model() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, addr) = start(&[]);
    let meta = status_of(addr, "GET", "/v2/models/isic2017-16-128", b"");
    assert_eq!(meta, Some(200));
    let Some(py) = python() else {
        server.kill().unwrap();
        return;
    };
    let out = dir.path().join("triton");
    let script = vmunet_testdata::repo_root().join("tests/triton_client.py");
    let o = Command::new(&py)
        .arg(script)
        .arg(addr.to_string())
        .arg("isic2017-16-128")
        .arg(&out)
        .output()
        .unwrap();
    let text = all_output(&o);
    eprintln!("{text}");
    if o.status.code() == Some(3) && std::env::var_os("CI").is_none() {
        server.kill().unwrap();
        return;
    }
    assert!(o.status.success(), "{text}");
    // `vmunet forward` with no model runs the same built-in model.
    let fwd = dir.path().join("forward.npy");
    let f = run(&[
        "forward",
        "--input",
        s(&out.join("input.npy")),
        "--output",
        s(&fwd),
    ]);
    assert!(f.status.success(), "{}", all_output(&f));
    let want = vmunet_data::read_npy(&fwd).unwrap();
    for name in ["binary.npy", "json.npy"] {
        let got = vmunet_data::read_npy(&out.join(name)).unwrap();
        assert_eq!(got.shape, want.shape, "{name}");
        let diff = got
            .data
            .iter()
            .zip(&want.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff <= 1e-5, "{name}: max |diff| {diff}");
    }
    let threads: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("threads.json")).unwrap()).unwrap();
    for (t, d) in threads.as_object().unwrap() {
        assert!(d.as_f64().unwrap() <= 1e-5, "thread {t}: {d}");
    }

    // kill -9 under load, then a restart serves again.
    let body = serde_json::to_vec(&serde_json::json!({
        "inputs": [{"name": "input", "shape": [1, 3, 128, 128], "datatype": "FP32",
                     "data": vec![1.0f32; 3 * 128 * 128]}]
    }))
    .unwrap();
    let load: Vec<_> = (0..4)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || {
                let mut codes = Vec::new();
                for _ in 0..50 {
                    match status_of(addr, "POST", "/v2/models/isic2017-16-128/infer", &body) {
                        Some(c) => codes.push(c),
                        None => break,
                    }
                }
                codes
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    server.kill().unwrap();
    server.wait().unwrap();
    for l in load {
        let codes = l.join().unwrap();
        assert!(codes.iter().all(|&c| c == 200 || c == 503), "{codes:?}");
    }
    let (mut again, addr2) = start(&[]);
    assert_eq!(status_of(addr2, "GET", "/v2/health/ready", b""), Some(200));
    assert_eq!(
        status_of(addr2, "POST", "/v2/models/isic2017-16-128/infer", &body),
        Some(200)
    );
    Command::new("kill")
        .args(["-TERM", &again.id().to_string()])
        .status()
        .unwrap();
    let st = again.wait().unwrap();
    assert!(
        st.success(),
        "SIGTERM: a drained server exits 0, got {st:?}"
    );
}

/// A `w` x `h` PNG of a dark disc (squared radius `r2`) on skin-coloured ground.
fn write_lesion(path: &std::path::Path, w: u32, h: u32, r2: i32) {
    let (cx, cy) = ((w / 2) as i32, (h / 2) as i32);
    image::RgbImage::from_fn(w, h, |x, y| {
        if (x as i32 - cx).pow(2) + (y as i32 - cy).pow(2) < r2 {
            image::Rgb([90, 50, 40])
        } else {
            image::Rgb([210, 170, 150])
        }
    })
    .save(path)
    .unwrap();
}

#[test]
fn infer_without_a_model_uses_the_built_in_one_and_names_outputs_as_today() {
    let dir = tempfile::tempdir().unwrap();
    let photo = dir.path().join("photo.png");
    write_lesion(&photo, 150, 100, 900);
    let out = dir.path().join("masks");
    let o = run(&["infer", s(&photo), "--out", s(&out)]);
    assert!(o.status.success(), "{}", all_output(&o));
    let mask = image::open(out.join("photo_mask.png")).unwrap();
    assert_eq!((mask.width(), mask.height()), (150, 100));
    assert!(stdout(&o).contains("isic2017-16-128"), "{}", stdout(&o));
}

/// The fraction of pixels whose red exceeds their green by more than 80: the page's tint
/// (0.6 x pixel + 0.4 x (255, 40, 40)) lifts every pixel of the lesion above it.
fn reddish(img: &image::RgbImage) -> f64 {
    let n = img
        .pixels()
        .filter(|p| i32::from(p[0]) - i32::from(p[1]) > 80)
        .count();
    n as f64 / f64::from(img.width() * img.height()).max(1.0)
}

#[test]
fn the_page_shows_the_overlay_in_headless_chromium() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    // A real photo when ../shared has one, else a generated lesion.
    let photo = vmunet_testdata::shared_data("isic2017-fullres", "the page on a real photo")
        .and_then(|d| {
            let mut v: Vec<_> = std::fs::read_dir(d.join("images"))
                .ok()?
                .map(|e| e.unwrap().path())
                .collect();
            v.sort();
            v.into_iter().next()
        })
        .unwrap_or_else(|| {
            let p = dir.path().join("lesion.png");
            write_lesion(&p, 400, 300, 9000);
            p
        });
    // The watch-folder service beside the server: its result is listed on the page too.
    let (watch_in, watch_out) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::create_dir(&watch_in).unwrap();
    write_lesion(&watch_in.join("watched-lesion.png"), 320, 240, 5000);
    let (mut server, addr) = start(&["--watch", s(&watch_in), "--out", s(&watch_out)]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !watch_out.join("watched-lesion.json").exists() {
        assert!(
            Instant::now() < deadline,
            "the watch folder did not segment its photo"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = dir.path().join("page");
    let o = Command::new(&py)
        .arg(vmunet_testdata::repo_root().join("tests/page_check.py"))
        .arg(format!("http://{addr}/"))
        .arg(&photo)
        .arg(&out)
        .arg("watched-lesion.png")
        .output()
        .unwrap();
    server.kill().unwrap();
    let text = all_output(&o);
    eprintln!("{text}");
    if o.status.code() == Some(3) && std::env::var_os("CI").is_none() {
        return;
    }
    assert!(o.status.success(), "{text}");
    let page: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("page.json")).unwrap()).unwrap();
    let img = image::open(&photo).unwrap().to_rgb8();
    assert_eq!(
        page["canvas"],
        serde_json::json!([img.width(), img.height()])
    );
    assert_eq!(page["model"], "isic2017-16-128");
    let area = page["area"].as_str().unwrap();
    let pct: f64 = area
        .strip_prefix("Lesion: ")
        .and_then(|r| r.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{area}"));
    assert!(pct > 1.0, "no lesion found: {area}");
    assert!(
        page["edge_pixels"].as_u64().unwrap() > 0,
        "no boundary drawn"
    );
    let name = photo.file_stem().unwrap().to_string_lossy().into_owned();
    assert_eq!(page["mask_download"], format!("{name}_mask.png"));
    assert!(page["recent"].as_str().unwrap().contains(&name));
    let watched = page["watch_entry"].as_str().unwrap();
    assert!(
        watched.contains("watched-lesion.png") && watched.contains("watch folder"),
        "{watched}"
    );
    let link = &page["watch_mask"];
    assert_eq!(link["status"], 200, "{link}");
    assert_eq!(link["type"], "image/png", "{link}");
    assert_eq!(link["png"], true, "{link}");
    assert!(
        link["href"]
            .as_str()
            .unwrap()
            .ends_with("watched-lesion_mask.png"),
        "{link}"
    );
    // The screenshot: the tinted share of the picture follows the lesion's share of it, and the
    // photo alone is far less red.
    let shot = image::open(out.join("overlay.png")).unwrap().to_rgb8();
    let (tinted, plain) = (reddish(&shot), reddish(&img));
    let lesion = pct / 100.0;
    assert!(
        tinted - plain > 0.5 * lesion && (tinted - lesion).abs() < 0.2,
        "screenshot {tinted:.3} reddish, photo {plain:.3}, lesion {lesion:.3}"
    );
}

/// HTTPS for a clinic network: with `--tls-cert`/`--tls-key` (a certificate made here by
/// openssl) tritonclient.http, verifying it, reads readiness and runs `infer` over TLS; a
/// plain-HTTP request to the TLS port gets no answer and the server serves on; a key that is
/// not a key stops the start with an error naming the file.
#[test]
fn the_server_speaks_tls_with_a_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-keyout", s(&key), "-out", s(&cert)])
        .output();
    match made {
        Ok(o) => assert!(o.status.success(), "openssl: {}", all_output(&o)),
        Err(e) => {
            assert!(std::env::var_os("CI").is_none(), "openssl is needed: {e}");
            eprintln!("SKIP: openssl is not installed ({e})");
            return;
        }
    }
    // A file that is not a key: refused before the port opens, the file named.
    let bad = run(&[
        "serve",
        "--http",
        "127.0.0.1:0",
        "--tls-cert",
        s(&cert),
        "--tls-key",
        s(&cert),
    ]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("TLS") && stderr(&bad).contains("cert.pem"),
        "{}",
        stderr(&bad)
    );

    let mut child = Command::new(bin())
        .args(["serve", "--http", "127.0.0.1:0", "--tls-cert", s(&cert)])
        .args(["--tls-key", s(&key)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("server exited").unwrap();
        if let Some(rest) = line.strip_prefix("listening on https://") {
            break rest.split_whitespace().next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    // Plain HTTP to the TLS port: no HTTP answer.
    assert_eq!(status_of(addr, "GET", "/v2/health/ready", b""), None);
    let Some(py) = python() else {
        child.kill().unwrap();
        child.wait().unwrap();
        return;
    };
    let script = r#"
import sys, numpy as np, tritonclient.http as httpclient
addr, ca = sys.argv[1], sys.argv[2]
c = httpclient.InferenceServerClient(url=addr, ssl=True, ssl_options={"ca_certs": ca})
assert c.is_server_ready()
x = np.full((1, 3, 128, 128), 100.0, dtype=np.float32)
i = httpclient.InferInput("input", list(x.shape), "FP32")
i.set_data_from_numpy(x)
y = c.infer("isic2017-16-128", [i]).as_numpy("logits")
assert y.shape == (1, 1, 128, 128) and np.isfinite(y).all(), y.shape
print("tls ok", float(y.mean()))
"#;
    let o = Command::new(&py)
        .args(["-c", script, &addr.to_string(), s(&cert)])
        .output()
        .unwrap();
    let text = all_output(&o);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(o.status.success() && text.contains("tls ok"), "{text}");
}
