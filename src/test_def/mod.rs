//! The test definition: a TOML file (`[test]`, `[bench]`, `[[step]]` or `[generator]`,
//! `[monitor]`, `[service]`)
//! loaded, validated and compiled into a [`TestPlan`] the engine runs as is.
//!
//! The engine codes against the items below; [`load`] builds a plan from a file,
//! [`values`] parses each run value (`-c 5:10:20`, `-D 5m`, `-u URL`) wherever it is given,
//! [`load_node_config`] / [`node_config_toml`] read and write the per-node file the master puts
//! next to the test. Every error is a [`TestDefError`] naming the file, line and key.
//!
//! Layout: `raw` (the file as serde sees it) → `load` and `step` (validation, compilation) →
//! the plan;
//! `template` (values with `{{ ... }}`), `request` (target URL and body of a step), `response`
//! (checks and captures), `threshold` (`[[threshold]]`), `generator` (a program in place of
//! the steps), `values`, `node`, `describe`.

mod data;
mod describe;
mod error;
mod generator;
mod load;
#[cfg(test)]
mod load_tests;
mod node;
mod protocol;
mod raw;
mod request;
mod response;
mod scenario;
mod step;
mod template;
mod threshold;
pub mod values;

pub use data::{DataError, DataFormat, DataSource, Row, RowReader};
pub use error::TestDefError;
pub use load::load;
pub use node::{load_node_config, node_config_toml};
pub use request::JsonBody;
pub use scenario::{Scenario, Scenarios};
pub use template::{Template, BUILTINS};
pub use values::parse_cycles;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper::header::HeaderName;
use hyper::Method;
use url::Url;

use crate::words::words;

/// A validated test, ready to run.
#[derive(Debug, Clone)]
pub struct TestPlan {
    /// File it was loaded from.
    pub path: PathBuf,
    /// `[test] name`: names the result and the report.
    pub name: String,
    /// `[test] description`, empty when not given.
    pub description: String,
    /// Base URL (after `-u`).
    pub url: Url,
    /// `[bench]`, defaults filled in and overrides applied.
    pub bench: Bench,
    /// Steps in order, every scenario's one after the other; at least one, unless `generator`
    /// makes the load (then none).
    pub steps: Vec<Step>,
    /// The scenarios over `steps`: the `[[scenario]]`s, or the top-level steps as one.
    pub scenarios: Scenarios,
    /// `[[data]]` files, in order; their rows bind once per test execution.
    pub data: Vec<DataSource>,
    /// `[generator]`: a program makes the load instead of the steps.
    pub generator: Option<Generator>,
    /// Hosts the master samples during the run (`[monitor] hosts`).
    pub monitor_hosts: Vec<String>,
    /// Service the master starts before the bench (`[service]`).
    pub service: Option<Service>,
    /// Pass-or-fail limits on the merged result (`[[threshold]]`), in order.
    pub thresholds: Vec<crate::result::Threshold>,
    /// `[test] streams`: requests each user keeps in flight on its one HTTP/2 connection
    /// (default 1): that many executions of the steps run at once per user.
    pub streams: u32,
}

impl TestPlan {
    /// Every file the test names (the `[[data]]` files, the steps' `body_file`, the generator's
    /// files), as written: relative to the test's directory, each once, in the order of the
    /// test. Deploy copies these beside the test on every node, so a key that names a file must
    /// be listed here.
    pub fn files(&self) -> Vec<&Path> {
        let mut files: Vec<&Path> = Vec::new();
        let data = self.data.iter().map(|d| &d.file);
        let generated = self.generator.iter().flat_map(|g| &g.files);
        let bodies = self.steps.iter().filter_map(|step| match &step.body {
            Some(Body::File { path, .. }) => Some(path),
            Some(Body::Text(_) | Body::Form(_) | Body::Json(_)) | None => None,
        });
        for path in data.chain(bodies).chain(generated) {
            if !files.contains(&path.as_path()) {
                files.push(path);
            }
        }
        files
    }

    /// The names of the steps, in order: the `[[step]]`s' or those the generator declares.
    /// The result's steps and every per-step figure follow this order.
    pub fn step_names(&self) -> Vec<String> {
        match &self.generator {
            Some(g) => g.steps.clone(),
            None => self.steps.iter().map(|s| s.name.clone()).collect(),
        }
    }
}

/// `[generator]`: a program that makes the load and reports one JSON line per operation.
#[derive(Debug, Clone)]
pub struct Generator {
    /// Program and arguments, run in the test's directory (never through a shell).
    pub command: Vec<String>,
    /// The step names the program reports (`"step"` of its lines), declared so that every
    /// node's result has the same steps before the run.
    pub steps: Vec<String>,
    /// Files deployed with the test, relative to its directory: `files` and the command's
    /// words that name a file there.
    pub files: Vec<PathBuf>,
}

/// The `[bench]` section, with units.
#[derive(Debug, Clone)]
pub struct Bench {
    /// Users per cycle (closed model) or executions per second (open model), each > 0.
    pub cycles: Vec<u32>,
    /// Measured time of each cycle (default 10 s; `-D` overrides).
    pub duration: Duration,
    /// Time between two user starts in a cycle (default 0.01 s).
    pub startup_delay: Duration,
    /// Think time between two pages, uniform in [`sleep_time_min`, `sleep_time_max`].
    ///
    /// [`sleep_time_min`]: Bench::sleep_time_min
    /// [`sleep_time_max`]: Bench::sleep_time_max
    pub sleep_time_min: Duration,
    /// Upper bound of the think time (default: `sleep_time_min`).
    pub sleep_time_max: Duration,
    /// Pause between two executions of the test by one user (default 0).
    pub sleep_time: Duration,
    /// Pause between two cycles (default 0).
    pub cycle_time: Duration,
    /// Apdex T (default 1.5 s).
    pub apdex_t: Duration,
    /// Status codes counted as success (default 200, 301, 302, 303, 307).
    pub ok_codes: Vec<u16>,
    /// Time allowed for one request (default 30 s).
    pub timeout: Duration,
    /// Accept any TLS certificate (self-signed targets).
    pub insecure: bool,
    /// Closed (users loop) or open (executions started at a rate) model.
    pub model: LoadModel,
    /// `seed`: makes every user's random stream (scenario picks, think times, random rows)
    /// the same from run to run; `None` seeds each from the system.
    pub seed: Option<u64>,
    /// Send `Accept-Encoding: gzip, br` (default true; a step's `compression` overrides it).
    /// Compressed answers are decoded whatever this says.
    pub compression: bool,
    /// `resources`: the steps' default for fetching their page's resources (default off).
    pub resources: Resources,
    /// `resource_connections`: extra keep-alive connections per user that fetch page
    /// resources in parallel (default 6, as browsers open per origin); over HTTP/2 that many
    /// streams on the user's one connection.
    pub resource_connections: u32,
}

impl Bench {
    /// Users in flight at most at once on a node: its largest cycle (closed model) or
    /// `max_users` (open model).
    pub fn peak_users(&self) -> u32 {
        match self.model {
            LoadModel::Closed => self.cycles.iter().copied().max().unwrap_or(0),
            LoadModel::Open { max_users } => max_users,
        }
    }
}

/// How load is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadModel {
    /// FunkLoad's model: each cycle runs `cycles[i]` users, each looping over the test and
    /// waiting for every answer.
    Closed,
    /// Constant arrival rate: each cycle starts `cycles[i]` test executions per second on
    /// schedule whatever the server does, with at most `max_users` in flight; an execution due
    /// while all are busy is counted as dropped.
    Open { max_users: u32 },
}

/// Executions in flight at most in the open model, unless `max_users` says otherwise.
pub const DEFAULT_MAX_USERS: u32 = 1000;

/// One step: one page.
#[derive(Debug, Clone)]
pub struct Step {
    /// Unique within the test; names the page in reports.
    pub name: String,
    /// HTTP method (default GET).
    pub method: Method,
    /// Path (joined to the base URL) or absolute URL, as a template.
    pub target: Template,
    /// The target as written, for reports.
    pub target_text: String,
    /// Request headers in the order written; values are templates.
    pub headers: Vec<(HeaderName, Template)>,
    /// Request body, if any (see [`Body::render`] for its default content type).
    pub body: Option<Body>,
    /// Status codes this step accepts; `None` means the bench's `ok_codes`.
    pub expect_status: Option<Vec<u16>>,
    /// Body checks, in order: `contains`, `not_contains`, `regex`.
    pub checks: Vec<Check>,
    /// Values taken from the response for later steps, in order.
    pub captures: Vec<Capture>,
    /// `http = "..."` of the step, else of `[test]` (default HTTP/1.1).
    pub http: HttpVersion,
    /// A WebSocket step (`websocket = "/ws"`): its target is the socket's URL, and it sends
    /// and waits for messages instead of making a request.
    pub websocket: Option<WebSocketStep>,
    /// `compression = true|false` of the step; `None`: the bench's.
    pub compression: Option<bool>,
    /// Which of the page's resources (stylesheets, scripts, images, icons) are fetched after
    /// an HTML answer: `resources = ...` of the step, else of `[bench]` (off for WebSocket
    /// steps).
    pub resources: Resources,
}

/// Which of a page's resources its step fetches, as a browser would after the HTML.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Resources {
    /// None (`resources = false`, the default).
    #[default]
    Off,
    /// Those on the page's own origin (`resources = true`).
    SameOrigin,
    /// Those of every `http(s)` origin (`resources = "all"`).
    All,
}

/// Default resource connections per user (`[bench] resource_connections`): what browsers open
/// per origin.
pub const DEFAULT_RESOURCE_CONNECTIONS: u32 = 6;

words! {
    /// The HTTP version a step speaks (`http = "..."` in `[test]` or a step).
    #[derive(Default)]
    pub enum HttpVersion {
        /// HTTP/1.1, the default: one keep-alive connection per user.
        #[default]
        Http1 => "1.1",
        /// HTTP/2: ALPN `h2` over TLS, prior knowledge (h2c) on a plain `http://` URL.
        Http2 => "2",
        /// Over TLS what ALPN agrees on (`h2` or `http/1.1`); HTTP/1.1 on a plain URL.
        Auto => "auto",
    }
}

/// What a WebSocket step does on the user's socket, opened (the upgrade is a request) or
/// reused.
#[derive(Debug, Clone)]
pub struct WebSocketStep {
    /// The message sent (`send` or `send_binary`); none: the step only waits or opens.
    pub send: Option<WsMessage>,
    /// `expect`: the awaited message contains this text.
    pub expect: Option<String>,
    /// `regex`: the awaited message matches each of these.
    pub expect_regex: Vec<regex::Regex>,
}

impl WebSocketStep {
    /// True when the step waits for a message (it has `expect` or `regex`).
    pub fn waits(&self) -> bool {
        self.expect.is_some() || !self.expect_regex.is_empty()
    }

    /// True when `message` is the one awaited.
    pub fn awaited(&self, message: &[u8]) -> bool {
        let text = String::from_utf8_lossy(message);
        self.expect
            .as_ref()
            .is_none_or(|e| text.contains(e.as_str()))
            && self.expect_regex.iter().all(|r| r.is_match(&text))
    }
}

/// A message a WebSocket step sends.
#[derive(Debug, Clone)]
pub enum WsMessage {
    /// `send = "..."`, templated.
    Text(Template),
    /// `send_binary = "<base64>"`, decoded at load.
    Binary(bytes::Bytes),
}

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    /// `body = "..."` (templated).
    Text(Template),
    /// `form = { k = "v" }`, sent urlencoded (values templated).
    Form(Vec<(String, Template)>),
    /// `json = {...}`: string values inside are templated (compiled once; the value as
    /// written is [`JsonBody::value`]).
    Json(JsonBody),
    /// `body_file = "path"`, read at load time.
    File {
        /// The path as written, relative to the test's directory.
        path: PathBuf,
        bytes: bytes::Bytes,
    },
}

/// Values a template may use.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    /// Node number, from 0 (`{{ node }}`).
    pub node: u32,
    /// Node count (`{{ nodes }}`).
    pub nodes: u32,
    /// User number on this node within the cycle, from 0 (`{{ user }}`).
    pub user: u32,
    /// Iteration of the test by this user, from 0 (`{{ iteration }}`).
    pub iteration: u64,
    /// Values captured by earlier steps in this execution (`{{ name }}`).
    pub captured: HashMap<String, String>,
}

/// A body check; a failed check makes the page a failure.
#[derive(Debug, Clone)]
pub enum Check {
    /// `contains = "..."`: the body holds this text.
    Contains(String),
    /// `not_contains = "..."`: the body does not hold this text.
    NotContains(String),
    /// `regex = "..."`: the body matches somewhere.
    Regex(regex::Regex),
}

/// A value taken from a response for later steps.
#[derive(Debug, Clone)]
pub struct Capture {
    /// Name later templates use (`{{ name }}`); never a builtin.
    pub name: String,
    /// Where the value comes from.
    pub source: CaptureSource,
}

/// Where a captured value is taken from.
#[derive(Debug, Clone)]
pub enum CaptureSource {
    /// First match; group 1 if the regex has groups, else the whole match.
    Regex(regex::Regex),
    /// RFC 6901 pointer into a JSON body.
    JsonPointer(String),
    /// A response header (its first value).
    Header(HeaderName),
}

/// A service the master starts before the bench.
#[derive(Debug, Clone)]
pub struct Service {
    /// Program and arguments (never run through a shell).
    pub command: Vec<String>,
    /// Host to start it on over SSH; `None` = the master's machine.
    pub host: Option<String>,
    /// URL polled until it answers.
    pub ready_url: Url,
    /// How long to poll `ready_url` before giving up (default 30 s).
    pub ready_timeout: Duration,
}

/// Command-line overrides applied on load, as typed values (parsed by [`values`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `-c`: users per cycle (see [`parse_cycles`]).
    pub cycles: Option<Vec<u32>>,
    /// `-r`: executions per second per cycle (open model).
    pub rates: Option<Vec<u32>>,
    /// `-D`: measured time of each cycle.
    pub duration: Option<Duration>,
    /// `-u`: base URL, checked like `[test] url`.
    pub url: Option<Url>,
}

impl Overrides {
    /// These overrides over `base` (e.g. a node's own flags over its `node.toml`): each value
    /// given here wins, and `-c` and `-r` replace each other, as they name one list.
    pub fn over(self, base: Overrides) -> Overrides {
        let (cycles, rates) = match (&self.cycles, &self.rates) {
            (None, None) => (base.cycles, base.rates),
            _ => (self.cycles, self.rates),
        };
        Overrides {
            cycles,
            rates,
            duration: self.duration.or(base.duration),
            url: self.url.or(base.url),
        }
    }
}

/// A node's own configuration, written by the master next to the test.
#[derive(Debug, Clone, Default)]
pub struct NodeConfig {
    /// This node's number, from 0 (`{{ node }}`).
    pub number: u32,
    /// Number of nodes in the run (`{{ nodes }}`).
    pub count: u32,
    /// Run name (`-n`).
    pub run: String,
    /// Host the node runs on, as the nodes file names it.
    pub host: String,
    /// Overrides of the run, applied when the node loads the test.
    pub overrides: Overrides,
}
