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
}

impl H2Slot {
    /// True when an HTTP/2 connection to `url`'s origin is open.
    pub(super) async fn holds(&self, url: &Url) -> bool {
        let link = self.0.lock().await;
        link.as_ref()
            .is_some_and(|l| l.origin.holds(url) && !l.sender.is_closed())
    }
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
        let mut sender = self.h2_sender(req.url, socket).await?;
        let request = self.request_for(&req, None)?;
        sender.ready().await.map_err(hyper_error)?;
        let response = sender.send_request(request).await.map_err(hyper_error)?;
        let (parts, mut body) = response.into_parts();
        let mut kept = Kept::default();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame.map_err(hyper_error)?.into_data() else {
                continue; // trailers
            };
            kept.push(data, keep_body);
        }
        Ok(self.received(parts, kept, req.url))
    }

    /// A request handle on the HTTP/2 connection to `url`'s origin, opened when there is none
    /// (or the server closed it).
    async fn h2_sender(
        &self,
        url: &Url,
        socket: Option<Socket>,
    ) -> Result<SendRequest<Full<Bytes>>, RequestError> {
        let mut link = self.h2().0.lock().await;
        if let Some(l) = link.as_ref() {
            if l.origin.holds(url) && !l.sender.is_closed() {
                return Ok(l.sender.clone());
            }
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
        });
        Ok(sender)
    }
}
