//! `vmunet serve`: the watch-folder service (`--watch IN --out OUT`, `vmunet_deploy::service`)
//! and the Open Inference Protocol server with its page (`--http ADDR`, `vmunet_server`), alone
//! or side by side; or the DICOM node (`--dicom ADDR --out OUT`, `vmunet_clinical::node`). This file parses, installs the signal handlers and prints the summaries.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use vmunet_deploy::service::log::{Log, LogFormat};
use vmunet_deploy::service::stop_on_signals;
use vmunet_deploy::{serve, ServeOptions};
use vmunet_runtime::{RuntimeKind, SessionOptions};
use vmunet_server::{Batching, Limits, ModelSource, ModelSpec, Server, ServerOptions, TlsFiles};

/// Arguments of `vmunet serve`.
#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("front").required(true).multiple(true).args(["watch", "http", "dicom"]))]
pub struct Args {
    /// Folder to watch for images (not recursive; `*.part` and hidden files are ignored until
    /// renamed).
    #[arg(long, value_name = "DIR", requires = "out")]
    watch: Option<PathBuf>,
    /// Output folder of --watch (NAME_mask.png, NAME_overlay.png, NAME.json, failed/,
    /// status.json, audit.jsonl) or of --dicom (UID.seg.dcm, UID.nii.gz, UID.json per series,
    /// incoming/, failed/, state/).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Run the DICOM node on this address (e.g. 0.0.0.0:11112): C-ECHO and C-STORE of CT, MR,
    /// PET, secondary capture and photographic images; each series is segmented once it has
    /// been complete for --settle-ms, its SEG written to --out (and sent with --send-to).
    #[arg(long, value_name = "ADDR", requires = "out", conflicts_with_all = ["watch", "http"])]
    dicom: Option<SocketAddr>,
    /// The node's AE title.
    #[arg(long, default_value = "VMUNET", requires = "dicom")]
    ae_title: String,
    /// Send each DICOM SEG to this peer with C-STORE (HOST:PORT:AET).
    #[arg(long, value_name = "HOST:PORT:AET", requires = "dicom")]
    send_to: Option<vmunet_clinical::node::Peer>,
    /// DICOM SEG encoding of the node: binary or labelmap.
    #[arg(long, default_value = "binary", requires = "dicom")]
    seg_type: vmunet_clinical::SegType,
    /// Serve the Open Inference Protocol (KServe v2 / Triton REST, binary tensors included),
    /// the segmentation extension, /metrics and the page at / on this address (e.g.
    /// 127.0.0.1:8000; a non-loopback address exposes it to the network: use --token-file).
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// Exported ONNX model, as PATH (named by its file stem) or NAME=PATH; repeat to serve
    /// several over HTTP (--watch uses the first). Default: the reference model built into the
    /// binary.
    #[arg(long, value_name = "[NAME=]model.onnx")]
    model: Vec<String>,
    /// Device profile (runtime, providers, threads, input size, batch).
    #[arg(long, value_name = "PROFILE.toml", conflicts_with = "runtime")]
    profile: Option<PathBuf>,
    /// Runtime without a profile: tract (default) or ort.
    #[arg(long)]
    runtime: Option<RuntimeKind>,
    /// CPU threads per model (without a profile).
    #[arg(long)]
    threads: Option<usize>,
    /// Model input size (H = W, a multiple of 32); fixed-size models use their own.
    #[arg(long)]
    size: Option<usize>,
    /// Foreground threshold on the probability.
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
    /// Milliseconds a file's size and time must hold before it is read (when no close event
    /// says it is complete).
    #[arg(long, default_value_t = 1000)]
    settle_ms: u64,
    /// Milliseconds between listings of the folder when nothing happens.
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    /// Poll the folder instead of using file-system events (network file systems).
    #[arg(long)]
    poll: bool,
    /// Process what is in the folder (and what arrives meanwhile), then exit (and stop the
    /// HTTP server, if one runs).
    #[arg(long, requires = "watch")]
    once: bool,
    /// Serve /health/live, /health/ready and /status of the watch folder over HTTP on this
    /// address (e.g. 127.0.0.1:8089).
    #[arg(long, value_name = "ADDR", requires = "watch")]
    health: Option<SocketAddr>,
    /// Log lines on standard error: text or json.
    #[arg(long, default_value = "text")]
    log_format: LogFormat,
    /// HTTP: a file holding the bearer token every request must carry (health probes and
    /// the page itself excepted).
    #[arg(long, value_name = "FILE", requires = "http")]
    token_file: Option<PathBuf>,
    /// HTTP: serve HTTPS with this certificate chain (PEM, leaf first); needs --tls-key.
    #[arg(long, value_name = "PEM", requires_all = ["http", "tls_key"])]
    tls_cert: Option<PathBuf>,
    /// HTTP: the certificate's private key (PEM: PKCS#8, RSA or EC).
    #[arg(long, value_name = "PEM", requires_all = ["http", "tls_cert"])]
    tls_key: Option<PathBuf>,
    /// HTTP: most samples per model run (dynamic batching); default: the profile's `batch`,
    /// else 4.
    #[arg(long, requires = "http")]
    max_batch: Option<usize>,
    /// HTTP: longest wait for a batch to fill, in milliseconds; default: the profile's
    /// `max_batch_delay_ms`, else 5.
    #[arg(long, requires = "http")]
    max_delay_ms: Option<u64>,
    /// HTTP: requests that may wait per model; one more is answered 503 with Retry-After
    /// [default: 32].
    #[arg(long, requires = "http")]
    queue: Option<usize>,
    /// HTTP: largest request body in MiB.
    #[arg(long, default_value_t = 64, requires = "http")]
    max_body_mb: usize,
    /// HTTP: largest photo /segment decodes, in megapixels (read from its header).
    #[arg(long, default_value_t = 64, requires = "http")]
    max_megapixels: u64,
    /// HTTP: seconds a client has to send a request's head, then its body.
    #[arg(long, default_value_t = 10, requires = "http")]
    header_timeout_s: u64,
    /// HTTP: seconds a client has to send a request's body.
    #[arg(long, default_value_t = 30, requires = "http")]
    body_timeout_s: u64,
    /// HTTP: connections served at once.
    #[arg(long, default_value_t = 256, requires = "http")]
    max_connections: usize,
    /// HTTP: photos decoded or turned into masks at once (bounds /segment's memory).
    #[arg(long, default_value_t = 4, requires = "http")]
    image_slots: usize,
    /// HTTP: seconds a stop (SIGTERM, SIGINT) waits for requests in flight.
    #[arg(long, default_value_t = 30, requires = "http")]
    drain_s: u64,
}

/// `NAME=PATH` or `PATH`.
fn model_source(arg: &str) -> (Option<String>, PathBuf) {
    match arg.split_once('=') {
        Some((name, path)) if !name.is_empty() && !name.contains(['/', '\\']) => {
            (Some(name.to_string()), PathBuf::from(path))
        }
        _ => (None, PathBuf::from(arg)),
    }
}

/// Runs the DICOM node until SIGTERM / SIGINT.
fn run_dicom(a: &Args, addr: SocketAddr) -> Result<()> {
    use vmunet_clinical::node::{run_node, NodeOptions};
    use vmunet_clinical::{ClinicalSegmenter, JobOptions, VolumeOptions, VolumeSegmenter};
    let Some(out) = &a.out else {
        bail!("--dicom needs --out DIR");
    };
    if a.model.len() > 1 {
        bail!("the DICOM node runs one model: give one --model");
    }
    let options = SessionOptions {
        runtime: a.runtime,
        profile: crate::args::load_profile(a.profile.as_deref())?,
        threads: a.threads,
        ..Default::default()
    };
    let session = match a.model.first() {
        Some(m) => {
            let path = model_source(m).1;
            vmunet_runtime::Session::open(&path, &options)
                .with_context(|| format!("opening {}", path.display()))?
        }
        None => crate::args::open_embedded(&options)?,
    };
    let volumes = VolumeSegmenter::new(
        session,
        &VolumeOptions {
            size: a.size,
            threshold: a.threshold,
            ..Default::default()
        },
    )?;
    let mut segmenter = ClinicalSegmenter::new(
        volumes,
        JobOptions {
            seg_type: a.seg_type,
            codes: Default::default(),
            preview: false,
        },
    )?;
    let stop = stop_on_signals().context("cannot install the SIGTERM / SIGINT handlers")?;
    let opts = NodeOptions {
        addr,
        ae_title: a.ae_title.clone(),
        out: out.clone(),
        settle: Duration::from_millis(a.settle_ms),
        send_to: a.send_to.clone(),
    };
    let s = run_node(&opts, &mut segmenter, stop, |local| {
        eprintln!("DICOM node {} listening on {local}", a.ae_title)
    })?;
    println!(
        "{} series segmented, {} failed, {} skipped as done, {} SEG(s) sent",
        s.done, s.failed, s.skipped, s.sent
    );
    Ok(())
}

/// Runs `vmunet serve`.
pub fn run(a: Args) -> Result<()> {
    if let Some(addr) = a.dicom {
        return run_dicom(&a, addr);
    }
    if a.watch.is_some() && a.out.is_none() {
        bail!("--watch needs --out DIR");
    }
    let profile = crate::args::load_profile(a.profile.as_deref())?;
    let session = SessionOptions {
        runtime: a.runtime,
        profile: profile.clone(),
        threads: a.threads,
        ..Default::default()
    };
    let batching = Batching::resolve(profile.as_ref(), a.max_batch, a.max_delay_ms, a.queue);
    let mut specs: Vec<ModelSpec> = if a.model.is_empty() {
        vec![ModelSpec::new(ModelSource::Embedded(
            vmunet_embedded::REFERENCE,
        ))]
    } else {
        a.model
            .iter()
            .map(|m| {
                let (name, path) = model_source(m);
                let mut spec = ModelSpec::new(ModelSource::File(path));
                if let Some(n) = name {
                    spec.name = n;
                }
                spec
            })
            .collect()
    };
    for s in &mut specs {
        s.session = session.clone();
        s.size = a.size;
        s.threshold = a.threshold;
        s.batching = batching;
    }
    let stop = stop_on_signals().context("cannot install the SIGTERM / SIGINT handlers")?;

    let watch = match (&a.watch, &a.out) {
        (Some(watch), Some(out)) => {
            let model = match &specs[0].source {
                ModelSource::File(p) => p.clone(),
                ModelSource::Embedded(e) => e.materialize()?,
            };
            Some(ServeOptions {
                watch: watch.clone(),
                out: out.clone(),
                model,
                session: session.clone(),
                size: a.size,
                threshold: a.threshold,
                settle: Duration::from_millis(a.settle_ms),
                poll_interval: Duration::from_millis(a.poll_ms.max(10)),
                poll: a.poll,
                once: a.once,
                health: a.health,
                log: Log {
                    format: a.log_format,
                },
            })
        }
        _ => None,
    };

    let Some(addr) = a.http else {
        let Some(opts) = watch else {
            bail!("give --watch DIR --out DIR, --http ADDR, or both");
        };
        print!("{}", serve(&opts, stop)?.summary());
        return Ok(());
    };

    let token = match &a.token_file {
        Some(p) => {
            let t = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the token file {}", p.display()))?
                .trim()
                .to_string();
            if t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                bail!(
                    "{}: the token must be one line of printable characters without spaces",
                    p.display()
                );
            }
            Some(t)
        }
        None => None,
    };
    let options = ServerOptions {
        limits: Limits {
            max_body_bytes: a.max_body_mb.max(1) << 20,
            max_pixels: a.max_megapixels.max(1) * 1_000_000,
            header_timeout: Duration::from_secs(a.header_timeout_s.max(1)),
            body_timeout: Duration::from_secs(a.body_timeout_s.max(1)),
            max_connections: a.max_connections.max(1),
            image_slots: a.image_slots.max(1),
        },
        token,
        watch_out: watch.as_ref().map(|w| w.out.clone()),
        drain: Duration::from_secs(a.drain_s),
        tls: a
            .tls_cert
            .zip(a.tls_key)
            .map(|(cert, key)| TlsFiles { cert, key }),
        ..ServerOptions::new(addr, specs)
    };
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let server = Server::bind(options)?;
    for m in server.models() {
        eprintln!(
            "serving model '{}' ({}, {}x{}, {} class{}, sha256 {}, {}, batch up to {})",
            m.name,
            m.path.display(),
            m.size.0,
            m.size.1,
            m.classes,
            if m.classes == 1 { "" } else { "es" },
            &m.sha256[..12],
            m.runtime,
            m.batching.max_batch
        );
    }
    eprintln!(
        "listening on {scheme}://{} (Open Inference Protocol at /v2, the page at /, metrics at /metrics)",
        server.local_addr()
    );
    let watcher = watch.map(|opts| {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let r = serve(&opts, stop.clone());
            // The watch folder ended (--once, or an error): the server drains too.
            stop.store(true, Ordering::SeqCst);
            r
        })
    });
    let summary = server.run(stop)?;
    if let Some(w) = watcher {
        match w.join() {
            Ok(r) => print!("{}", r?.summary()),
            Err(_) => bail!("the watch-folder service panicked"),
        }
    }
    print!("{}", summary.summary());
    Ok(())
}
