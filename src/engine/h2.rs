//! HTTP/2 for a user: one connection (hyper's `client::conn::http2`, no pool) to the origin,
//! shared by the user's stream lanes (`streams = N`), opened on first use and again once the
//! server closed it. Beside the HTTP/1.1 path, not under it: a step's `http` picks one.
//!
//! hyper multiplexes HTTP/2 in a connection task of its own (spawned on the worker's
//! current-thread runtime, so on the same thread); each request is a stream on it.

use std::rc::Rc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::{self, SendRequest};
use hyper_util::rt::{TokioExecutor, TokioIo};
use url::Url;

use super::client::{hyper_error, Client, Incoming, Kept, Origin, Outgoing, RequestError, Socket};
use crate::test_def::HttpVersion;

/// The user's HTTP/2 connection, shared by its stream lanes (an `Rc`: a user lives on one
/// worker thread). The async mutex is held while connecting, so that lanes starting together
/// open one connection, not one each; otherwise only to clone the request handle.
#[derive(Clone, Default)]
pub struct H2Slot(Rc<tokio::sync::Mutex<Option<H2Link>>>);

/// An open HTTP/2 connection.
struct H2Link {
    origin: Origin,
    sender: SendRequest<Full<Bytes>>,
    /// Which of the user's connections this is (counted from 1), so that a lane forgets only
    /// the one it saw refuse a request, not a newer one another lane opened since.
    number: u64,
}

impl H2Slot {
    /// Drops connection `number` if it is still the user's: the next request opens a new one.
    async fn forget(&self, number: u64) {
        let mut link = self.0.lock().await;
        if let Some(l) = link.take() {
            if l.number != number {
                *link = Some(l);
            }
        }
    }

    /// True when an HTTP/2 connection to `url`'s origin is open.
    pub(super) async fn holds(&self, url: &Url) -> bool {
        let link = self.0.lock().await;
        link.as_ref()
            .is_some_and(|l| l.origin.holds(url) && !l.sender.is_closed())
    }
}

/// True when `e` says the server did not process the request: the connection went away
/// (GOAWAY) before it, the stream was refused, or the connection closed before it was sent.
fn refused(e: &hyper::Error) -> bool {
    use std::error::Error as _;
    if e.is_canceled() {
        return true;
    }
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(h2) = s.downcast_ref::<h2::Error>() {
            return h2.is_go_away() || h2.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        source = s.source();
    }
    false
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
        let response = loop {
            let (mut sender, number) = self.h2_sender(req.url, socket.take()).await?;
            let request = self.request_for(&req, None)?;
            let sent = match sender.ready().await {
                Ok(()) => sender.send_request(request).await,
                Err(e) => Err(e),
            };
            match sent {
                Ok(response) => break response,
                // The server did not process it (RFC 9113 §8.7): once more, on a new
                // connection, as browsers do; the server never saw the first try.
                Err(e) if !retried && refused(&e) => {
                    retried = true;
                    self.h2().forget(number).await;
                }
                Err(e) => return Err(hyper_error(e)),
            }
        };
        let (parts, mut body) = response.into_parts();
        let mut kept = Kept::new(&parts.headers, keep_body);
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(hyper_error)?.into_data() else {
                continue; // trailers
            };
            kept.push(data)?;
        }
        self.received(parts, kept, req.url)
    }

    /// A request handle on the HTTP/2 connection to `url`'s origin, opened when there is none
    /// (or the server closed it), and the connection's number.
    async fn h2_sender(
        &self,
        url: &Url,
        socket: Option<Socket>,
    ) -> Result<(SendRequest<Full<Bytes>>, u64), RequestError> {
        let mut link = self.h2().0.lock().await;
        let mut number = 1;
        if let Some(l) = link.as_ref() {
            if l.origin.holds(url) && !l.sender.is_closed() {
                return Ok((l.sender.clone(), l.number));
            }
            number = l.number + 1;
        }
        let socket = match socket {
            Some(socket) => socket,
            None => self.connect(url, HttpVersion::Http2).await?.0,
        };
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(socket))
            .await
            .map_err(hyper_error)?;
        // The connection task ends when the server closes it or every handle is dropped.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        *link = Some(H2Link {
            origin: Origin::of(url),
            sender: sender.clone(),
            number,
        });
        Ok((sender, number))
    }
}
