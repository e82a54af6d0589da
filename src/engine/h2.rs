//! HTTP/2 for a user: one connection (the `h2` crate's client, no pool) to the origin, shared
//! by the user's stream lanes (`streams = N`), opened on first use and again once the server
//! closed it. Beside the HTTP/1.1 path, not under it: a step's `http` picks one.
//!
//! The connection's frames are read and written in the user's own task, which polls it beside
//! the user's lanes ([`H2Slot::drive`]): one task wake-up serves a whole batch of answers, where
//! a connection task of its own costs one more per batch and one per lane. Each request is a
//! stream on it, sent by the lane straight into h2's stream store (no channel, no lock of ours
//! per request). A client nobody drives (the open model's executions) gets a local task for
//! its connection instead.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use h2::client::SendRequest;
use hyper::header::{HeaderMap, HeaderValue, CONNECTION, CONTENT_LENGTH, TE};
use hyper::{Method, Request};
use url::Url;

use super::client::{Client, Incoming, Kept, Origin, Outgoing, RequestError, Socket};
use crate::result::ErrorKind;
use crate::test_def::HttpVersion;

/// Flow-control windows we grant the server, per stream and for the whole connection: h2load's
/// (2^30 - 1), so that a large answer is never held back by them and WINDOW_UPDATE frames are
/// rare.
const WINDOW: u32 = (1 << 30) - 1;

/// Streams opened before the server's SETTINGS says how many it takes (RFC 9113 suggests a
/// server allows at least 100).
const INITIAL_STREAMS: usize = 100;

/// The user's HTTP/2 connection, shared by its stream lanes and its page resources' clients (an
/// `Rc`: a user lives on one worker thread).
#[derive(Clone, Default)]
pub struct H2Slot(Rc<Slot>);

#[derive(Default)]
struct Slot {
    /// Held while connecting, so that lanes starting together open one connection, not one
    /// each; never held across a request.
    connecting: tokio::sync::Mutex<()>,
    /// The open connection. Borrowed only between awaits, never across one.
    open: RefCell<Option<H2Link>>,
    /// The user's task polls `connections` ([`H2Slot::drive`]).
    driven: Cell<bool>,
    /// The user's connections' futures, which read and write their frames: the open one, and
    /// an older one still answering streams after the server said GOAWAY. Borrowed only by
    /// `drive`, never while a lane runs.
    connections: RefCell<Vec<Driver>>,
}

/// A connection's future and what its handles know of it.
struct Driver {
    connection: h2::client::Connection<Socket, Bytes>,
    conn: Rc<H2Conn>,
}

/// A request handle on an open connection. Each lane keeps its own clone: h2 remembers per
/// handle a stream still waiting for the server's stream limit.
#[derive(Clone)]
struct H2Link {
    conn: Rc<H2Conn>,
    sender: SendRequest<Bytes>,
}

/// What a connection's handles know of it.
struct H2Conn {
    origin: Origin,
    /// Set by the connection's task when it ended (closed by either side, or failed).
    closed: Cell<bool>,
}

impl H2Link {
    fn serves(&self, url: &Url) -> bool {
        !self.conn.closed.get() && self.conn.origin.holds(url)
    }
}

impl H2Slot {
    /// True when an HTTP/2 connection to `url`'s origin is open.
    pub(super) fn holds(&self, url: &Url) -> bool {
        self.0.open.borrow().as_ref().is_some_and(|l| l.serves(url))
    }

    /// Drops connection `conn` if it is still the user's: the next request opens a new one.
    /// Another lane may have opened a newer one since, which stays.
    fn forget(&self, conn: &Rc<H2Conn>) {
        let mut open = self.0.open.borrow_mut();
        if open.as_ref().is_some_and(|l| Rc::ptr_eq(&l.conn, conn)) {
            *open = None;
        }
    }

    /// Runs `user` (the user's lanes) while polling the user's HTTP/2 connections in the same
    /// task. The connections are polled before the lanes (answers read wake them) and after
    /// (requests they sent are written at once, in one flush), with the task's own waker, so
    /// that a connection is read whichever lane waits on it. `user` comes pinned: a future
    /// taken by value would be kept twice in the user's task.
    pub(super) fn drive<'a, F: Future>(
        &'a self,
        mut user: Pin<&'a mut F>,
    ) -> impl Future<Output = F::Output> + 'a {
        self.0.driven.set(true);
        std::future::poll_fn(move |cx| {
            self.poll_connections(cx);
            if let Poll::Ready(out) = user.as_mut().poll(cx) {
                return Poll::Ready(out);
            }
            self.poll_connections(cx);
            Poll::Pending
        })
    }

    /// Polls each connection once; those that ended are marked closed and dropped.
    fn poll_connections(&self, cx: &mut Context<'_>) {
        let mut connections = self.0.connections.borrow_mut();
        connections.retain_mut(|d| match Pin::new(&mut d.connection).poll(cx) {
            Poll::Ready(_) => {
                d.conn.closed.set(true);
                false
            }
            Poll::Pending => true,
        });
    }

    /// A handle on the open connection if it serves `url`.
    fn current(&self, url: &Url) -> Option<H2Link> {
        self.0
            .open
            .borrow()
            .as_ref()
            .filter(|l| l.serves(url))
            .cloned()
    }
}

/// One client's (a lane's) view of the user's connection: the slot it shares, and its own
/// handle on the connection, kept from request to request while it is the slot's.
pub(super) struct H2Lane {
    slot: H2Slot,
    /// Boxed: one pointer in every client's state, HTTP/2 or not.
    link: Option<Box<H2Link>>,
}

impl H2Lane {
    pub(super) fn new(slot: H2Slot) -> H2Lane {
        H2Lane { slot, link: None }
    }

    /// The connection shared with the user's other clients.
    pub(super) fn slot(&self) -> &H2Slot {
        &self.slot
    }

    /// True when an HTTP/2 connection to `url`'s origin is open.
    pub(super) fn holds(&self, url: &Url) -> bool {
        self.slot.holds(url)
    }

    /// This lane's handle when it is still the user's connection and serves `url` (a pointer
    /// comparison: the per-request path).
    fn take(&mut self, url: &Url) -> Option<Box<H2Link>> {
        let link = self.link.take()?;
        let open = self.slot.0.open.borrow();
        let current = open
            .as_ref()
            .is_some_and(|l| Rc::ptr_eq(&l.conn, &link.conn));
        (current && link.serves(url)).then_some(link)
    }
}

/// Headers that name the connection, not the request: HTTP/2 forbids them (RFC 9113 §8.2.2),
/// and h2 refuses a request that has them. A step may set them for HTTP/1.1.
fn strip_connection_headers(headers: &mut HeaderMap) {
    if let Some(named) = headers.remove(CONNECTION) {
        if let Ok(named) = named.to_str() {
            for name in named.split(',') {
                headers.remove(name.trim());
            }
        }
    }
    for name in [
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
    if headers.get(TE).is_some_and(|te| te != "trailers") {
        headers.remove(TE);
    }
}

/// What to do after `e` on a request (`sent` says it went out): send it again once when the
/// server did not process it (RFC 9113 §8.7), as browsers do.
#[derive(PartialEq)]
enum Retry {
    No,
    /// On the same connection: the server refused the stream (REFUSED_STREAM) but keeps the
    /// connection.
    Same,
    /// On a new connection: this one is going away (GOAWAY before our stream), or failed or
    /// closed before the request went out.
    New,
}

fn retry(e: &h2::Error, sent: bool) -> Retry {
    if e.is_go_away() || (!sent && (e.is_io() || e.is_reset())) {
        Retry::New
    } else if e.reason() == Some(h2::Reason::REFUSED_STREAM) {
        Retry::Same
    } else {
        // A user error (a header h2 refuses) fails the same way again.
        Retry::No
    }
}

/// Classifies an h2 error into the result kinds.
pub(super) fn h2_error(e: h2::Error) -> RequestError {
    let kind = if let Some(io) = e.get_io() {
        match io.kind() {
            std::io::ErrorKind::ConnectionRefused => ErrorKind::Connect,
            std::io::ErrorKind::TimedOut => ErrorKind::Timeout,
            _ => ErrorKind::Reset,
        }
    } else if e.is_library() {
        // h2 found the server breaking the protocol.
        ErrorKind::Protocol
    } else if e.is_go_away() || e.is_reset() {
        match e.reason() {
            Some(
                h2::Reason::PROTOCOL_ERROR
                | h2::Reason::COMPRESSION_ERROR
                | h2::Reason::FRAME_SIZE_ERROR
                | h2::Reason::FLOW_CONTROL_ERROR,
            ) => ErrorKind::Protocol,
            _ => ErrorKind::Reset,
        }
    } else {
        ErrorKind::Other
    };
    RequestError {
        kind,
        message: format!("HTTP/2: {e}"),
    }
}

/// Methods whose request body has a meaning even when empty: they get a Content-Length of 0.
fn has_payload(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

impl Client {
    /// One exchange on the user's HTTP/2 connection to `req`'s origin: the open one, else one
    /// made over `socket` (connected by `auto`) or a new one.
    pub(super) async fn exchange_h2(
        &mut self,
        req: Outgoing<'_>,
        keep_body: usize,
        socket: Option<Socket>,
    ) -> Result<Incoming, RequestError> {
        let mut socket = socket;
        let mut retried = false;
        let end = req.body.is_empty();
        let response = loop {
            let mut link = match self.h2_lane().take(req.url) {
                Some(link) => link,
                None => self.h2_link(req.url, socket.take()).await?,
            };
            let head = self.h2_head(&req)?;
            let sent = match std::future::poll_fn(|cx| link.sender.poll_ready(cx)).await {
                Ok(()) => link.sender.send_request(head, end),
                Err(e) => Err(e),
            };
            let conn = link.conn.clone();
            self.h2_lane().link = Some(link);
            let result = match sent {
                Ok((response, mut body)) => match end {
                    true => response.await.map_err(|e| (e, true)),
                    false => match body.send_data(req.body.clone(), true) {
                        Ok(()) => response.await.map_err(|e| (e, true)),
                        Err(e) => Err((e, true)),
                    },
                },
                Err(e) => Err((e, false)),
            };
            match result {
                Ok(response) => break response,
                Err((e, sent)) => {
                    let again = retry(&e, sent);
                    if retried || again == Retry::No {
                        return Err(h2_error(e));
                    }
                    if again == Retry::New {
                        self.h2().forget(&conn);
                    }
                    retried = true;
                }
            }
        };
        let (parts, mut body) = response.into_parts();
        let mut kept = Kept::new(&parts.headers, keep_body);
        // Trailers, if any, end the data and are ignored.
        while let Some(data) = body.data().await {
            let data = data.map_err(h2_error)?;
            // Our windows are large, but not endless: what was read is the server's again.
            let _ = body.flow_control().release_capacity(data.len());
            kept.push(data)?;
        }
        self.received(parts.status, parts.version, parts.headers, kept, req.url)
    }

    /// The request head for HTTP/2: the origin in the request target, no connection headers,
    /// and the body's length.
    fn h2_head(&mut self, req: &Outgoing<'_>) -> Result<Request<()>, RequestError> {
        let (mut parts, _) = self.request_for(req, None)?.into_parts();
        strip_connection_headers(&mut parts.headers);
        if (!req.body.is_empty() || has_payload(&req.method))
            && !parts.headers.contains_key(CONTENT_LENGTH)
        {
            parts
                .headers
                .insert(CONTENT_LENGTH, HeaderValue::from(req.body.len()));
        }
        Ok(Request::from_parts(parts, ()))
    }

    /// A handle on the user's HTTP/2 connection to `url`'s origin, opened when there is none
    /// (or the server closed it) over `socket` or a new one.
    async fn h2_link(
        &self,
        url: &Url,
        socket: Option<Socket>,
    ) -> Result<Box<H2Link>, RequestError> {
        let slot = self.h2().clone();
        let _connecting = slot.0.connecting.lock().await;
        // Another lane may have opened it while this one waited.
        if let Some(link) = slot.current(url) {
            return Ok(Box::new(link));
        }
        let socket = match socket {
            Some(socket) => socket,
            None => self.connect(url, HttpVersion::Http2).await?.0,
        };
        let (sender, connection) = h2::client::Builder::new()
            .initial_window_size(WINDOW)
            .initial_connection_window_size(WINDOW)
            .initial_max_send_streams(INITIAL_STREAMS)
            .enable_push(false)
            .handshake::<_, Bytes>(socket)
            .await
            .map_err(h2_error)?;
        let conn = Rc::new(H2Conn {
            origin: Origin::of(url),
            closed: Cell::new(false),
        });
        // It ends when the server closes it, or every handle and stream is dropped.
        let driver = Driver {
            connection,
            conn: conn.clone(),
        };
        if slot.0.driven.get() {
            slot.0.connections.borrow_mut().push(driver);
        } else {
            tokio::task::spawn_local(async move {
                let _ = driver.connection.await;
                driver.conn.closed.set(true);
            });
        }
        let link = H2Link { conn, sender };
        *slot.0.open.borrow_mut() = Some(link.clone());
        Ok(Box::new(link))
    }
}
