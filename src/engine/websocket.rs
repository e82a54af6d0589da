//! WebSocket steps: the user's one socket (tokio-tungstenite over the user's own TCP or rustls
//! connection), opened by an upgrade request on first use and reused by later steps; a step
//! sends its message and waits for the awaited one. The upgrade counts as a request, the
//! exchange as another whose latency (send to awaited message) is the page's.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::header::{HeaderName, HeaderValue, COOKIE, USER_AGENT};
use hyper::HeaderMap;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use url::Url;

use super::client::{Client, RequestError, Socket};
use super::record::Verdict;
use super::user::{check_and_capture, Fault, PageEnd, User};
use crate::result::ErrorKind;
use crate::test_def::{HttpVersion, Vars, WebSocketStep, WsMessage};

/// An open WebSocket and the URL it was opened on.
pub(crate) struct WsConn {
    url: Url,
    stream: WebSocketStream<Socket>,
}

/// What a step's exchange got.
struct Answer {
    /// The awaited message (empty when the step awaits none).
    message: Bytes,
    /// Data messages received by the step, the awaited one included.
    received: u64,
    /// Their bytes.
    bytes: u64,
}

impl Client {
    /// Opens the user's WebSocket to `url` (the upgrade, with the step's headers, the user
    /// agent and cookies), unless it is open there already: true when it opened one.
    async fn ws_open(
        &mut self,
        url: &Url,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<bool, RequestError> {
        if self.ws.as_ref().is_some_and(|w| w.url == *url) {
            return Ok(false);
        }
        self.ws = None;
        let timeout = self.timeout();
        let opened = tokio::time::timeout(timeout, self.upgrade(url, headers)).await;
        let stream = opened.map_err(|_| RequestError {
            kind: ErrorKind::Timeout,
            message: format!("no WebSocket upgrade within {timeout:?}"),
        })??;
        self.ws = Some(Box::new(WsConn {
            url: url.clone(),
            stream,
        }));
        Ok(true)
    }

    async fn upgrade(
        &self,
        url: &Url,
        headers: &[(HeaderName, HeaderValue)],
    ) -> Result<WebSocketStream<Socket>, RequestError> {
        let mut ws_url = url.clone();
        let scheme = if matches!(url.scheme(), "https" | "wss") {
            "wss"
        } else {
            "ws"
        };
        let _ = ws_url.set_scheme(scheme);
        let mut request = ws_url
            .as_str()
            .into_client_request()
            .map_err(|e| RequestError {
                kind: ErrorKind::Other,
                message: format!("bad WebSocket URL {url}: {e}"),
            })?;
        let h = request.headers_mut();
        h.insert(USER_AGENT, self.user_agent().clone());
        if let Some(cookie) = self.cookie_header(url) {
            h.insert(COOKIE, cookie);
        }
        for (name, value) in headers {
            h.insert(name.clone(), value.clone());
        }
        let (socket, _) = self.connect(url, HttpVersion::Http1).await?;
        let (stream, _response) = tokio_tungstenite::client_async(request, socket)
            .await
            .map_err(|e| ws_error(e, "the WebSocket upgrade"))?;
        Ok(stream)
    }

    /// Sends `send` (if any), then reads until the awaited message (if the step awaits one),
    /// within the request timeout; the messages received are counted either way.
    async fn ws_exchange(
        &mut self,
        send: Option<Message>,
        step: &WebSocketStep,
        keep: usize,
    ) -> (u64, Result<Answer, RequestError>) {
        let timeout = self.timeout();
        let Some(ws) = self.ws.as_mut() else {
            return (0, Err(closed("the WebSocket is not open")));
        };
        let mut answer = Answer {
            message: Bytes::new(),
            received: 0,
            bytes: 0,
        };
        let exchange = exchange(&mut ws.stream, send, step, keep, &mut answer);
        let result = match tokio::time::timeout(timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(RequestError {
                kind: ErrorKind::Timeout,
                message: format!("no awaited message within {timeout:?}"),
            }),
        };
        if result.is_err() {
            self.ws = None;
        }
        (answer.received, result.map(|()| answer))
    }
}

/// The exchange itself (see [`Client::ws_exchange`]); counts into `answer` as it goes.
async fn exchange(
    stream: &mut WebSocketStream<Socket>,
    send: Option<Message>,
    step: &WebSocketStep,
    keep: usize,
    answer: &mut Answer,
) -> Result<(), RequestError> {
    if let Some(message) = send {
        stream
            .send(message)
            .await
            .map_err(|e| ws_error(e, "sending"))?;
    }
    if !step.waits() {
        return Ok(());
    }
    loop {
        let data = match stream.next().await {
            None => return Err(closed("the server closed the WebSocket")),
            Some(Err(e)) => return Err(ws_error(e, "reading")),
            Some(Ok(Message::Close(frame))) => {
                let why = frame.map(|f| format!(" ({} {})", f.code, f.reason));
                return Err(closed(&format!(
                    "the server closed the WebSocket{}",
                    why.unwrap_or_default()
                )));
            }
            Some(Ok(Message::Text(text))) => Bytes::from(text),
            Some(Ok(Message::Binary(bytes))) => bytes,
            // Pings are answered by tungstenite; pongs and frames carry no data.
            Some(Ok(_)) => continue,
        };
        answer.received += 1;
        answer.bytes += data.len() as u64;
        if step.awaited(&data) {
            answer.message = data.slice(..keep.min(data.len()));
            return Ok(());
        }
    }
}

fn closed(message: &str) -> RequestError {
    RequestError {
        kind: ErrorKind::Closed,
        message: message.to_string(),
    }
}

/// Classifies a WebSocket error into the result kinds; `doing` says when it came.
fn ws_error(e: WsError, doing: &str) -> RequestError {
    let kind = match &e {
        WsError::ConnectionClosed | WsError::AlreadyClosed => ErrorKind::Closed,
        WsError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => ErrorKind::Connect,
        WsError::Io(_) => ErrorKind::Reset,
        WsError::Tls(_) => ErrorKind::Tls,
        _ => ErrorKind::Protocol,
    };
    let message = match &e {
        WsError::Http(response) => format!(
            "the server refused the WebSocket upgrade: HTTP {}",
            response.status().as_u16()
        ),
        _ => format!("{doing}: {e}"),
    };
    RequestError { kind, message }
}

impl User {
    /// A WebSocket step's page: the upgrade when the user's socket is not open on the step's
    /// URL (a request), then the exchange (another), checked and captured from the awaited
    /// message; each recorded.
    pub(super) async fn ws_page(
        &self,
        client: &mut Client,
        index: usize,
        ws: &WebSocketStep,
        vars: &mut Vars,
        started: Instant,
    ) -> PageEnd {
        let step = &self.plan.steps[index];
        let hop = match self.first_hop(index, vars) {
            Ok(hop) => hop,
            Err(fault) => return PageEnd::new(Verdict::Failure, 0, Some(fault)),
        };
        let url: &Url = &hop.url;
        let opened = client.ws_open(url, &hop.headers).await;
        let done = Instant::now();
        let mut latency = Duration::ZERO;
        match opened {
            Err(e) => return self.request_error(e, url, done, done - started, 0),
            Ok(true) => {
                latency = done - started;
                self.exchanged(done, latency, Verdict::Success, 0);
            }
            Ok(false) => {}
        }
        if ws.send.is_none() && !ws.waits() {
            return PageEnd::answered(Verdict::Success, 0, done, latency);
        }
        let send = ws.send.as_ref().map(|m| match m {
            WsMessage::Text(t) => Message::text(t.render(vars).into_owned()),
            WsMessage::Binary(b) => Message::binary(b.clone()),
        });
        let keep = super::client::MAX_KEPT_BODY;
        let sent = Instant::now();
        let (received, result) = client.ws_exchange(send, ws, keep).await;
        let done = Instant::now();
        self.recorder
            .borrow_mut()
            .messages(&self.window, index, done, received);
        let answer = match result {
            Ok(answer) => answer,
            Err(e) => return self.request_error(e, url, done, done - sent, 0),
        };
        let latency = done - sent;
        let mut outcome = self.exchanged(done, latency, Verdict::Success, answer.bytes);
        let fault = check_and_capture(step, &HeaderMap::new(), &answer.message, vars)
            .err()
            .map(|why| {
                outcome = Verdict::Failure;
                Fault::new(ErrorKind::Check, why, url.as_str(), None, &answer.message)
            });
        let mut end = PageEnd::answered(outcome, answer.bytes, done, latency);
        end.fault = fault;
        end
    }

    /// Records one WebSocket request (an upgrade or an exchange).
    fn exchanged(&self, done: Instant, latency: Duration, outcome: Verdict, bytes: u64) -> Verdict {
        use std::sync::atomic::Ordering;
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        self.recorder
            .borrow_mut()
            .request(&self.window, done, latency, outcome, bytes);
        outcome
    }
}
