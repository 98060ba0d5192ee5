//! The HTTP side: accept loop with a connection limit and graceful drain, routing, bearer-token
//! auth, body limits and timeouts, and the handlers. Every answer is counted in the metrics
//! under its route's name.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use vmunet_data::DecodeLimits;

use crate::metrics::Metrics;
use crate::model::ServedModel;
use crate::protocol::{ErrorBody, ServerMetadata, EXTENSIONS, HEADER_LENGTH};
use crate::segment::Recent;
use crate::{page, segment, tensor, ApiError, Limits, ServerError};

/// What every request handler sees.
pub(crate) struct State {
    pub models: Vec<Arc<ServedModel>>,
    pub metrics: Arc<Metrics>,
    pub limits: Limits,
    pub token: Option<String>,
    pub recent: Recent,
    pub watch_out: Option<PathBuf>,
    pub image_slots: tokio::sync::Semaphore,
    /// HTTPS when set.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

type Resp = Response<Full<Bytes>>;

const TICK: Duration = Duration::from_millis(50);

/// Accepts connections until `stop`, then drains. Returns the connections cut when the drain
/// time ran out.
pub(crate) async fn serve(
    listener: std::net::TcpListener,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    drain: Duration,
) -> Result<usize, ServerError> {
    let listener = tokio::net::TcpListener::from_std(listener).map_err(ServerError::Runtime)?;
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(
        state.limits.max_connections.max(1),
    ));
    loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(Ok(permit)) = tokio::time::timeout(TICK, slots.clone().acquire_owned()).await else {
            continue;
        };
        let stream = match tokio::time::timeout(TICK, listener.accept()).await {
            Ok(Ok((stream, _peer))) => stream,
            // Out of file descriptors and the like: wait, do not spin.
            Ok(Err(_)) => {
                tokio::time::sleep(TICK).await;
                continue;
            }
            Err(_) => continue,
        };
        let _ = stream.set_nodelay(true);
        let st = state.clone();
        let watcher = graceful.watcher();
        match state.tls.clone() {
            None => {
                tokio::spawn(async move {
                    connection(st, stream, watcher).await;
                    drop(permit);
                });
            }
            // The handshake on the connection's own task, within the header timeout: a client
            // that never finishes it holds one connection slot for that long, no more.
            Some(acceptor) => {
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(st.limits.header_timeout, acceptor.accept(stream));
                    if let Ok(Ok(tls)) = handshake.await {
                        connection(st, tls, watcher).await;
                    }
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    let open = graceful.count();
    tokio::select! {
        _ = graceful.shutdown() => Ok(0),
        _ = tokio::time::sleep(drain) => Ok(open),
    }
}

/// Serves one HTTP/1.1 connection over `io` (a TCP stream, or TLS over one) until it closes
/// or the drain ends it.
async fn connection<I>(st: Arc<State>, io: I, watcher: hyper_util::server::graceful::Watcher)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let header_timeout = st.limits.header_timeout;
    let svc = hyper::service::service_fn(move |req| {
        let st = st.clone();
        async move { Ok::<_, Infallible>(handle(st, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), svc);
    let _ = watcher.watch(conn).await;
}

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Resp {
    let t = Instant::now();
    let (endpoint, resp) = match route(&st, req).await {
        Ok(r) => r,
        Err((endpoint, e)) => (endpoint, error_response(&e)),
    };
    st.metrics
        .request(endpoint, resp.status().as_u16(), t.elapsed().as_secs_f64());
    resp
}

type Routed = Result<(&'static str, Resp), (&'static str, ApiError)>;

fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Resp {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(Full::new(Bytes::from(bytes)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn error_response(e: &ApiError) -> Resp {
    let mut r = json_response(e.status, &ErrorBody { error: &e.message });
    if let Some(s) = e.retry_after {
        r.headers_mut().insert("retry-after", HeaderValue::from(s));
    }
    if e.status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert("www-authenticate", HeaderValue::from_static("Bearer"));
    }
    r
}

fn bytes_response(content_type: &'static str, body: Bytes) -> Resp {
    let mut r = Response::new(Full::new(body));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn empty(status: StatusCode) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// Compares without an early exit, so the time taken says nothing of the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorised(st: &State, req: &Request<Incoming>) -> bool {
    let Some(token) = &st.token else {
        return true;
    };
    req.headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| same(t.trim().as_bytes(), token.as_bytes()))
}

/// Reads the body within the size limit and the body timeout.
async fn read_body(limits: &Limits, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    let too_big = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body is larger than the limit of {} bytes",
                limits.max_body_bytes
            ),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Err(too_big());
    }
    let body = Limited::new(req.into_body(), limits.max_body_bytes);
    match tokio::time::timeout(limits.body_timeout, body.collect()).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} s",
                limits.body_timeout.as_secs_f64()
            ),
        )),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_big()),
        Ok(Err(e)) => Err(ApiError::bad_request(format!(
            "the request body is incomplete: {e}"
        ))),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

fn find_model<'a>(st: &'a State, name: &str) -> Result<&'a Arc<ServedModel>, ApiError> {
    st.models
        .iter()
        .find(|m| m.info.name == name)
        .ok_or_else(|| ApiError::not_found(format!("unknown model: '{name}'")))
}

fn method_not_allowed(allow: &str) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed here; use {allow}"),
    )
}

fn only(
    method: &Method,
    want: Method,
    endpoint: &'static str,
) -> Result<(), (&'static str, ApiError)> {
    if *method == want {
        Ok(())
    } else {
        Err((endpoint, method_not_allowed(want.as_str())))
    }
}

async fn route(st: &Arc<State>, req: Request<Incoming>) -> Routed {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let seg: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = req.method().clone();
    // Probes and the page's own file need no token; everything else does.
    let open = matches!(seg.as_slice(), [] | ["v2", "health", _] | ["favicon.ico"]);
    if !open && !authorised(st, &req) {
        return Err((
            "unauthorised",
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "this server needs a bearer token (Authorization: Bearer TOKEN)",
            ),
        ));
    }
    match seg.as_slice() {
        [] => {
            only(&method, Method::GET, "page")?;
            let mut r = bytes_response(
                "text/html; charset=utf-8",
                Bytes::from_static(page::INDEX_HTML.as_bytes()),
            );
            r.headers_mut().insert(
                "content-security-policy",
                HeaderValue::from_static(page::CSP),
            );
            Ok(("page", r))
        }
        ["favicon.ico"] => Ok(("page", empty(StatusCode::NO_CONTENT))),
        ["v2", "health", "live"] => {
            only(&method, Method::GET, "health")?;
            Ok(("health", empty(StatusCode::OK)))
        }
        ["v2", "health", "ready"] => {
            only(&method, Method::GET, "health")?;
            let ready = st.models.iter().all(|m| m.is_ready());
            Ok((
                "health",
                empty(if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                }),
            ))
        }
        ["v2"] => {
            only(&method, Method::GET, "server_metadata")?;
            Ok((
                "server_metadata",
                json_response(
                    StatusCode::OK,
                    &ServerMetadata {
                        name: "vmunet",
                        version: env!("CARGO_PKG_VERSION"),
                        extensions: EXTENSIONS.to_vec(),
                    },
                ),
            ))
        }
        ["metrics"] => {
            only(&method, Method::GET, "metrics")?;
            let queues: Vec<(String, usize)> = st
                .models
                .iter()
                .map(|m| (m.info.name.clone(), m.queue_depth()))
                .collect();
            Ok((
                "metrics",
                bytes_response(
                    "text/plain; version=0.0.4",
                    Bytes::from(st.metrics.render(&queues)),
                ),
            ))
        }
        ["v2", "models", name, rest @ ..] => {
            let (version, rest) = match rest {
                ["versions", v, rest @ ..] => (Some(*v), rest),
                r => (None, r),
            };
            let model = find_model(st, name).map_err(|e| ("model", e))?.clone();
            if let Some(v) = version.filter(|v| *v != "1") {
                return Err((
                    "model",
                    ApiError::not_found(format!(
                        "model '{name}' has no version '{v}' (it serves version 1)"
                    )),
                ));
            }
            model_route(st, &model, rest, &method, &query, req).await
        }
        ["v2", "vmunet", "models"] => {
            only(&method, Method::GET, "page_api")?;
            let list: Vec<_> = st.models.iter().map(|m| m.info.metadata()).collect();
            Ok((
                "page_api",
                json_response(StatusCode::OK, &json!({ "models": list })),
            ))
        }
        ["v2", "vmunet", "recent"] => {
            only(&method, Method::GET, "page_api")?;
            let watch = match &st.watch_out {
                Some(dir) => {
                    let dir = dir.clone();
                    tokio::task::spawn_blocking(move || page::watch_records(&dir, 20))
                        .await
                        .unwrap_or_default()
                }
                None => Vec::new(),
            };
            Ok((
                "page_api",
                json_response(
                    StatusCode::OK,
                    &json!({ "results": st.recent.records(), "watch": watch }),
                ),
            ))
        }
        ["v2", "vmunet", "results", id, "mask.png"] => {
            only(&method, Method::GET, "page_api")?;
            let kept = st.recent.get(id).ok_or_else(|| {
                (
                    "page_api",
                    ApiError::not_found(format!("no recent result '{id}'")),
                )
            })?;
            Ok(("page_api", bytes_response("image/png", kept.mask_png)))
        }
        ["v2", "vmunet", "watch", file] => {
            only(&method, Method::GET, "page_api")?;
            let dir = st.watch_out.clone().ok_or_else(|| {
                (
                    "page_api",
                    ApiError::not_found("no watch folder runs beside this server"),
                )
            })?;
            let file = file.to_string();
            let read = tokio::task::spawn_blocking(move || page::watch_file(&dir, &file))
                .await
                .map_err(|e| {
                    (
                        "page_api",
                        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                    )
                })?;
            let (ct, bytes) = read.map_err(|e| ("page_api", e))?;
            Ok(("page_api", bytes_response(ct, Bytes::from(bytes))))
        }
        _ => Err((
            "unknown",
            ApiError::not_found(format!("unknown path: {path}")),
        )),
    }
}

async fn model_route(
    st: &Arc<State>,
    model: &Arc<ServedModel>,
    rest: &[&str],
    method: &Method,
    query: &str,
    req: Request<Incoming>,
) -> Routed {
    match rest {
        [] => {
            only(method, Method::GET, "model_metadata")?;
            Ok((
                "model_metadata",
                json_response(StatusCode::OK, &model.info.metadata()),
            ))
        }
        ["ready"] => {
            only(method, Method::GET, "model_ready")?;
            Ok((
                "model_ready",
                empty(if model.is_ready() {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                }),
            ))
        }
        ["config"] => {
            only(method, Method::GET, "model_config")?;
            Ok((
                "model_config",
                json_response(StatusCode::OK, &model.info.config()),
            ))
        }
        ["infer"] => {
            only(method, Method::POST, "infer")?;
            infer(st, model, req)
                .await
                .map_err(|e| ("infer", e))
                .map(|r| ("infer", r))
        }
        ["segment"] => {
            only(method, Method::POST, "segment")?;
            segment_photo(st, model, query, req)
                .await
                .map_err(|e| ("segment", e))
                .map(|r| ("segment", r))
        }
        _ => Err((
            "unknown",
            ApiError::not_found(format!(
                "unknown path under model '{}': /{}",
                model.info.name,
                rest.join("/")
            )),
        )),
    }
}

async fn infer(st: &State, model: &ServedModel, req: Request<Incoming>) -> Result<Resp, ApiError> {
    let header_len = match req.headers().get(HEADER_LENGTH) {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::bad_request("Inference-Header-Content-Length is not text"))?
                .to_string(),
        ),
        None => None,
    };
    let body = read_body(&st.limits, req).await?;
    let (json, binary) = tensor::split_body(&body, header_len.as_deref())?;
    let request = tensor::parse_request(&json)?;
    let x = tensor::request_input(&model.info, &request, &binary)?;
    let y = model.infer(x).await?;
    let (json, binaries) = tensor::response(&model.info, &request, &y)?;
    if binaries.is_empty() {
        return Ok(bytes_response("application/json", Bytes::from(json)));
    }
    let json_len = json.len();
    let mut body = json;
    for b in &binaries {
        body.extend_from_slice(b);
    }
    let mut r = bytes_response("application/octet-stream", Bytes::from(body));
    r.headers_mut()
        .insert(HEADER_LENGTH, HeaderValue::from(json_len));
    Ok(r)
}

/// The photo's name from `X-Image-Name` (its last path component, printable, at most 200
/// characters), else `photo`.
fn image_name(req: &Request<Incoming>) -> String {
    let name = req
        .headers()
        .get("x-image-name")
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.rsplit(['/', '\\'])
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .filter(|s| !s.is_empty() && s.chars().all(|c| !c.is_control()))
        .unwrap_or_else(|| "photo".into());
    name.chars().take(200).collect()
}

async fn segment_photo(
    st: &State,
    model: &ServedModel,
    query: &str,
    req: Request<Incoming>,
) -> Result<Resp, ApiError> {
    let wants_json = req
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    let want_overlay = query
        .split('&')
        .any(|kv| kv == "overlay=1" || kv == "overlay=true");
    let name = image_name(&req);
    let body = read_body(&st.limits, req).await?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the body is empty: send the photo's bytes (JPEG, PNG, ...)",
        ));
    }
    let limits = DecodeLimits {
        max_pixels: Some(st.limits.max_pixels),
    };
    let done = segment::segment(
        model,
        &st.recent,
        &st.image_slots,
        name,
        body,
        limits,
        wants_json && want_overlay,
    )
    .await?;
    if wants_json {
        return Ok(json_response(StatusCode::OK, &done.json()));
    }
    let mut r = bytes_response("image/png", done.mask_png.clone());
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("{:.6}", done.record.record.lesion.fraction)) {
        h.insert("x-lesion-fraction", v);
    }
    if let Ok(v) = HeaderValue::from_str(&done.record.id) {
        h.insert("x-result-id", v);
    }
    if let Ok(v) = HeaderValue::from_str(&done.record.record.model_sha256) {
        h.insert("x-model-sha256", v);
    }
    Ok(r)
}
