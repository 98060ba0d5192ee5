//! The server over real sockets with a raw HTTP/1.1 client: every answer, every bad input
//! the issue lists (each a 4xx with the protocol's error body, the server serving on), the
//! binary tensor extension both ways, batching under concurrency, overload, auth, drain.
//! The model is the golden tiny export (64x64, dynamic batch): logits are compared with the
//! same model run directly.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};
use vmunet_data::Array;
use vmunet_runtime::{Runtime, Session, SessionOptions};

use crate::*;

fn tiny() -> std::path::PathBuf {
    vmunet_testdata::golden("tiny-scan.onnx")
}

fn spec(batching: Batching) -> ModelSpec {
    let mut s = ModelSpec::new(ModelSource::File(tiny()));
    s.name = "tiny".into();
    s.batching = batching;
    s
}

struct Running {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Result<ServerSummary, ServerError>>>,
}

impl Running {
    fn start(opts: ServerOptions) -> Self {
        let server = Server::bind(opts).unwrap();
        let addr = server.local_addr();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let handle = Some(std::thread::spawn(move || server.run(s2)));
        Self { addr, stop, handle }
    }

    fn stop(mut self) -> ServerSummary {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().unwrap().join().unwrap().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn options(batching: Batching) -> ServerOptions {
    let mut o = ServerOptions::new("127.0.0.1:0".parse().unwrap(), vec![spec(batching)]);
    o.limits.max_body_bytes = 1 << 20;
    o.limits.max_pixels = 4_000_000;
    o.limits.body_timeout = Duration::from_millis(800);
    o.drain = Duration::from_secs(5);
    o
}

/// One server for the tests that do not change its options.
fn shared() -> SocketAddr {
    static S: OnceLock<SocketAddr> = OnceLock::new();
    *S.get_or_init(|| {
        let r = Running::start(options(Batching {
            max_batch: 4,
            max_delay: Duration::from_millis(20),
            queue: 64,
        }));
        let addr = r.addr;
        std::mem::forget(r);
        addr
    })
}

/// A response: status, headers (lowercase names), body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn error(&self) -> String {
        self.json()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

fn read_reply(s: &mut TcpStream) -> Reply {
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed before a response head");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed in the body");
        body.extend_from_slice(&chunk[..n]);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    read_reply(&mut s)
}

fn get(addr: SocketAddr, path: &str) -> Reply {
    request(addr, "GET", path, &[], b"")
}

fn input(n: usize, seed: u32) -> Array {
    let len = n * 3 * 64 * 64;
    Array {
        shape: vec![n, 3, 64, 64],
        data: (0..len)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 1000.0
                    * 255.0
            })
            .collect(),
    }
}

/// The model run directly (one session per test thread: opening plans the model).
fn direct(x: &Array) -> Array {
    thread_local! {
        static S: std::cell::RefCell<Option<Session>> = const { std::cell::RefCell::new(None) };
    }
    S.with(|s| {
        let mut s = s.borrow_mut();
        let session =
            s.get_or_insert_with(|| Session::open(&tiny(), &SessionOptions::default()).unwrap());
        session.run(x).unwrap()
    })
}

/// The logits of a JSON response.
fn json_logits(r: &Reply) -> Vec<f32> {
    r.json()["outputs"][0]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn json_infer(x: &Array, binary_out: bool) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": "req-7",
        "inputs": [{"name": "input", "shape": x.shape, "datatype": "FP32", "data": x.data}],
        "outputs": [{"name": "logits", "parameters": {"binary_data": binary_out}}]
    }))
    .unwrap()
}

fn binary_infer(x: &Array) -> (Vec<u8>, usize) {
    let bytes: Vec<u8> = x.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let header = serde_json::to_vec(&json!({
        "inputs": [{"name": "input", "shape": x.shape, "datatype": "FP32",
                     "parameters": {"binary_data_size": bytes.len()}}],
        "parameters": {"binary_data_output": true}
    }))
    .unwrap();
    let n = header.len();
    let mut body = header;
    body.extend_from_slice(&bytes);
    (body, n)
}

fn binary_logits(r: &Reply) -> Vec<f32> {
    let n: usize = r
        .header("inference-header-content-length")
        .unwrap()
        .parse()
        .unwrap();
    let head: Value = serde_json::from_slice(&r.body[..n]).unwrap();
    let size = head["outputs"][0]["parameters"]["binary_data_size"]
        .as_u64()
        .unwrap() as usize;
    assert_eq!(r.body.len() - n, size);
    r.body[n..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn metadata_health_and_readiness() {
    let a = shared();
    assert_eq!(get(a, "/v2/health/live").status, 200);
    assert_eq!(get(a, "/v2/health/ready").status, 200);
    let meta = get(a, "/v2").json();
    assert_eq!(meta["name"], "vmunet");
    assert!(meta["extensions"]
        .as_array()
        .unwrap()
        .contains(&json!("binary_tensor_data")));
    let m = get(a, "/v2/models/tiny").json();
    assert_eq!(m["inputs"][0]["shape"], json!([-1, 3, 64, 64]));
    assert_eq!(m["outputs"][0]["name"], "logits");
    assert_eq!(
        m["parameters"]["sha256"],
        json!(vmunet_fs::sha256_file(&tiny()).unwrap())
    );
    assert_eq!(get(a, "/v2/models/tiny/versions/1").json()["name"], "tiny");
    assert_eq!(get(a, "/v2/models/tiny/ready").status, 200);
    assert_eq!(get(a, "/v2/models/tiny/config").json()["max_batch_size"], 4);
    let unknown = get(a, "/v2/models/nope");
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.error().contains("unknown model"),
        "{}",
        unknown.error()
    );
    assert_eq!(get(a, "/v2/models/tiny/versions/2").status, 404);
    assert_eq!(
        request(a, "DELETE", "/v2/models/tiny", &[], b"").status,
        405
    );
    let page = get(a, "/");
    assert_eq!(page.status, 200);
    assert!(String::from_utf8_lossy(&page.body).contains("/segment"));
    let metrics = String::from_utf8(get(a, "/metrics").body).unwrap();
    assert!(
        metrics.contains("vmunet_queue_depth{model=\"tiny\"}"),
        "{metrics}"
    );
}

#[test]
fn json_and_binary_inference_equal_the_model() {
    let a = shared();
    let x = input(2, 1);
    let want = direct(&x);
    let r = request(
        a,
        "POST",
        "/v2/models/tiny/infer",
        &[],
        &json_infer(&x, false),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["id"], "req-7");
    assert_eq!(v["model_name"], "tiny");
    assert_eq!(v["outputs"][0]["shape"], json!(want.shape));
    let got = json_logits(&r);
    assert!(max_diff(&got, &want.data) <= 1e-5);

    let (body, n) = binary_infer(&x);
    let r = request(
        a,
        "POST",
        "/v2/models/tiny/infer",
        &[("Inference-Header-Content-Length", n.to_string())],
        &body,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert!(max_diff(&binary_logits(&r), &want.data) <= 1e-5);

    // JSON in, binary out (one output asked for in binary).
    let r = request(
        a,
        "POST",
        "/v2/models/tiny/infer",
        &[],
        &json_infer(&x, true),
    );
    assert!(max_diff(&binary_logits(&r), &want.data) <= 1e-5);
}

#[test]
fn fp16_and_uint8_inputs() {
    let a = shared();
    let x = input(1, 3);
    // FP16 in binary: the model sees the values rounded to half.
    let halves: Vec<half::f16> = x.data.iter().map(|&v| half::f16::from_f32(v)).collect();
    let bytes: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
    let header = serde_json::to_vec(
        &json!({"inputs": [{"name": "input", "shape": [1, 3, 64, 64],
        "datatype": "FP16", "parameters": {"binary_data_size": bytes.len()}}]}),
    )
    .unwrap();
    let mut body = header.clone();
    body.extend_from_slice(&bytes);
    let r = request(
        a,
        "POST",
        "/v2/models/tiny/infer",
        &[("Inference-Header-Content-Length", header.len().to_string())],
        &body,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let rounded = Array {
        shape: x.shape.clone(),
        data: halves.iter().map(|h| h.to_f32()).collect(),
    };
    let got = json_logits(&r);
    assert!(max_diff(&got, &direct(&rounded).data) <= 1e-5);

    // UINT8 pixels are min-max normalised per sample, as the official preprocessing does.
    let pixels: Vec<u8> = (0..3 * 64 * 64).map(|i| (50 + i % 100) as u8).collect();
    let r = request(a, "POST", "/v2/models/tiny/infer", &[], &serde_json::to_vec(&json!({
        "inputs": [{"name": "input", "shape": [1, 3, 64, 64], "datatype": "UINT8", "data": pixels}]
    })).unwrap());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let norm = Array {
        shape: vec![1, 3, 64, 64],
        data: pixels
            .iter()
            .map(|&p| (f32::from(p) - 50.0) / 99.0 * 255.0)
            .collect(),
    };
    let got = json_logits(&r);
    assert!(max_diff(&got, &direct(&norm).data) <= 1e-4);
}

#[test]
fn bad_requests_get_the_protocols_error_and_the_server_serves_on() {
    let a = shared();
    let x = input(1, 2);
    let infer = |headers: &[(&str, String)], body: &[u8]| {
        request(a, "POST", "/v2/models/tiny/infer", headers, body)
    };
    let cases: Vec<(&str, Reply, u16, &str)> = vec![
        ("malformed JSON", infer(&[], b"{\"inputs\": [}"), 400, "malformed"),
        ("wrong datatype", infer(&[], br#"{"inputs":[{"name":"input","shape":[1,3,64,64],"datatype":"INT64","data":[1]}]}"#), 400, "datatype"),
        ("wrong shape", infer(&[], br#"{"inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP32","data":[1]}]}"#), 400, "shape"),
        ("too few elements", infer(&[], br#"{"inputs":[{"name":"input","shape":[1,3,64,64],"datatype":"FP32","data":[1,2]}]}"#), 400, "elements"),
        ("wrong input name", infer(&[], br#"{"inputs":[{"name":"x","shape":[1,3,64,64],"datatype":"FP32","data":[1]}]}"#), 400, "unexpected inference input"),
        ("unknown output", infer(&[], &serde_json::to_vec(&json!({"inputs":[{"name":"input","shape":[1,3,64,64],"datatype":"FP32","data":x.data}],"outputs":[{"name":"probs"}]})).unwrap()), 400, "unexpected inference output"),
        ("binary length mismatch", {
            let (mut body, n) = binary_infer(&x);
            body.truncate(body.len() - 8);
            infer(&[("Inference-Header-Content-Length", n.to_string())], &body)
        }, 400, "binary"),
        ("header length past the body", infer(&[("Inference-Header-Content-Length", "99999".into())], b"{}"), 400, "Inference-Header-Content-Length"),
        ("oversized body", {
            // Declared larger than the limit: refused from the head, before any body byte.
            let mut s = TcpStream::connect(a).unwrap();
            s.write_all(b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n").unwrap();
            read_reply(&mut s)
        }, 413, "larger than the limit"),
        ("oversized chunked body", {
            // No length declared: refused once the limit is passed while reading.
            let mut s = TcpStream::connect(a).unwrap();
            s.write_all(b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
            let chunk = vec![b' '; 1 << 16];
            for _ in 0..20 {
                if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).is_err()
                    || s.write_all(&chunk).is_err()
                    || s.write_all(b"\r\n").is_err()
                {
                    break;
                }
            }
            read_reply(&mut s)
        }, 413, "larger than the limit"),
        ("unknown model", request(a, "POST", "/v2/models/other/infer", &[], b"{}"), 404, "unknown model"),
        ("empty photo", request(a, "POST", "/v2/models/tiny/segment", &[], b""), 400, "empty"),
        ("not an image", request(a, "POST", "/v2/models/tiny/segment", &[], b"hello, world"), 400, "image"),
        ("image bomb", request(a, "POST", "/v2/models/tiny/segment", &[], &bomb_png()), 413, "more than the limit"),
    ];
    for (what, r, status, words) in cases {
        assert_eq!(
            r.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(r.error().contains(words), "{what}: {}", r.error());
    }
    // A truncated body (the client hangs up midway) and a client that never finishes its
    // body: the first is dropped, the second answered 408 after the body timeout.
    let mut s = TcpStream::connect(a).unwrap();
    s.write_all(b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n{\"inputs\"").unwrap();
    drop(s);
    let mut slow = TcpStream::connect(a).unwrap();
    slow.write_all(
        b"POST /v2/models/tiny/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n{\"in",
    )
    .unwrap();
    let r = read_reply(&mut slow);
    assert_eq!(r.status, 408, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.error().contains("did not arrive"), "{}", r.error());
    // Still serving.
    let r = request(
        a,
        "POST",
        "/v2/models/tiny/infer",
        &[],
        &json_infer(&x, false),
    );
    assert_eq!(r.status, 200);
}

/// A 60-byte PNG that declares 50000 x 50000 pixels.
fn bomb_png() -> Vec<u8> {
    let img = image::GrayImage::new(1, 1);
    let mut png = Vec::new();
    image::DynamicImage::ImageLuma8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    // IHDR's width and height (bytes 16..24), and its CRC recomputed.
    png[16..20].copy_from_slice(&50_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&50_000u32.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn concurrent_clients_are_batched_and_each_gets_its_own_logits() {
    let a = shared();
    let threads: Vec<_> = (0..6)
        .map(|t| {
            std::thread::spawn(move || {
                for k in 0..3 {
                    let x = input(1, 100 + t * 10 + k);
                    let (body, n) = binary_infer(&x);
                    let r = request(
                        a,
                        "POST",
                        "/v2/models/tiny/infer",
                        &[("Inference-Header-Content-Length", n.to_string())],
                        &body,
                    );
                    assert_eq!(r.status, 200);
                    assert!(max_diff(&binary_logits(&r), &direct(&x).data) <= 1e-5);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let metrics = String::from_utf8(get(a, "/metrics").body).unwrap();
    let batches: u64 = metrics
        .lines()
        .find(|l| l.starts_with("vmunet_batch_size_count{model=\"tiny\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let samples: f64 = metrics
        .lines()
        .find(|l| l.starts_with("vmunet_batch_size_sum{model=\"tiny\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(
        samples > batches as f64,
        "no batch held more than one sample: {batches} runs, {samples} samples"
    );
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let r = Running::start(options(Batching {
        max_batch: 1,
        max_delay: Duration::ZERO,
        queue: 1,
    }));
    let a = r.addr;
    let x = input(4, 9);
    let body = Arc::new(json_infer(&x, true));
    let threads: Vec<_> = (0..12)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || {
                let r = request(a, "POST", "/v2/models/tiny/infer", &[], &body);
                (r.status, r.header("retry-after").map(str::to_string))
            })
        })
        .collect();
    let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(
        answers.iter().all(|(s, _)| *s == 200 || *s == 503),
        "{answers:?}"
    );
    assert!(answers.iter().any(|(s, _)| *s == 503), "{answers:?}");
    assert!(answers
        .iter()
        .filter(|(s, _)| *s == 503)
        .all(|(_, ra)| ra.as_deref() == Some("1")));
    assert!(answers.iter().any(|(s, _)| *s == 200));
    let summary = r.stop();
    assert!(
        summary.server_errors > 0 && summary.client_errors == 0,
        "{summary:?}"
    );
}

#[test]
fn a_token_guards_everything_but_probes_and_the_page() {
    let mut o = options(Batching::default());
    o.token = Some("s3cret".into());
    let r = Running::start(o);
    let a = r.addr;
    assert_eq!(get(a, "/v2/health/ready").status, 200);
    assert_eq!(get(a, "/").status, 200);
    let denied = get(a, "/v2/models/tiny");
    assert_eq!(denied.status, 401);
    assert_eq!(denied.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        request(
            a,
            "GET",
            "/v2/models/tiny",
            &[("Authorization", "Bearer wrong".into())],
            b""
        )
        .status,
        401
    );
    assert_eq!(
        request(
            a,
            "GET",
            "/v2/models/tiny",
            &[("Authorization", "Bearer s3cret".into())],
            b""
        )
        .status,
        200
    );
    r.stop();
}

#[test]
fn a_photo_becomes_a_mask_at_its_size() {
    let a = shared();
    let img = image::RgbImage::from_fn(90, 70, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 3) as u8, ((x + y) % 256) as u8])
    });
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(img.clone())
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let r = request(
        a,
        "POST",
        "/v2/models/tiny/segment",
        &[("X-Image-Name", "../lesion.png".into())],
        &png,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("content-type"), Some("image/png"));
    let mask = image::load_from_memory(&r.body).unwrap().to_luma8();
    assert_eq!(mask.dimensions(), (90, 70));
    // The library's own pipeline gives the same mask.
    let session = Session::open(&tiny(), &SessionOptions::default()).unwrap();
    let mut seg = vmunet_runtime::Segmenter::new(session, &Default::default()).unwrap();
    let want = seg
        .segment(&image::DynamicImage::ImageRgb8(img))
        .unwrap()
        .mask
        .to_image();
    assert_eq!(mask, want);
    let rec = request(
        a,
        "POST",
        "/v2/models/tiny/segment?overlay=1",
        &[
            ("Accept", "application/json".into()),
            ("X-Image-Name", "../lesion.png".into()),
        ],
        &png,
    )
    .json();
    assert_eq!(rec["image"], "lesion.png");
    assert_eq!(
        (rec["width"].as_u64(), rec["height"].as_u64()),
        (Some(90), Some(70))
    );
    assert!(rec["mask"]
        .as_str()
        .unwrap()
        .starts_with("data:image/png;base64,"));
    assert!(rec["overlay"]
        .as_str()
        .unwrap()
        .starts_with("data:image/png;base64,"));
    assert_eq!(
        rec["model_sha256"],
        json!(vmunet_fs::sha256_file(&tiny()).unwrap())
    );
    let recent = get(a, "/v2/vmunet/recent").json();
    let id = recent["results"][0]["id"].as_str().unwrap().to_string();
    let kept = get(a, &format!("/v2/vmunet/results/{id}/mask.png"));
    assert_eq!(kept.status, 200);
    assert_eq!(
        image::load_from_memory(&kept.body).unwrap().to_luma8(),
        mask
    );
}

#[test]
fn a_stop_drains_requests_in_flight() {
    let r = Running::start(options(Batching {
        max_batch: 1,
        max_delay: Duration::ZERO,
        queue: 16,
    }));
    let a = r.addr;
    let x = input(8, 4);
    let (body, n) = binary_infer(&x);
    let body = Arc::new(body);
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || {
                request(
                    a,
                    "POST",
                    "/v2/models/tiny/infer",
                    &[("Inference-Header-Content-Length", n.to_string())],
                    &body,
                )
                .status
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let summary = r.stop();
    let statuses: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert_eq!(statuses, vec![200, 200, 200], "{summary:?}");
    assert!(TcpStream::connect(a).is_err() || get_fails(a));
}

/// After a stop the port no longer answers requests.
fn get_fails(a: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(a) else {
        return true;
    };
    let _ = s.write_all(b"GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut b = [0u8; 16];
    s.set_read_timeout(Some(Duration::from_secs(2))).ok();
    !matches!(s.read(&mut b), Ok(n) if n > 0)
}

/// Batching settings: the command line's, else the device profile's, else the defaults.
#[test]
fn batching_comes_from_the_command_line_then_the_profile() {
    let profile = vmunet_runtime::DeviceProfile::parse(
        "name = \"x\"\nruntime = \"tract\"\nbatch = 8\nmax_batch_delay_ms = 12\n",
    )
    .unwrap();
    let b = Batching::resolve(Some(&profile), None, None, None);
    assert_eq!((b.max_batch, b.max_delay), (8, Duration::from_millis(12)));
    assert_eq!(b.queue, Batching::default().queue);
    let b = Batching::resolve(Some(&profile), Some(2), Some(0), Some(3));
    assert_eq!((b.max_batch, b.max_delay, b.queue), (2, Duration::ZERO, 3));
    let no_delay =
        vmunet_runtime::DeviceProfile::parse("name = \"x\"\nruntime = \"tract\"\n").unwrap();
    assert_eq!(
        Batching::resolve(Some(&no_delay), None, None, None).max_delay,
        Batching::default().max_delay
    );
    assert_eq!(
        Batching::resolve(None, None, None, None),
        Batching::default()
    );
}
