//! The built-in target (`bench-node target --listen ADDR`): a small HTTP server for the
//! quickstart, the tests and for calibrating how much load a node can make. It speaks HTTP/1.1
//! and, on the same port, HTTP/2 to a client that starts with HTTP/2's preface (h2c with prior
//! knowledge, `http = "2"` on a plain `http://` URL).
//!
//! Any path answers `200 ok`; the query changes the answer:
//! `delay_ms=N` waits N ms first, `status=N` answers with status N, `bytes=N` sends a body of
//! N bytes, `close=1` closes the connection after the answer, `redirect=PATH` answers 302 to
//! PATH, `set_cookie=NAME=VALUE` sets a cookie, `need_cookie=NAME` answers 401 unless the
//! request carries that cookie. `/objects/KEY` is a small object store: `PUT` keeps the body
//! (at most 64 MiB, 256 MiB in all), `GET` answers it (404 when absent), `DELETE` drops it.
//! `/__count` returns the number of requests received so far (itself not counted),
//! `/__connections` the number of connections accepted. `/__ws` is a WebSocket echo: every text
//! or binary message comes back as it was. `/__shop` is an HTML page for a browser to record:
//! a stylesheet, a script and an image (answered `ok`), a login form posted to a redirect, a
//! JSON POST and an XHR made by its script. With an idle
//! timeout it closes keep-alive connections that wait longer than that for a request, as
//! production servers do.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// Largest body `bytes=N` sends, and largest object `PUT` keeps (64 MiB).
const MAX_BODY: usize = 64 << 20;
/// Bytes the object store holds in all (256 MiB); a `PUT` beyond answers 507.
const MAX_STORED: usize = 256 << 20;

/// `/__shop`'s page.
const SHOP: &str = include_str!("shop.html");

/// The objects of `/objects/KEY`, shared by every connection.
type Objects = Arc<Mutex<Store>>;

/// Objects by key, and the bytes they hold in all.
#[derive(Default)]
struct Store {
    map: HashMap<String, Bytes>,
    bytes: usize,
}

/// A running target: its address and the count of requests it received.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// Requests received (answered or not), `/__count` excluded.
    pub requests: Arc<AtomicU64>,
    /// Connections accepted.
    pub connections: Arc<AtomicU64>,
    /// The object store (a std mutex: held for a map operation, never across an await).
    objects: Objects,
    /// A keep-alive connection waiting longer than this for its next request is closed.
    pub idle_timeout: Option<Duration>,
}

impl Target {
    /// Binds `addr` (port 0 picks a free one) and serves until `shutdown` completes.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<(Target, TcpListener)> {
        let listener = TcpListener::bind(addr).await?;
        let target = Target {
            addr: listener.local_addr()?,
            requests: Arc::new(AtomicU64::new(0)),
            connections: Arc::new(AtomicU64::new(0)),
            objects: Objects::default(),
            idle_timeout: None,
        };
        Ok((target, listener))
    }

    /// Accepts connections until `shutdown` completes; over TLS when `tls` is given.
    pub async fn serve(
        self,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                // A new connection: served by its own task.
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let _ = stream.set_nodelay(true);
                    self.connections.fetch_add(1, Ordering::SeqCst);
                    let counts = (self.requests.clone(), self.connections.clone());
                    let objects = self.objects.clone();
                    let tls = tls.clone();
                    // HTTP/1.1, or HTTP/2 when the connection opens with its preface.
                    let mut http = auto::Builder::new(TokioExecutor::new());
                    if let Some(idle) = self.idle_timeout {
                        // hyper's header timeout runs from the end of the previous answer, so
                        // it is also the keep-alive idle timeout.
                        http.http1().timer(TokioTimer::new()).header_read_timeout(idle);
                    }
                    tokio::spawn(async move {
                        let service = service_fn(move |req| answer(req, counts.clone(), objects.clone()));
                        let _ = match tls {
                            Some(tls) => match tls.accept(stream).await {
                                Ok(stream) => http.serve_connection_with_upgrades(TokioIo::new(stream), service).await,
                                Err(_) => return,
                            },
                            None => http.serve_connection_with_upgrades(TokioIo::new(stream), service).await,
                        };
                    });
                }
                // Asked to stop.
                _ = &mut shutdown => return,
            }
        }
    }

    /// Starts a target on a background task of the current runtime (for tests).
    pub async fn spawn(addr: SocketAddr) -> std::io::Result<Target> {
        let (target, listener) = Target::bind(addr).await?;
        tokio::spawn(target.clone().serve(listener, None, std::future::pending()));
        Ok(target)
    }

    /// Requests received so far.
    pub fn count(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connection_count(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Answers one request; `counts` are the requests and connections counters.
async fn answer(
    req: Request<hyper::body::Incoming>,
    (count, connections): (Arc<AtomicU64>, Arc<AtomicU64>),
    objects: Objects,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.uri().path() == "/__ws" {
        count.fetch_add(1, Ordering::SeqCst);
        return Ok(echo_websocket(req));
    }
    let reported = match req.uri().path() {
        "/__count" => Some(&count),
        "/__connections" => Some(&connections),
        _ => None,
    };
    if let Some(n) = reported {
        let n = n.load(Ordering::SeqCst);
        return Ok(Response::new(Full::new(Bytes::from(n.to_string()))));
    }
    count.fetch_add(1, Ordering::SeqCst);
    if req.uri().path() == "/__shop" {
        let mut page = Response::new(Full::new(Bytes::from_static(SHOP.as_bytes())));
        let html = hyper::header::HeaderValue::from_static("text/html; charset=utf-8");
        page.headers_mut().insert(hyper::header::CONTENT_TYPE, html);
        return Ok(page);
    }
    if let Some(key) = req.uri().path().strip_prefix("/objects/") {
        let key = key.to_string();
        return Ok(object(req, key, &objects).await);
    }
    let mut status = StatusCode::OK;
    let mut body = Bytes::from_static(b"ok\n");
    let mut close = false;
    let mut delay = Duration::ZERO;
    let mut extra = Vec::new();
    for (key, value) in url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "delay_ms" => delay = Duration::from_millis(value.parse().unwrap_or(0)),
            "status" => {
                status = value
                    .parse()
                    .ok()
                    .and_then(|s| StatusCode::from_u16(s).ok())
                    .unwrap_or(status)
            }
            "bytes" => {
                body = Bytes::from(vec![
                    b'x';
                    value.parse::<usize>().unwrap_or(0).min(MAX_BODY)
                ])
            }
            "close" => close = value == "1",
            "redirect" => {
                status = StatusCode::FOUND;
                extra.push((hyper::header::LOCATION, value.into_owned()));
            }
            "set_cookie" => extra.push((hyper::header::SET_COOKIE, format!("{value}; Path=/"))),
            "need_cookie" => {
                let has = req
                    .headers()
                    .get_all(hyper::header::COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(';'))
                    .any(|c| c.trim().split('=').next() == Some(value.as_ref()));
                if !has {
                    status = StatusCode::UNAUTHORIZED;
                }
            }
            _ => {}
        }
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    for (name, value) in extra {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&value) {
            response.headers_mut().append(name, v);
        }
    }
    if close {
        response.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("close"),
        );
    }
    Ok(response)
}

/// `/__ws`: accepts the WebSocket upgrade (a 400 without one) and echoes every data message on
/// a task of its own until the client closes.
fn echo_websocket(mut req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{handshake::derive_accept_key, protocol::Role};

    let key = req.headers().get(hyper::header::SEC_WEBSOCKET_KEY).cloned();
    let Some(key) = key else {
        let mut response = Response::new(Full::new(Bytes::from_static(b"a WebSocket upgrade\n")));
        *response.status_mut() = StatusCode::BAD_REQUEST;
        return response;
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let io = TokioIo::new(upgraded);
        let mut ws =
            tokio_tungstenite::WebSocketStream::from_raw_socket(io, Role::Server, None).await;
        while let Some(Ok(message)) = ws.next().await {
            if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err() {
                return;
            }
        }
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("upgrade"),
    );
    h.insert(
        hyper::header::UPGRADE,
        hyper::header::HeaderValue::from_static("websocket"),
    );
    if let Ok(accept) = hyper::header::HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(hyper::header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// `/objects/KEY`: `PUT` keeps the body, `GET` answers it, `DELETE` drops it.
async fn object(
    req: Request<hyper::body::Incoming>,
    key: String,
    objects: &Objects,
) -> Response<Full<Bytes>> {
    use http_body_util::{BodyExt, Limited};
    let reply = |status: StatusCode, body: Bytes| {
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        response
    };
    let gone = || {
        reply(
            StatusCode::NOT_FOUND,
            Bytes::from_static(b"no such object\n"),
        )
    };
    match *req.method() {
        hyper::Method::GET => {
            let found = objects.lock().expect("not poisoned").map.get(&key).cloned();
            found.map_or_else(gone, |body| reply(StatusCode::OK, body))
        }
        hyper::Method::DELETE => {
            let mut store = objects.lock().expect("not poisoned");
            match store.map.remove(&key) {
                Some(old) => {
                    store.bytes -= old.len();
                    reply(StatusCode::NO_CONTENT, Bytes::new())
                }
                None => gone(),
            }
        }
        hyper::Method::PUT => {
            let Ok(body) = Limited::new(req.into_body(), MAX_BODY).collect().await else {
                let too_big = Bytes::from_static(b"object too large or cut short\n");
                return reply(StatusCode::PAYLOAD_TOO_LARGE, too_big);
            };
            let body = body.to_bytes();
            let mut store = objects.lock().expect("not poisoned");
            let replaced = store.map.get(&key).map_or(0, Bytes::len);
            if store.bytes - replaced + body.len() > MAX_STORED {
                return reply(
                    StatusCode::INSUFFICIENT_STORAGE,
                    Bytes::from_static(b"store full\n"),
                );
            }
            store.bytes = store.bytes - replaced + body.len();
            store.map.insert(key, body);
            reply(StatusCode::CREATED, Bytes::new())
        }
        _ => reply(StatusCode::METHOD_NOT_ALLOWED, Bytes::new()),
    }
}
