//! One virtual user's HTTP client: a single keep-alive HTTP/1.1 connection (our own codec,
//! [`super::h1`], straight on the socket: no pool, no connection task), reopened when the
//! server closes it or the host changes, plus the user's own cookie jar. Answers are read into
//! one buffer per worker thread; between two requests a connection costs only its socket, so
//! 10 000 thinking users cost little.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::Full;
use hyper::header::{
    HeaderName, HeaderValue, ACCEPT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST,
    SET_COOKIE, USER_AGENT,
};
use hyper::{HeaderMap, Method, Request, StatusCode, Uri};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use url::Url;

use super::decode::{self, Decoder};
use super::h1;
use super::h2::{H2Lane, H2Slot};
use super::resources::Browser;
use super::websocket::WsConn;
use crate::result::ErrorKind;
use crate::test_def::HttpVersion;

/// Body bytes kept per response for checks, captures and error samples; the rest is counted and
/// dropped, so a huge body cannot exhaust memory.
pub const MAX_KEPT_BODY: usize = 4 << 20;

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// What went wrong: one of the result's error kinds.
    pub kind: ErrorKind,
    pub message: String,
}

/// A request to send.
pub struct Outgoing<'a> {
    /// The HTTP version the step asks for.
    pub http: HttpVersion,
    pub method: Method,
    pub url: &'a Url,
    pub headers: &'a [(hyper::header::HeaderName, HeaderValue)],
    pub content_type: Option<&'static str>,
    pub body: Bytes,
    /// Ask for a compressed answer (`Accept-Encoding: gzip, br`) unless a header sets it.
    pub compression: bool,
}

/// A response received, its body decoded (see [`decode`]) and capped at [`MAX_KEPT_BODY`].
pub struct Incoming {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// Kept part of the body, decoded when it came compressed.
    pub body: Bytes,
    /// Full body length as it came over the wire (compressed or not), bytes.
    pub body_len: u64,
    /// Full body length decoded (`body_len` when it was not compressed), bytes.
    pub decoded_len: u64,
    /// The HTTP version it came in.
    pub version: hyper::Version,
}

impl Incoming {
    /// The body's size over the wire and decoded.
    #[inline]
    pub fn size(&self) -> super::record::BodySize {
        super::record::BodySize {
            wire: self.body_len,
            decoded: self.decoded_len,
        }
    }
}

/// What every user of a node shares: TLS settings and resolved addresses.
pub struct Connector {
    /// TLS without ALPN, for HTTP/1.1 and WebSocket steps (as before HTTP/2 came).
    tls: tokio_rustls::TlsConnector,
    /// TLS offering only `h2` (`http = "2"`).
    tls_h2: tokio_rustls::TlsConnector,
    /// TLS offering `h2` and `http/1.1` (`http = "auto"`).
    tls_auto: tokio_rustls::TlsConnector,
    /// Addresses resolved once per `host:port`; a std mutex as it is held only for a lookup.
    resolved: Mutex<HashMap<(String, u16), SocketAddr>>,
    user_agent: HeaderValue,
}

impl Connector {
    /// `insecure` accepts any server certificate (self-signed test targets).
    pub fn new(insecure: bool) -> Arc<Connector> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions");
        let config = if insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
                .with_no_client_auth()
        } else {
            let roots =
                rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        let with_alpn = |protocols: &[&[u8]]| {
            let mut config = config.clone();
            config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
            tokio_rustls::TlsConnector::from(Arc::new(config))
        };
        Arc::new(Connector {
            tls_h2: with_alpn(&[b"h2"]),
            tls_auto: with_alpn(&[b"h2", b"http/1.1"]),
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            resolved: Mutex::new(HashMap::new()),
            user_agent: HeaderValue::from_static(concat!(
                "bench-master/",
                env!("CARGO_PKG_VERSION")
            )),
        })
    }

    /// Resolves `url`'s host once and remembers it (done before a run starts, so the first
    /// requests do not pay for DNS).
    pub async fn resolve(&self, url: &Url) -> Result<SocketAddr, RequestError> {
        let host = url.host_str().unwrap_or_default().to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        if let Some(addr) = self.resolved.lock().unwrap().get(&(host.clone(), port)) {
            return Ok(*addr);
        }
        let name = host.trim_start_matches('[').trim_end_matches(']');
        let addr = tokio::net::lookup_host((name, port))
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| RequestError {
                kind: ErrorKind::Dns,
                message: format!("cannot resolve host {host}"),
            })?;
        self.resolved.lock().unwrap().insert((host, port), addr);
        Ok(addr)
    }
}

/// Connection key: scheme, user info, host and port, as the URL writes them before its path
/// (the `url` crate writes a default port as none, so each origin has one spelling).
#[derive(PartialEq, Eq)]
pub(super) struct Origin(String);

impl Origin {
    pub(super) fn of(url: &Url) -> Origin {
        Origin(url[..url::Position::BeforePath].to_string())
    }

    /// True when `url` is on this origin (one comparison in place: no allocation per request).
    pub(super) fn holds(&self, url: &Url) -> bool {
        self.0 == url[..url::Position::BeforePath]
    }
}

/// A connection's byte stream, plain TCP or TLS. A trait object: measured, an enum of the two
/// costs 100 instructions more per request (its delegation does not inline better).
pub(super) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
pub(super) type Socket = Box<dyn Io>;

/// An open HTTP/1.1 connection: the socket itself. Between two requests nothing else is kept:
/// an answer is read whole before the next request is sent, and bytes beyond it make the
/// connection unusable.
struct Open {
    origin: Origin,
    /// The Host header for this origin.
    host: HeaderValue,
    socket: Socket,
}

/// Size of each worker thread's read buffer, bytes: an answer that fits is parsed where it was
/// read, with no per-user buffer at all.
const READ_BUF: usize = 32 << 10;

thread_local! {
    /// The read buffer of this worker thread's users. Only borrowed inside one poll (never
    /// across an await), so the users of a thread take turns with it.
    static READ: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_BUF].into_boxed_slice());
}

/// A request head bigger than this is not kept in a user's write buffer after its request
/// (a large one is rare: the buffer is made again when needed).
const WRITE_BUF_KEPT: usize = 4 << 10;

/// A request body up to this size goes into the head's write (one write per request).
const BODY_COPIED: usize = 8 << 10;

/// True when a kept socket is still usable: nothing to read and not closed. A server that
/// closed it (EOF or reset) or sent bytes nobody asked for makes it unusable. For TLS this also
/// consumes records that carry no data (session tickets).
fn still_open(socket: &mut Socket) -> bool {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    let mut cx = Context::from_waker(Waker::noop());
    Pin::new(socket).poll_read(&mut cx, &mut buf).is_pending()
}

/// One user's client.
pub struct Client {
    connector: Arc<Connector>,
    conn: Option<Open>,
    cookies: cookie_store::CookieStore,
    /// A server set a cookie: only then are the cookies looked up for each request.
    has_cookies: bool,
    timeout: Duration,
    /// The request timeout's timer, kept from request to request and moved only when it fires
    /// before the current request's deadline (once per timeout at most, where a timer per
    /// request costs a timer-wheel insertion and removal each). `None` until the first request
    /// (or after a cancelled one).
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The request head being written (kept for a retry); its capacity stays for the next.
    head: Vec<u8>,
    /// The last URL requested and its request target (absolute for HTTP/2: the flag).
    last_uri: Option<(String, bool, Uri)>,
    /// The user's HTTP/2 connection, shared with its other stream lanes, and this client's
    /// handle on it.
    h2: H2Lane,
    /// The user's WebSocket, while open.
    /// Boxed: 376 bytes inline in every user's task, WebSocket steps or not.
    pub(super) ws: Option<Box<WsConn>>,
    /// The user's extra connections and cache for page resources, once a page had some.
    pub(super) browser: Option<Box<Browser>>,
}

impl Client {
    pub fn new(connector: Arc<Connector>, timeout: Duration) -> Client {
        Client::sharing(connector, timeout, H2Slot::default())
    }

    /// A client whose HTTP/2 requests go over `h2`, the connection its user's other stream
    /// lanes share.
    pub fn sharing(connector: Arc<Connector>, timeout: Duration, h2: H2Slot) -> Client {
        Client {
            connector,
            conn: None,
            cookies: cookie_store::CookieStore::new(),
            has_cookies: false,
            timeout,
            timer: None,
            head: Vec::new(),
            last_uri: None,
            h2: H2Lane::new(h2),
            ws: None,
            browser: None,
        }
    }

    /// The request timeout.
    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The user agent every request and upgrade names.
    pub(super) fn user_agent(&self) -> &HeaderValue {
        &self.connector.user_agent
    }

    /// Sends one request, due at `sent`, and reads its response; a timeout when no complete
    /// answer came within the request timeout of `sent` (so no reported latency exceeds it).
    pub async fn send(
        &mut self,
        req: Outgoing<'_>,
        keep_body: usize,
        sent: Instant,
    ) -> Result<Incoming, RequestError> {
        let timeout = self.timeout;
        let due = tokio::time::Instant::from_std(sent + timeout);
        let mut timer = match self.timer.take() {
            Some(mut t) => {
                if t.deadline() > due {
                    t.as_mut().reset(due);
                }
                t
            }
            None => Box::pin(tokio::time::sleep_until(due)),
        };
        let result = {
            let mut exchange = std::pin::pin!(self.exchange(req, keep_body));
            std::future::poll_fn(|cx| {
                if let Poll::Ready(r) = exchange.as_mut().poll(cx) {
                    return Poll::Ready(r);
                }
                // The timer may be set for an earlier request's deadline: moved on when it
                // fires early, it fails the request only when this request's is past.
                while timer.as_mut().poll(cx).is_ready() {
                    if timer.deadline() >= due {
                        return Poll::Ready(Err(RequestError {
                            kind: ErrorKind::Timeout,
                            message: format!("no complete answer within {timeout:?}"),
                        }));
                    }
                    timer.as_mut().reset(due);
                }
                Poll::Pending
            })
            .await
        };
        self.timer = Some(timer);
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    /// One exchange on the connection of the step's HTTP version: HTTP/1.1 as it always was,
    /// HTTP/2 on the user's shared connection, or what ALPN gives for `auto`.
    async fn exchange(
        &mut self,
        req: Outgoing<'_>,
        keep_body: usize,
    ) -> Result<Incoming, RequestError> {
        match req.http {
            HttpVersion::Http1 => self.exchange_h1(req, keep_body, None).await,
            // Boxed: inline, their state machines would make every user's task larger by the
            // size of the largest (HTTP/1.1 users included), and count for each user at rest.
            HttpVersion::Http2 => Box::pin(self.exchange_h2(req, keep_body, None)).await,
            HttpVersion::Auto => Box::pin(self.exchange_auto(req, keep_body)).await,
        }
    }

    /// `http = "auto"`: the connection already open to the origin (HTTP/2 or HTTP/1.1), else a
    /// new one speaking what ALPN agreed on; HTTP/1.1 on a plain URL.
    async fn exchange_auto(
        &mut self,
        req: Outgoing<'_>,
        keep_body: usize,
    ) -> Result<Incoming, RequestError> {
        let h1_open = self.conn.as_ref().is_some_and(|o| o.origin.holds(req.url));
        if req.url.scheme() != "https" || h1_open {
            return self.exchange_h1(req, keep_body, None).await;
        }
        if self.h2.holds(req.url) {
            return self.exchange_h2(req, keep_body, None).await;
        }
        let (socket, h2) = self.connect(req.url, HttpVersion::Auto).await?;
        if h2 {
            self.exchange_h2(req, keep_body, Some(socket)).await
        } else {
            self.exchange_h1(req, keep_body, Some(socket)).await
        }
    }

    /// An HTTP/1.1 exchange on the kept connection, or on `socket` (connected by `auto`), or
    /// on a new one. A kept connection that the server closed before any byte of the answer
    /// came (its close crossed our request) is replaced once by a new one.
    async fn exchange_h1(
        &mut self,
        req: Outgoing<'_>,
        keep_body: usize,
        socket: Option<Socket>,
    ) -> Result<Incoming, RequestError> {
        let kept = self
            .conn
            .take()
            .filter(|open| open.origin.holds(req.url))
            .and_then(|mut open| still_open(&mut open.socket).then_some(open));
        let reused = kept.is_some();
        let mut open = match kept {
            Some(open) => open,
            None => self.open_h1(req.url, socket).await?,
        };
        let copied = self.write_head(&req, &open.host);
        let body: &[u8] = if copied { &[] } else { &req.body };
        let head_request = req.method == Method::HEAD;
        let mut result =
            roundtrip(&mut open.socket, &self.head, body, head_request, keep_body).await;
        if reused && matches!(result, Err((_, false))) {
            open = self.open_h1(req.url, None).await?;
            result = roundtrip(&mut open.socket, &self.head, body, head_request, keep_body).await;
        }
        if self.head.capacity() > WRITE_BUF_KEPT {
            self.head = Vec::new();
        }
        let (answer, kept) = result.map_err(|(e, _)| e)?;
        let reusable = answer.reusable();
        let Some(head) = answer.into_head() else {
            unreachable!("a complete answer has its head")
        };
        if reusable {
            self.conn = Some(open);
        }
        self.received(head.status, head.version, head.headers, kept, req.url)
    }

    /// A new HTTP/1.1 connection to `url`'s origin over `socket`, or a new socket.
    async fn open_h1(&self, url: &Url, socket: Option<Socket>) -> Result<Open, RequestError> {
        let socket = match socket {
            Some(socket) => socket,
            // Boxed: the TLS handshake's state machine, once per connection, would otherwise
            // be part of every user's task (1.2 KB).
            None => Box::pin(self.connect(url, HttpVersion::Http1)).await?.0,
        };
        Ok(Open {
            host: host_header(url),
            origin: Origin::of(url),
            socket,
        })
    }

    /// Writes `req`'s head into the user's write buffer, with Host, User-Agent and the user's
    /// cookies (a header the step sets wins over ours), and its body when small: true then.
    fn write_head(&mut self, req: &Outgoing<'_>, host: &HeaderValue) -> bool {
        let out = &mut self.head;
        out.clear();
        h1::request_line(out, &req.method, req.url.path(), req.url.query());
        let set = |name: &HeaderName| req.headers.iter().any(|(n, _)| n == name);
        if !set(&HOST) {
            h1::header(out, &HOST, host);
        }
        if !set(&USER_AGENT) {
            h1::header(out, &USER_AGENT, &self.connector.user_agent);
        }
        if let Some(ct) = req.content_type.filter(|_| !set(&CONTENT_TYPE)) {
            h1::header(out, &CONTENT_TYPE, &HeaderValue::from_static(ct));
        }
        if req.compression && !set(&ACCEPT_ENCODING) {
            h1::header(out, &ACCEPT_ENCODING, &decode::ACCEPT_ENCODING);
        }
        if self.has_cookies && !set(&COOKIE) {
            if let Some(v) = cookie_value(&self.cookies, req.url) {
                h1::header(out, &COOKIE, &v);
            }
        }
        for (i, (name, value)) in req.headers.iter().enumerate() {
            // As in a header map: of two of the same name, the later one is sent.
            if !req.headers[i + 1..].iter().any(|(n, _)| n == name) {
                h1::header(out, name, value);
            }
        }
        h1::end_head(out, &req.method, req.body.len(), set(&CONTENT_LENGTH));
        let copied = req.body.len() <= BODY_COPIED;
        if copied {
            out.extend_from_slice(&req.body);
        }
        copied
    }

    /// The response as the user sees it, after the jar took its cookies; an error when its
    /// compressed body stopped short.
    #[inline]
    pub(super) fn received(
        &mut self,
        status: StatusCode,
        version: hyper::Version,
        headers: HeaderMap,
        kept: Kept,
        url: &Url,
    ) -> Result<Incoming, RequestError> {
        self.keep_cookies(&headers, url);
        let (body, body_len, decoded_len) = kept.finish()?;
        Ok(Incoming {
            status,
            headers,
            body,
            body_len,
            decoded_len,
            version,
        })
    }

    /// Takes into the jar the cookies `headers` (an answer from `url`) set: this client's
    /// answers, and those of the user's resource connections.
    #[inline]
    pub(super) fn keep_cookies(&mut self, headers: &HeaderMap, url: &Url) {
        // A scan of the few response headers costs less than a hashed lookup.
        for (name, value) in headers {
            if name == SET_COOKIE {
                if let Ok(s) = value.to_str() {
                    self.has_cookies |= self.cookies.parse(s, url).is_ok();
                }
            }
        }
    }

    /// The hyper request for `req` (see [`request`]): HTTP/2 names the origin in the request
    /// target, not in a Host header.
    pub(super) fn request_for(
        &mut self,
        req: &Outgoing<'_>,
        host: Option<&HeaderValue>,
    ) -> Result<Request<Full<Bytes>>, RequestError> {
        request(
            req,
            host,
            self.has_cookies.then_some(&self.cookies),
            &self.connector.user_agent,
            &mut self.last_uri,
        )
    }

    /// The user's cookies for `url`, as a Cookie header (WebSocket upgrades).
    pub(super) fn cookie_header(&self, url: &Url) -> Option<HeaderValue> {
        self.has_cookies
            .then(|| cookie_value(&self.cookies, url))
            .flatten()
    }

    /// The user's HTTP/2 connection.
    pub(super) fn h2(&self) -> &H2Slot {
        self.h2.slot()
    }

    /// This client's handle on the user's HTTP/2 connection.
    pub(super) fn h2_lane(&mut self) -> &mut H2Lane {
        &mut self.h2
    }
}

/// The kept part of a body (at most `keep` bytes): the first frame as it came (no copy), more
/// frames appended; and the whole length. A compressed body goes through its decoder instead,
/// which keeps the decoded bytes.
pub(super) struct Kept {
    first: Bytes,
    more: BytesMut,
    /// Bytes over the wire.
    len: u64,
    keep: usize,
    decoder: Option<Decoder>,
}

impl Kept {
    /// Ready for the body of an answer with `headers`, keeping `keep` bytes of it.
    #[inline]
    pub(super) fn new(headers: &HeaderMap, keep: usize) -> Kept {
        Kept {
            first: Bytes::new(),
            more: BytesMut::new(),
            len: 0,
            keep,
            decoder: decode::for_answer(headers, keep),
        }
    }

    /// The next frame of the body; an error when it does not decode.
    #[inline]
    pub(super) fn push(&mut self, data: Bytes) -> Result<(), RequestError> {
        self.len += data.len() as u64;
        if let Some(decoder) = &mut self.decoder {
            return decoder.write(&data);
        }
        let room = self.keep.saturating_sub(self.first.len() + self.more.len());
        if self.first.is_empty() && self.more.is_empty() {
            self.first = data.slice(..room.min(data.len()));
        } else if room > 0 {
            if self.more.is_empty() {
                self.more.extend_from_slice(&self.first);
                self.first = Bytes::new();
            }
            self.more.extend_from_slice(&data[..room.min(data.len())]);
        }
        Ok(())
    }

    /// The next piece of the body, from a read buffer: copied as far as it is kept.
    #[inline]
    pub(super) fn push_slice(&mut self, data: &[u8]) -> Result<(), RequestError> {
        self.len += data.len() as u64;
        if let Some(decoder) = &mut self.decoder {
            return decoder.write(data);
        }
        let room = self.keep.saturating_sub(self.first.len() + self.more.len());
        if room > 0 {
            if !self.first.is_empty() {
                self.more.extend_from_slice(&self.first);
                self.first = Bytes::new();
            }
            self.more.extend_from_slice(&data[..room.min(data.len())]);
        }
        Ok(())
    }

    /// The kept body, its wire length and its decoded length.
    #[inline]
    fn finish(self) -> Result<(Bytes, u64, u64), RequestError> {
        match self.decoder {
            // An empty body (HEAD, 304) has no compressed stream to end.
            Some(decoder) if self.len > 0 => {
                let (body, decoded) = decoder.finish()?;
                Ok((body, self.len, decoded))
            }
            _ if self.more.is_empty() => Ok((self.first, self.len, self.len)),
            _ => Ok((self.more.freeze(), self.len, self.len)),
        }
    }
}

/// The hyper request for `req`, with Host, User-Agent and the user's cookies (`None` while the
/// user has none). `last_uri` keeps the last URL's request target, as a user mostly requests
/// the same URLs again.
fn request(
    req: &Outgoing<'_>,
    host: Option<&HeaderValue>,
    cookies: Option<&cookie_store::CookieStore>,
    user_agent: &HeaderValue,
    last_uri: &mut Option<(String, bool, Uri)>,
) -> Result<Request<Full<Bytes>>, RequestError> {
    // HTTP/1.1 (a Host header) sends the path; HTTP/2 the whole URL (its `:authority`).
    let absolute = host.is_none();
    let uri = match last_uri {
        Some((url, abs, uri)) if *abs == absolute && url == req.url.as_str() => uri.clone(),
        _ => {
            let target = match (absolute, req.url.query()) {
                (true, _) => req.url[..url::Position::AfterQuery].to_string(),
                (false, Some(q)) => format!("{}?{q}", req.url.path()),
                (false, None) => req.url.path().to_string(),
            };
            let uri = Uri::try_from(target).map_err(|e| RequestError {
                kind: ErrorKind::Other,
                message: format!("bad request target in {}: {e}", req.url),
            })?;
            *last_uri = Some((req.url.as_str().to_string(), absolute, uri.clone()));
            uri
        }
    };
    // Built in place rather than through `Request::builder`, whose by-value steps copy the
    // request head several times.
    let mut headers = HeaderMap::with_capacity(5 + req.headers.len());
    if let Some(host) = host {
        headers.insert(HOST, host.clone());
    }
    headers.insert(USER_AGENT, user_agent.clone());
    if let Some(ct) = req.content_type {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    // Before the step's headers, so that an Accept-Encoding the step sets wins.
    if req.compression {
        headers.insert(ACCEPT_ENCODING, decode::ACCEPT_ENCODING);
    }
    if let Some(v) = cookies.and_then(|c| cookie_value(c, req.url)) {
        headers.insert(COOKIE, v);
    }
    for (name, value) in req.headers {
        headers.insert(name.clone(), value.clone());
    }
    let mut request = Request::new(Full::new(req.body.clone()));
    *request.method_mut() = req.method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// The jar's cookies for `url` as one Cookie header value, if it has any.
fn cookie_value(cookies: &cookie_store::CookieStore, url: &Url) -> Option<HeaderValue> {
    let mut values = cookies.get_request_values(url).peekable();
    values.peek()?;
    let cookie = values
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    HeaderValue::from_str(&cookie).ok()
}

impl Client {
    /// A connection to `url`'s host: TLS for `https` and `wss` with the ALPN of `http`; true
    /// when it speaks HTTP/2 (ALPN agreed on `h2`, or `http = "2"` on a plain URL: h2c with
    /// prior knowledge).
    pub(super) async fn connect(
        &self,
        url: &Url,
        http: HttpVersion,
    ) -> Result<(Socket, bool), RequestError> {
        let addr = self.connector.resolve(url).await?;
        let tcp = TcpStream::connect(addr).await.map_err(|e| RequestError {
            kind: ErrorKind::Connect,
            message: format!("cannot connect to {addr}: {e}"),
        })?;
        let _ = tcp.set_nodelay(true);
        if matches!(url.scheme(), "https" | "wss") {
            let host = url.host_str().unwrap_or_default();
            let name = ServerName::try_from(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            )
            .map_err(|e| RequestError {
                kind: ErrorKind::Tls,
                message: format!("bad TLS server name {host}: {e}"),
            })?;
            let connector = match http {
                HttpVersion::Http1 => &self.connector.tls,
                HttpVersion::Http2 => &self.connector.tls_h2,
                HttpVersion::Auto => &self.connector.tls_auto,
            };
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| RequestError {
                    kind: ErrorKind::Tls,
                    message: format!("TLS handshake with {addr} failed: {e}"),
                })?;
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            if http == HttpVersion::Http2 && !h2 {
                return Err(RequestError {
                    kind: ErrorKind::Protocol,
                    message: format!("{addr} does not offer HTTP/2 (ALPN h2) over TLS"),
                });
            }
            Ok((Box::new(tls), h2))
        } else {
            Ok((Box::new(tcp), http == HttpVersion::Http2))
        }
    }
}

/// Writes `head` (and `body`) on `socket` and reads the answer, keeping `keep` bytes of its
/// body. An error says whether any byte of the answer came.
async fn roundtrip(
    socket: &mut Socket,
    head: &[u8],
    body: &[u8],
    head_request: bool,
    keep: usize,
) -> Result<(h1::Answer, Kept), (RequestError, bool)> {
    let written = async {
        socket.write_all(head).await?;
        if !body.is_empty() {
            socket.write_all(body).await?;
        }
        // A no-op for TCP; TLS may still hold records.
        socket.flush().await
    };
    written.await.map_err(|e| (io_error(e), false))?;
    let mut answer = h1::Answer::new(head_request);
    let mut sink = Collect { kept: None, keep };
    let read = std::future::poll_fn(|cx| {
        READ.with_borrow_mut(|buf| loop {
            let mut read = ReadBuf::new(&mut buf[..]);
            match Pin::new(&mut *socket).poll_read(cx, &mut read) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(io_error(e))),
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    return Poll::Ready(answer.end())
                }
                // Read on while the socket has more: mostly the whole answer came at once.
                Poll::Ready(Ok(())) => match answer.feed(read.filled(), &mut sink) {
                    Ok(false) => {}
                    done => return Poll::Ready(done.map(|_| ())),
                },
            }
        })
    });
    match read.await {
        Ok(()) => match sink.kept {
            Some(kept) => Ok((answer, kept)),
            None => unreachable!("a complete answer has its head"),
        },
        Err(e) => Err((e, answer.started())),
    }
}

/// Where [`roundtrip`] puts an answer's body.
struct Collect {
    kept: Option<Kept>,
    keep: usize,
}

impl h1::Sink for Collect {
    fn head(&mut self, head: &h1::Head) {
        self.kept = Some(Kept::new(&head.headers, self.keep));
    }

    fn data(&mut self, data: &[u8]) -> Result<(), RequestError> {
        match &mut self.kept {
            Some(kept) => kept.push_slice(data),
            None => unreachable!("a body's data comes after its head"),
        }
    }
}

pub(super) fn host_header(url: &Url) -> HeaderValue {
    let host = url.host_str().unwrap_or_default();
    let value = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("localhost"))
}

/// Classifies an I/O error on a connection into the result kinds.
fn io_error(e: std::io::Error) -> RequestError {
    let kind = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => ErrorKind::Connect,
        std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
        _ => ErrorKind::Reset,
    };
    RequestError {
        kind,
        message: e.to_string(),
    }
}

/// Verifier for `insecure = true`: accepts any certificate, still checks handshake signatures.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
