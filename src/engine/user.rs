//! A virtual user: runs the test's steps in order, over and over, until its cycle's window is
//! over, recording every request, page and test execution.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt as _;
use hyper::header::{
    HeaderName, HeaderValue, AUTHORIZATION, COOKIE, LOCATION, PROXY_AUTHORIZATION,
};
use hyper::{Method, StatusCode};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use url::Url;

use super::client::{Client, Connector, Incoming, Outgoing, RequestError, MAX_KEPT_BODY};
use super::data::Rows;
use super::h2::H2Slot;
use super::record::{BodySize, ErrorReport, Recorder, Verdict, Window};
use super::resources::{is_html, Fetched};
use super::Counters;
use crate::result::{ErrorKind, PageResources, MAX_SAMPLE_BODY};
use crate::test_def::{HttpVersion, Resources, Step, TestPlan, Vars};

/// Redirects followed per page before the page is a failure.
pub(super) const MAX_REDIRECTS: usize = 10;

/// Where a cycle stands, as users see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CyclePhase {
    /// Users keep going.
    Running,
    /// The window is over: finish the request in flight, start nothing new.
    Finish,
    /// Stop now: requests in flight are abandoned.
    Abort,
}

/// Everything one user needs; built by its worker.
pub struct User {
    pub plan: Arc<TestPlan>,
    pub connector: Arc<Connector>,
    /// Per step, its URL when it has no template.
    pub static_urls: Arc<[Option<Url>]>,
    /// The data files' rows: one of each binds per test execution.
    pub rows: Arc<Rows>,
    pub recorder: Rc<RefCell<Recorder>>,
    pub counters: Arc<Counters>,
    pub window: Window,
    /// The cycle's phase; users watch it between and during requests.
    pub phase: watch::Receiver<CyclePhase>,
    pub node: u32,
    pub nodes: u32,
    /// User number within the cycle on this node.
    pub number: u32,
    /// When this user starts.
    pub start_at: Instant,
}

impl User {
    /// Closed model: loops over the test until the cycle's phase leaves `Running`; with
    /// `streams = N`, N loops at once (lanes), sharing the user's HTTP/2 connection.
    pub async fn run(self) {
        if !self.pause_until(self.start_at).await {
            return;
        }
        self.recorder.borrow_mut().user_began(Instant::now());
        let _running = self.counters.user_running();
        let lanes = self.plan.streams.max(1);
        // The user's HTTP/2 connection is read and written in this task, beside its lanes.
        let h2 = H2Slot::default();
        if lanes == 1 {
            return h2.drive(std::pin::pin!(self.lane(h2.clone(), 0, 1))).await;
        }
        // In this task too (one wake-up for a batch of answers, not one per lane), dropped
        // with it (an abort).
        let mut set: futures_util::stream::FuturesUnordered<_> = (0..lanes)
            .map(|lane| self.lane(h2.clone(), lane, lanes))
            .collect();
        let all = async { while set.next().await.is_some() {} };
        h2.drive(std::pin::pin!(all)).await;
    }

    /// One loop over the test: lane `lane` of `lanes` numbers its iterations `lane`,
    /// `lane + lanes`, ... so that they stay unique per user. Its client (HTTP/2 over `h2`)
    /// is made here, not passed in: an argument is kept twice in the task's state machine.
    async fn lane(&self, h2: H2Slot, lane: u32, lanes: u32) {
        let timeout = self.plan.bench.timeout;
        let mut client = Client::sharing(self.connector.clone(), timeout, h2);
        // Lane 0 draws the user's own stream (so one stream per user picks as before); the
        // others draw streams of their own, from the seed when there is one.
        let seed = self
            .plan
            .bench
            .seed
            .map(|s| s ^ u64::from(lane).wrapping_mul(0xD1B5_4A32_D192_ED03));
        let mut rng = user_rng(seed, self.node, self.window.cycle, self.number);
        let mut iteration = u64::from(lane);
        while self.running() {
            if !self
                .execute(&mut client, &mut rng, iteration, Instant::now())
                .await
            {
                break;
            }
            iteration += u64::from(lanes);
            let pause = self.plan.bench.sleep_time;
            if !pause.is_zero() && !self.rest(Instant::now() + pause).await {
                break;
            }
        }
    }

    /// One execution of the whole test, due at `scheduled`: the test's latency and its first
    /// page's count from then (so a late start is not hidden). False when the cycle ended
    /// before the test completed; an incomplete test is not recorded (an abort drops the task).
    pub async fn execute(
        &self,
        client: &mut Client,
        rng: &mut SmallRng,
        iteration: u64,
        scheduled: Instant,
    ) -> bool {
        let mut vars = Vars {
            node: self.node,
            nodes: self.nodes,
            user: self.number,
            iteration,
            captured: Default::default(),
        };
        // Out of rows (`on_end = "stop"`): no execution starts, the user stops.
        if !self.rows.is_empty() && !self.rows.bind(&mut vars, rng) {
            return false;
        }
        let scenario = self.plan.scenarios.pick(rng);
        let steps = self.plan.scenarios.all()[scenario].steps.clone();
        let first = steps.start;
        let many = steps.len() > 1;
        let mut outcome = Verdict::Success;
        // The test ends when its last page does; a one-page test lasts as long as its page.
        let mut done = scheduled;
        let mut latency = Duration::ZERO;
        for index in steps {
            if index > first && !self.think(rng).await {
                return false;
            }
            if !self.running() {
                return false;
            }
            let started = if index == first {
                scheduled
            } else {
                Instant::now()
            };
            // Inline, not boxed: moving the page's 2.3 KB state machine into a new box for
            // every page cost 4 % of the instructions per request; inline it makes a thinking
            // user's task 2.3 KB larger (23 MB for 10 000 users).
            let (page, ended, page_latency) = self.page(client, index, &mut vars, started).await;
            done = ended;
            latency = page_latency;
            if page != Verdict::Success {
                outcome = page;
                break;
            }
        }
        if many {
            latency = done - scheduled;
        }
        self.recorder
            .borrow_mut()
            .test(&self.window, done, latency, outcome, scenario);
        true
    }

    /// True until the window's end or the controller's word: a user stops by itself at the
    /// end, without waiting for the controller, which may be waiting for a core behind busy
    /// users (128 nodes on 2 cores ended 35 to 180 ms late so).
    fn running(&self) -> bool {
        *self.phase.borrow() == CyclePhase::Running && Instant::now() < self.window.end
    }

    /// Sleeps until `t`; false when the cycle ended meanwhile.
    async fn pause_until(&self, t: Instant) -> bool {
        let mut phase = self.phase.clone();
        tokio::select! {
            // The pause ran out: go on if the cycle still runs.
            _ = tokio::time::sleep_until(t.into()) => self.running(),
            // The phase left Running (or the controller is gone).
            _ = phase.wait_for(|p| *p != CyclePhase::Running) => false,
        }
    }

    /// Think time between two steps, uniform in [min, max].
    async fn think(&self, rng: &mut SmallRng) -> bool {
        let (min, max) = (
            self.plan.bench.sleep_time_min,
            self.plan.bench.sleep_time_max,
        );
        if max.is_zero() {
            return true;
        }
        let d = if max > min {
            rng.gen_range(min..=max)
        } else {
            min
        };
        self.rest(Instant::now() + d).await
    }

    /// Waits until `t` (the connection stays open, costing only its socket); false when the
    /// cycle ended meanwhile.
    async fn rest(&self, t: Instant) -> bool {
        self.pause_until(t).await
    }

    /// One page: the step's request and its redirects, recorded; how and when it ended.
    async fn page(
        &self,
        client: &mut Client,
        index: usize,
        vars: &mut Vars,
        started: Instant,
    ) -> (Verdict, Instant, Duration) {
        let end = self.exchanges(client, index, vars, started).await;
        let latency = end.latency.unwrap_or_else(|| end.done - started);
        let mut recorder = self.recorder.borrow_mut();
        if let Some(f) = &end.fault {
            recorder.error(
                end.done,
                ErrorReport {
                    step: index,
                    kind: f.kind,
                    detail: f.detail.clone(),
                    url: &f.url,
                    status: f.status,
                    body: &f.body,
                },
            );
        }
        recorder.page(
            &self.window,
            index,
            end.done,
            latency,
            end.outcome,
            end.bytes,
        );
        if !end.resources.is_empty() {
            recorder.resources(&self.window, index, end.done, &end.resources);
        }
        (end.outcome, end.done, latency)
    }

    /// The requests of one page (redirects followed, then its resources), each recorded; the
    /// page's end.
    async fn exchanges(
        &self,
        client: &mut Client,
        index: usize,
        vars: &mut Vars,
        started: Instant,
    ) -> PageEnd {
        let step = &self.plan.steps[index];
        if let Some(ws) = &step.websocket {
            // Boxed, as the HTTP/2 exchange: not every user's task sized for a WebSocket's.
            return Box::pin(self.ws_page(client, index, ws, vars, started)).await;
        }
        let mut hop = match self.first_hop(index, vars) {
            Ok(hop) => hop,
            Err(fault) => return PageEnd::new(Verdict::Failure, 0, Some(fault)),
        };
        let keep = if step.checks.is_empty()
            && step.captures.is_empty()
            && step.resources == Resources::Off
        {
            MAX_SAMPLE_BODY
        } else {
            MAX_KEPT_BODY
        };
        let mut bytes = BodySize::default();
        for n in 0..=MAX_REDIRECTS {
            // The first request of a page counts from the page's start (its schedule).
            let sent = if n == 0 { started } else { Instant::now() };
            // An abort drops the whole task (see the worker), so no per-request watch here.
            let result = client.send(hop.outgoing(), keep, sent).await;
            let done = Instant::now();
            let latency = done - sent;
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let response = match result {
                Ok(r) => r,
                Err(e) => return self.request_error(e, &hop.url, done, latency, bytes),
            };
            bytes += response.size();
            if step.http == HttpVersion::Auto {
                self.counters.negotiated(index, response.version);
            }
            let outcome = self.answered(step, &response, done, latency);
            if let Some(next) = follow_redirect(step, &hop.url, &response) {
                hop.redirect(next, response.status);
                continue;
            }
            // The page's first request was sent when the page started.
            let latency = if n == 0 { latency } else { done - started };
            let end = Ending {
                outcome,
                bytes,
                done,
                latency,
            };
            let mut end = page_end(step, &response, &hop.url, vars, end);
            // An HTML page that came well brings its resources.
            if step.resources != Resources::Off
                && end.outcome == Verdict::Success
                && is_html(&response.headers)
            {
                // Boxed, as a WebSocket page: not every user's task sized for it.
                let fetched = self.resources(client, step, &hop.url, &response.body);
                let fetched = Box::pin(fetched).await;
                end.add(fetched, started);
            }
            return end;
        }
        let detail = format!("more than {MAX_REDIRECTS} redirects");
        let fault = Fault::new(ErrorKind::Status, detail, hop.url.as_str(), None, b"");
        PageEnd::new(Verdict::Failure, bytes, Some(fault))
    }

    /// The first request of step `index`, or why its URL cannot be built.
    pub(super) fn first_hop(&self, index: usize, vars: &Vars) -> Result<Hop<'_>, Fault> {
        let plan = &*self.plan;
        let step = &plan.steps[index];
        // A static URL is borrowed, not copied, for every page.
        let url = match &self.static_urls[index] {
            Some(url) => Cow::Borrowed(url),
            None => match step.url(&plan.url, vars) {
                Ok(url) => Cow::Owned(url),
                Err(message) => return Err(Fault::new(ErrorKind::Other, message, "", None, b"")),
            },
        };
        let (content_type, body) = match &step.body {
            Some(b) => b.render(vars),
            None => (None, Bytes::new()),
        };
        Ok(Hop {
            http: step.http,
            method: step.method.clone(),
            url,
            headers: render_headers(step, vars),
            content_type,
            body,
            compression: step.compression.unwrap_or(plan.bench.compression),
        })
    }

    /// Records an answer; a success when the step (or the bench) accepts its status.
    #[inline]
    fn answered(
        &self,
        step: &Step,
        response: &Incoming,
        done: Instant,
        latency: Duration,
    ) -> Verdict {
        let code = response.status.as_u16();
        let accepted = match &step.expect_status {
            Some(codes) => codes.contains(&code),
            None => self.plan.bench.ok_codes.contains(&code),
        };
        let outcome = if accepted {
            Verdict::Success
        } else {
            self.counters.failures.fetch_add(1, Ordering::Relaxed);
            Verdict::Failure
        };
        self.recorder
            .borrow_mut()
            .request(&self.window, done, latency, outcome, response.size());
        outcome
    }

    /// Records a request that got no answer; the page ends with its error.
    pub(super) fn request_error(
        &self,
        e: RequestError,
        url: &Url,
        done: Instant,
        latency: Duration,
        bytes: impl Into<BodySize>,
    ) -> PageEnd {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        self.recorder
            .borrow_mut()
            .request(&self.window, done, latency, Verdict::Error, 0);
        let fault = Fault::new(
            e.kind,
            e.message.clone(),
            url.as_str(),
            None,
            e.message.as_bytes(),
        );
        PageEnd::new(Verdict::Error, bytes, Some(fault))
    }
}

/// The random stream of user `number` of node `node` in `cycle`: from `[bench] seed` when
/// given (the same streams every run), else from the system.
pub fn user_rng(seed: Option<u64>, node: u32, cycle: u32, number: u32) -> SmallRng {
    match seed {
        Some(seed) => {
            let who = (u64::from(node) << 40) ^ (u64::from(cycle) << 32) ^ u64::from(number);
            // Distinct users get distinct, well-spread seeds (SplitMix64's constant).
            SmallRng::seed_from_u64(seed ^ who.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        }
        None => SmallRng::from_entropy(),
    }
}

/// What a page's next request sends; a redirect changes it.
pub(super) struct Hop<'a> {
    http: HttpVersion,
    method: Method,
    pub(super) url: Cow<'a, Url>,
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    content_type: Option<&'static str>,
    body: Bytes,
    /// Asks for a compressed answer.
    compression: bool,
}

impl Hop<'_> {
    #[inline]
    fn outgoing(&self) -> Outgoing<'_> {
        Outgoing {
            http: self.http,
            method: self.method.clone(),
            url: &self.url,
            headers: &self.headers,
            content_type: self.content_type,
            body: self.body.clone(),
            compression: self.compression,
        }
    }

    /// Follows a redirect (`status`) to `next`: a 303, or a 301 or 302 after a POST, becomes a
    /// GET without a body; a redirect to another origin drops the step's credentials.
    fn redirect(&mut self, next: Url, status: StatusCode) {
        if status == StatusCode::SEE_OTHER
            || (self.method == Method::POST
                && matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND))
        {
            self.method = Method::GET;
            self.body = Bytes::new();
            self.content_type = None;
        }
        // As browsers and reqwest do: credentials set for one origin never reach another
        // (nor come back on a later hop); the user's cookie jar still applies per domain.
        if !same_origin(&self.url, &next) {
            self.headers.retain(|(name, _)| !is_credential(name));
        }
        self.url = Cow::Owned(next);
    }
}

/// True when `a` and `b` have the same scheme, host and port.
pub(super) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host() == b.host()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Headers that carry credentials.
fn is_credential(name: &HeaderName) -> bool {
    [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION].contains(name)
}

/// How the page's last request went.
struct Ending {
    outcome: Verdict,
    /// Body bytes of all the page's requests.
    bytes: BodySize,
    done: Instant,
    /// The page's latency.
    latency: Duration,
}

/// The end of a page whose last request was answered: a failure for a status not accepted,
/// else the step's checks and captures decide.
#[inline]
fn page_end(step: &Step, response: &Incoming, url: &Url, vars: &mut Vars, end: Ending) -> PageEnd {
    let code = response.status.as_u16();
    let fault = if end.outcome != Verdict::Success {
        let detail = format!("HTTP {code}");
        Some(Fault::new(
            ErrorKind::Status,
            detail,
            url.as_str(),
            Some(code),
            &response.body,
        ))
    } else {
        check_and_capture(step, &response.headers, &response.body, vars)
            .err()
            .map(|why| {
                Fault::new(
                    ErrorKind::Check,
                    why,
                    url.as_str(),
                    Some(code),
                    &response.body,
                )
            })
    };
    PageEnd {
        outcome: if fault.is_some() {
            Verdict::Failure
        } else {
            end.outcome
        },
        bytes: end.bytes,
        fault,
        done: end.done,
        latency: Some(end.latency),
        resources: PageResources::default(),
    }
}

/// The URL to follow when the answer is a redirect, unless the step expects that very status.
#[inline]
fn follow_redirect(step: &Step, url: &Url, response: &Incoming) -> Option<Url> {
    let code = response.status.as_u16();
    redirect_target(url, response.status, &response.headers).filter(|_| {
        !step
            .expect_status
            .as_ref()
            .is_some_and(|c| c.contains(&code))
    })
}

/// How a page ended.
pub(super) struct PageEnd {
    outcome: Verdict,
    /// Body bytes of all its requests.
    bytes: BodySize,
    /// What to report for a failure or an error.
    pub(super) fault: Option<Fault>,
    /// When it ended.
    done: Instant,
    /// How long it took, when already known.
    latency: Option<Duration>,
    /// What it did for its resources.
    resources: PageResources,
}

impl PageEnd {
    pub(super) fn new(
        outcome: Verdict,
        bytes: impl Into<BodySize>,
        fault: Option<Fault>,
    ) -> PageEnd {
        PageEnd {
            outcome,
            bytes: bytes.into(),
            fault,
            done: Instant::now(),
            latency: None,
            resources: PageResources::default(),
        }
    }

    /// A page that ended at `done` after `latency`, without a fault.
    pub(super) fn answered(
        outcome: Verdict,
        bytes: impl Into<BodySize>,
        done: Instant,
        latency: Duration,
    ) -> PageEnd {
        PageEnd {
            outcome,
            bytes: bytes.into(),
            fault: None,
            done,
            latency: Some(latency),
            resources: PageResources::default(),
        }
    }

    /// Adds the page's resources (the page began at `started`): it ends with the last of
    /// them, and fails or errs with the worst of them.
    fn add(&mut self, fetched: Fetched, started: Instant) {
        self.bytes += fetched.size;
        self.resources = fetched.counts;
        if let Some(done) = fetched.done {
            self.done = self.done.max(done);
            self.latency = Some(self.done - started);
        }
        if fetched.outcome != Verdict::Success {
            self.outcome = fetched.outcome;
            self.fault = fetched.fault;
        }
    }
}

/// A failure or error as the error groups record it.
pub(super) struct Fault {
    kind: ErrorKind,
    detail: String,
    url: String,
    status: Option<u16>,
    /// Start of the body (or the error message).
    body: Bytes,
}

impl Fault {
    pub(super) fn new(
        kind: ErrorKind,
        detail: String,
        url: &str,
        status: Option<u16>,
        body: &[u8],
    ) -> Fault {
        Fault {
            kind,
            detail,
            url: url.to_string(),
            status,
            body: Bytes::copy_from_slice(&body[..body.len().min(MAX_SAMPLE_BODY)]),
        }
    }
}

fn render_headers(step: &Step, vars: &Vars) -> Vec<(HeaderName, HeaderValue)> {
    step.headers
        .iter()
        .filter_map(|(name, value)| {
            HeaderValue::from_str(&value.render(vars))
                .ok()
                .map(|v| (name.clone(), v))
        })
        .collect()
}

/// The URL to follow when `status` is a redirect with a usable `Location`.
pub(super) fn redirect_target(
    url: &Url,
    status: StatusCode,
    headers: &hyper::HeaderMap,
) -> Option<Url> {
    if !status.is_redirection() || status == StatusCode::NOT_MODIFIED {
        return None;
    }
    let location = headers.get(LOCATION)?.to_str().ok()?;
    url.join(location).ok()
}

/// Runs the step's checks, then its captures (into `vars`); `Err` says what failed.
pub(super) fn check_and_capture(
    step: &Step,
    headers: &hyper::HeaderMap,
    body: &[u8],
    vars: &mut Vars,
) -> Result<(), String> {
    for check in &step.checks {
        check.check(body)?;
    }
    for capture in &step.captures {
        match capture.extract(headers, body) {
            Some(value) => {
                vars.captured.insert(capture.name.clone(), value);
            }
            None => return Err(format!("capture `{}` found nothing", capture.name)),
        }
    }
    Ok(())
}
