//! The result model: what one `bench-node run` measured, written as XML by `bench-node` and read
//! back by `bench-report` and `bench-master`. Defined once here; every field names its unit.
//!
//! Counts follow FunkLoad's vocabulary: a *test* is one execution of all steps by one user, a
//! *page* is one step (all its requests, redirects included), a *request* is one HTTP exchange.

use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

use crate::words::{serde_words, words};

/// Version of the result XML format. Readers refuse any other version.
pub const FORMAT_VERSION: u32 = 1;

/// Highest latency a histogram tracks, in µs (one hour); larger values are clamped to it.
pub const HISTOGRAM_MAX_US: u64 = 3_600_000_000;
/// Significant decimal digits kept by every latency histogram (0.1 % relative precision).
pub const HISTOGRAM_SIGFIG: u8 = 3;

/// A new, empty latency histogram in µs with the format's fixed bounds and precision.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, HISTOGRAM_SIGFIG)
        .expect("fixed histogram bounds are valid")
}

/// `t` as Unix time in ms, the unit of every `*_unix_ms` field (0 for a time before 1970).
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The Unix time in ms of `t`, a monotonic instant past or still to come (read against both
/// clocks now).
pub fn unix_ms_at(t: std::time::Instant) -> u64 {
    let (now, wall) = (std::time::Instant::now(), SystemTime::now());
    let at = if t >= now {
        wall + (t - now)
    } else {
        wall - (now - t)
    };
    unix_ms(at)
}

/// Everything one node measured during one run.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeResult {
    /// Version of the format this was read from or will be written as ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Version of the `bench-node` that measured it.
    pub tool_version: String,
    /// Wall-clock start of the run, Unix time in ms: the origin of its seconds, and the
    /// instant its first cycle's users were due (under a master, the planned instant).
    pub started_unix_ms: u64,
    /// When the first user actually began, Unix time in ms: at or just after
    /// `started_unix_ms`, later by how late the node was. `None` when no user began (and in
    /// results written before it was kept).
    pub began_unix_ms: Option<u64>,
    /// Wall-clock end of the run, Unix time in ms.
    pub finished_unix_ms: u64,
    /// True when the run was stopped (Ctrl+C, SIGTERM, master's stop) before its plan ended.
    pub interrupted: bool,
    pub node: NodeInfo,
    pub test: TestInfo,
    pub config: BenchConfig,
    /// The steps of the test, in order; per-step figures in cycles use the same order.
    pub steps: Vec<StepInfo>,
    /// The test's `[[scenario]]`s, in order; per-scenario figures in cycles use the same
    /// order. Empty for a test of top-level steps (and in files written before scenarios).
    pub scenarios: Vec<ScenarioInfo>,
    /// One entry per cycle that started, in order.
    pub cycles: Vec<CycleResult>,
    /// One entry per second of the run, from its start.
    pub series: Vec<SecondSample>,
    /// Latency per interval of the run and per step (empty in files from before it existed).
    pub latency: super::LatencySeries,
    /// Failures and errors grouped by (step, kind, detail).
    pub errors: Vec<ErrorGroup>,
    /// The test's `[[data]]` files and how many of their rows this node used (empty without
    /// data files, and in files written before them).
    pub data: Vec<DataUsage>,
    /// Resource samples of this node's host and of monitored hosts.
    pub resources: Vec<HostResources>,
}

/// Who measured: the node's place in the run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodeInfo {
    /// Node number, from 0.
    pub number: u32,
    /// Number of nodes in the run.
    pub count: u32,
    /// Host name the node ran on (as the node sees itself, or as the master named it).
    pub host: String,
    /// Run name given by the master (empty for a stand-alone run).
    pub run: String,
    /// Delay between the master's start signal and this node's first user, in ms (0 when
    /// started alone). The master derives the start skew between nodes from it.
    pub start_delay_ms: f64,
}

/// What was tested.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TestInfo {
    pub name: String,
    pub description: String,
    /// Base URL the steps were resolved against.
    pub url: String,
}

/// The bench plan as it ran (after command-line overrides).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BenchConfig {
    /// Concurrent users per cycle on this node (closed model), or test executions started per
    /// second on this node (open model, see `rate`).
    pub cycles: Vec<u32>,
    /// Measured window of each cycle, s.
    pub duration_s: f64,
    /// Delay between two user starts, s.
    pub startup_delay_s: f64,
    /// Think time between two steps, uniform in [min, max], s.
    pub sleep_time_min_s: f64,
    pub sleep_time_max_s: f64,
    /// Pause between two executions of the test by one user, s.
    pub sleep_time_s: f64,
    /// Pause between two cycles, s.
    pub cycle_time_s: f64,
    /// Apdex threshold T, s.
    pub apdex_t_s: f64,
    /// Status codes counted as success.
    pub ok_codes: Vec<u16>,
    /// Request timeout, s.
    pub timeout_s: f64,
    /// Load model the cycles ran.
    pub model: ModelKind,
    /// The test's `[[threshold]]`s, in order (empty when it has none).
    pub thresholds: Vec<super::Threshold>,
    /// Requests each user kept in flight on its HTTP/2 connection (`streams`; 1 when a file
    /// written before HTTP/2 says nothing).
    pub streams: u32,
}

words! {
    /// The load model a run used, as its result records it (the test definition's
    /// [`crate::test_def::LoadModel`] without its parameters).
    #[derive(Default)]
    pub enum ModelKind {
        /// Each user loops over the test, waiting for every answer before its next request.
        #[default]
        Closed => "closed",
        /// Test executions start on schedule at a rate, whether earlier ones answered or not.
        Open => "open",
    }
}
serde_words!(ModelKind);

/// One step (page) of the test.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StepInfo {
    pub name: String,
    pub method: String,
    /// Path or URL as written in the test (before templating).
    pub target: String,
    /// The protocol its requests used: `HTTP/1.1`, `HTTP/2`, `WebSocket`; for `http = "auto"`
    /// those ALPN agreed on, joined by ` and ` (`HTTP/1.1` when a file written before
    /// HTTP/2 says nothing).
    pub protocol: String,
}

/// One scenario of the test: a run of consecutive steps, picked by weight per execution.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScenarioInfo {
    pub name: String,
    /// Relative weight (at least 1).
    pub weight: u32,
    /// Index of its first step in [`NodeResult::steps`].
    pub first_step: u32,
    /// Number of its steps, from `first_step`.
    pub steps: u32,
}

words! {
    /// In what order a data file's rows are handed to test executions.
    #[derive(Default)]
    pub enum DataOrder {
        /// In file order, shared by a node's users; every node reads every row.
        #[default]
        Sequential => "sequential",
        /// A row drawn at random for each execution.
        Random => "random",
        /// Each row used by at most one execution in the whole cluster: node k of n takes rows
        /// k, k + n, k + 2n... (from 0), in order across its users.
        Unique => "unique",
    }
}
serde_words!(DataOrder);

words! {
    /// What happens when a `sequential` or `unique` data file's rows run out.
    #[derive(Default)]
    pub enum OnEnd {
        /// The users stop: no execution starts without a row.
        #[default]
        Stop => "stop",
        /// Start again from the first row.
        Wrap => "wrap",
    }
}
serde_words!(OnEnd);

/// One `[[data]]` file as a node used it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataUsage {
    /// The name templates use (`{{ account.login }}`).
    pub name: String,
    /// The file, as the test names it.
    pub file: String,
    pub order: DataOrder,
    pub on_end: OnEnd,
    /// Rows this node could use: its share for `unique`, every row otherwise.
    pub rows: u64,
    /// Rows handed to test executions (with `wrap` or `random`, a row counts each time).
    pub used: u64,
    /// When the rows ran out and users stopped, ms since the run started (only with `stop`).
    pub exhausted_ms: Option<u64>,
}

/// Counts and latency distribution of one kind of thing (tests, pages or requests) in a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Counts {
    /// Completed with an accepted status and passing checks.
    pub success: u64,
    /// Completed with a status outside `ok_codes` or a failed check.
    pub failure: u64,
    /// Did not complete: connection refused or reset, timeout, TLS or protocol error.
    pub error: u64,
    /// Response body bytes as they came over the wire (compressed when the server compressed
    /// them), bytes.
    pub bytes: u64,
    /// The same bodies decoded (`Content-Encoding` undone; equal to `bytes` when nothing came
    /// compressed), bytes.
    pub decoded_bytes: u64,
    /// WebSocket messages received by the steps (the awaited ones included); 0 for HTTP.
    pub messages: u64,
    /// The page resources of these pages (steps with `resources`; zero for others).
    pub resources: PageResources,
    /// Latency of successes and failures (errors have no response), µs.
    pub latency: Histogram<u64>,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            success: 0,
            failure: 0,
            error: 0,
            bytes: 0,
            decoded_bytes: 0,
            messages: 0,
            resources: PageResources::default(),
            latency: new_histogram(),
        }
    }
}

/// What pages did for their resources (stylesheets, scripts, images, icons): counted with the
/// page they belong to. Each request is also one of the cycle's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PageResources {
    /// Resource requests sent (whatever the answer, revalidations and redirects included).
    pub requests: u64,
    /// Body bytes of their answers (also in the pages' `bytes`), bytes.
    pub bytes: u64,
    /// Of the requests, those answered `304 Not Modified` to a revalidation
    /// (`If-None-Match` / `If-Modified-Since`): the cached copy was used.
    pub revalidated: u64,
    /// Resources taken from the user's cache while fresh, without a request.
    pub cached: u64,
}

impl PageResources {
    /// True when nothing was fetched or taken from the cache.
    pub fn is_empty(&self) -> bool {
        self.requests == 0 && self.cached == 0
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &PageResources) {
        self.requests += other.requests;
        self.bytes += other.bytes;
        self.revalidated += other.revalidated;
        self.cached += other.cached;
    }
}

impl Counts {
    /// Success + failure + error.
    pub fn total(&self) -> u64 {
        self.success + self.failure + self.error
    }

    /// Adds `other` into `self`; histograms add exactly.
    pub fn merge(&mut self, other: &Counts) {
        self.success += other.success;
        self.failure += other.failure;
        self.error += other.error;
        self.bytes += other.bytes;
        self.decoded_bytes += other.decoded_bytes;
        self.messages += other.messages;
        self.resources.add(&other.resources);
        self.latency
            .add(&other.latency)
            .expect("histograms share the format's bounds");
    }
}

/// Things that completed outside every measured window (ramp-up, ramp-down, pauses). Counted so
/// that the node's totals reconcile with what the server received.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outside {
    pub tests: u64,
    pub pages: u64,
    pub requests: u64,
}

impl Outside {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Outside) {
        self.tests += other.tests;
        self.pages += other.pages;
        self.requests += other.requests;
    }
}

/// One cycle: a level of concurrency held for the measured window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CycleResult {
    /// Cycle number, from 0.
    pub index: u32,
    /// Users on this node (closed model) or executions per second (open model).
    pub users: u32,
    /// Start of the measured window, ms since the run started.
    pub window_start_ms: u64,
    /// Length of the measured window, s (shorter than planned when interrupted).
    pub window_s: f64,
    /// Test executions that completed in the window.
    pub tests: Counts,
    /// Pages (steps) that completed in the window, all steps together.
    pub pages: Counts,
    /// Requests (redirects included) that completed in the window.
    pub requests: Counts,
    /// Pages per step, in the order of [`NodeResult::steps`].
    pub steps: Vec<Counts>,
    /// Test executions per scenario, in the order of [`NodeResult::scenarios`] (their sum is
    /// `tests`; empty when the test has no `[[scenario]]`).
    pub scenarios: Vec<Counts>,
    /// Things of this cycle's users that completed outside its window.
    pub outside: Outside,
    /// Open model: executions due that found every user busy and were not started.
    pub dropped: u64,
}

/// What happened during one second of the run.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SecondSample {
    /// Seconds since the run started.
    pub second: u32,
    /// Cycle whose measured window holds this second, if any.
    pub cycle: Option<u32>,
    /// Users running at the end of the second.
    pub users: u32,
    /// Successful tests, pages and requests completed in the second.
    pub tests_ok: u64,
    pub pages_ok: u64,
    pub requests: u64,
    /// Requests that failed (bad status or check) or erred in the second.
    pub failures: u64,
    pub errors: u64,
}

impl SecondSample {
    /// Adds `other`, a sample of the same second (another worker's or another node's), into
    /// `self`: counts and users add, the cycle is the first one known; `second` is kept.
    pub fn merge(&mut self, other: &SecondSample) {
        self.cycle = self.cycle.or(other.cycle);
        self.users += other.users;
        self.tests_ok += other.tests_ok;
        self.pages_ok += other.pages_ok;
        self.requests += other.requests;
        self.failures += other.failures;
        self.errors += other.errors;
    }
}

/// Failures or errors of one kind at one step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ErrorGroup {
    /// Step name.
    pub step: String,
    /// What went wrong.
    pub kind: ErrorKind,
    /// What distinguishes the group: `HTTP 500`, `connection refused`, the failed check.
    pub detail: String,
    pub count: u64,
    /// The first few occurrences (at most [`MAX_ERROR_SAMPLES`]).
    pub samples: Vec<ErrorSample>,
}

impl ErrorGroup {
    /// Adds another group of the same key: counts add, samples fill up to the limit.
    pub fn absorb(&mut self, other: ErrorGroup) {
        self.count += other.count;
        let room = MAX_ERROR_SAMPLES.saturating_sub(self.samples.len());
        self.samples.extend(other.samples.into_iter().take(room));
    }
}

words! {
    /// What went wrong with a page: a failure (an answer that is not the expected one) or an
    /// error (no answer). Spelled in the result XML's `kind` attribute and in `summary.json`.
    #[derive(Default)]
    pub enum ErrorKind {
        /// Failure: the answer's status is not accepted (or too many redirects).
        Status => "status",
        /// Failure: a check on the answer failed, or a capture found nothing.
        Check => "check",
        /// Error: the host's name could not be resolved.
        Dns => "dns",
        /// Error: no connection could be made (refused, unreachable).
        Connect => "connect",
        /// Error: the connection was closed or reset before a complete answer.
        Reset => "reset",
        /// Error: no complete answer within the request timeout.
        Timeout => "timeout",
        /// Error: the TLS handshake failed (certificate, server name, protocol).
        Tls => "tls",
        /// Error: the answer is not valid HTTP (or WebSocket), or the server does not speak the
        /// protocol asked for (no HTTP/2, a refused WebSocket upgrade).
        Protocol => "protocol",
        /// Error: the server closed the user's WebSocket (before the awaited message).
        Closed => "closed",
        /// Error: a compressed answer (`Content-Encoding: gzip` or `br`) that does not decode:
        /// corrupt, cut short, or decoding to more than 64 MiB.
        Decode => "decode",
        /// Anything else (a URL that cannot be built, the error groups past the limit).
        #[default]
        Other => "other",
    }
}
serde_words!(ErrorKind);

/// Error samples kept per group.
pub const MAX_ERROR_SAMPLES: usize = 3;
/// Bytes of a response body kept in an error sample.
pub const MAX_SAMPLE_BODY: usize = 512;
/// Error groups kept per node; the rest are counted in a group of kind `other`.
pub const MAX_ERROR_GROUPS: usize = 100;

/// One occurrence of an error.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ErrorSample {
    /// Full URL requested.
    pub url: String,
    /// Status received, if any.
    pub status: Option<u16>,
    /// When, ms since the run started.
    pub at_ms: u64,
    /// Error message or start of the body (at most [`MAX_SAMPLE_BODY`] bytes, lossy UTF-8).
    pub body: String,
}

/// Resource samples of one host.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostResources {
    pub host: String,
    /// Whose host it is.
    pub role: HostRole,
    pub samples: Vec<ResourceSample>,
}

words! {
    /// Whose host a set of resource samples is of.
    #[derive(Default)]
    pub enum HostRole {
        /// The node's own host, sampled by the node.
        #[default]
        Node => "node",
        /// A host the test names in `monitor`, sampled by the master.
        Monitor => "monitor",
    }
}

/// One sample of a host's resources, read from /proc.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResourceSample {
    /// ms since the run started.
    pub at_ms: u64,
    /// CPU busy over the last interval, % of all cores (0-100).
    pub cpu_pct: f64,
    /// 1-minute load average.
    pub load1: f64,
    /// Memory used (total - available), KiB.
    pub mem_used_kib: u64,
    /// Memory total, KiB.
    pub mem_total_kib: u64,
    /// Network received / sent over the last interval, all interfaces but `lo`, bytes/s.
    pub net_rx_bps: f64,
    pub net_tx_bps: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_and_models_round_trip() {
        crate::words::assert_round_trip(ErrorKind::ALL);
        crate::words::assert_round_trip(ModelKind::ALL);
        crate::words::assert_round_trip(DataOrder::ALL);
        crate::words::assert_round_trip(OnEnd::ALL);
        crate::words::assert_round_trip(HostRole::ALL);
    }

    #[test]
    fn counts_merge_wire_and_decoded_bytes_apart() {
        let node = |bytes, decoded_bytes| Counts {
            success: 1,
            bytes,
            decoded_bytes,
            ..Counts::default()
        };
        let mut all = node(10, 90);
        all.merge(&node(5, 5));
        assert_eq!((all.success, all.bytes, all.decoded_bytes), (2, 15, 95));
    }
}
