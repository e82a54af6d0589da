//! Streaming reader of result XML.
//!
//! Reads the format of `docs/RESULT-FORMAT.md` event by event with quick-xml's `Reader` (no
//! DOM). A `<!DOCTYPE` is refused, so no entity can be defined; only the five predefined
//! entities and numeric character references are expanded. Unknown elements inside known ones
//! are skipped, so that a newer writer of the same format version can add elements. No input
//! makes it panic: every problem is a [`ReadError`] naming the file, line and byte.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use super::latency::*;
use super::model::*;
use super::write::ROOT;

mod events;
mod histogram;
mod threshold;

use events::{is_blank, shorten, Elem, Ev, List, Parser};
pub use histogram::{decode_histogram, decode_interval_bytes};

/// Where in which file a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file (or other source) being read.
    pub file: Arc<str>,
    /// Line, from 1, when known.
    pub line: Option<u64>,
    /// Byte offset from the start of the file.
    pub byte: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}: line {l} (byte {})", self.file, self.byte),
            None => write!(f, "{}: byte {}", self.file, self.byte),
        }
    }
}

/// Why a result file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened or read.
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: io::Error,
    },
    /// Not well-formed XML.
    #[error("{at}: malformed XML: {message}")]
    Malformed { at: Location, message: String },
    /// The file ends before the root element closes.
    #[error(
        "{at}: the file ends before </{ROOT}> ({detail}); the node that wrote it was probably \
         killed, or the copy was cut short"
    )]
    Truncated { at: Location, detail: String },
    /// A format version this build does not read.
    #[error(
        "{at}: format {found} is not supported by this bench-report {}, which reads format {}",
        crate::VERSION,
        FORMAT_VERSION
    )]
    UnsupportedFormat { at: Location, found: String },
    /// A document type declaration, the door to entity definitions.
    #[error("{at}: <!DOCTYPE> is refused: a result file has no document type and no entities")]
    Doctype { at: Location },
    /// A required attribute is absent.
    #[error("{at}: <{element}> lacks the attribute `{attribute}`")]
    MissingAttribute {
        at: Location,
        element: String,
        attribute: &'static str,
    },
    /// An attribute's value is not what the format allows.
    #[error("{at}: <{element}> attribute `{attribute}` = {value:?}: {reason}")]
    BadAttribute {
        at: Location,
        element: String,
        attribute: &'static str,
        value: String,
        reason: &'static str,
    },
    /// A `<histogram>` does not hold a histogram of the format's bounds.
    #[error("{at}: <histogram> of <{element}>: {reason}")]
    BadHistogram {
        at: Location,
        element: String,
        reason: String,
    },
    /// Well-formed XML that is not a valid result (wrong root, missing element, ...).
    #[error("{at}: {message}")]
    Invalid { at: Location, message: String },
}

impl ReadError {
    /// Where the problem is, when it is inside the file.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ReadError::Io { .. } => None,
            ReadError::Malformed { at, .. }
            | ReadError::Truncated { at, .. }
            | ReadError::UnsupportedFormat { at, .. }
            | ReadError::Doctype { at }
            | ReadError::MissingAttribute { at, .. }
            | ReadError::BadAttribute { at, .. }
            | ReadError::BadHistogram { at, .. }
            | ReadError::Invalid { at, .. } => Some(at),
        }
    }
}

/// Reads a result file.
pub fn read_file(path: &Path) -> Result<NodeResult, ReadError> {
    let file = File::open(path).map_err(|source| ReadError::Io {
        file: path.display().to_string(),
        source,
    })?;
    from_reader(BufReader::new(file), &path.display().to_string())
}

/// Reads a result document from `r`; `source` names it in errors (usually the file's path).
pub fn from_reader<R: BufRead>(r: R, source: &str) -> Result<NodeResult, ReadError> {
    let mut p = Parser::new(r, source);
    let result = p.document()?;
    Ok(result)
}

/// Largest count a reader accepts (2^53, some 9 × 10^15): more than any run makes, small
/// enough that adding up millions of them cannot overflow.
pub const MAX_COUNT: u64 = 1 << 53;

// The grammar of format 1, over the event layer of `events`.
impl<R: BufRead> Parser<R> {
    /// The whole document.
    fn document(&mut self) -> Result<NodeResult, ReadError> {
        let root = loop {
            match self.next()? {
                Ev::Start(e) if e.name == ROOT => break e,
                Ev::Start(e) => {
                    return Err(self.invalid(
                        e.pos,
                        format!(
                            "not a Bench Master result: the root element is <{}>, not <{ROOT}>",
                            shorten(&e.name)
                        ),
                    ))
                }
                Ev::Text(t) if is_blank(&t) => {}
                Ev::Text(_) => {
                    return Err(
                        self.invalid(0, "not a Bench Master result: text before the root element")
                    )
                }
                Ev::End => return Err(self.invalid(0, "not a Bench Master result")),
                Ev::Eof if self.position() == 0 => return Err(self.invalid(0, "the file is empty")),
                Ev::Eof => return Err(self.truncated()),
            }
        };
        let result = self.root(root)?;
        // Only whitespace and comments may follow the root.
        loop {
            let pos = self.position();
            match self.next()? {
                Ev::Eof => return Ok(result),
                Ev::Text(t) if is_blank(&t) => {}
                _ => return Err(self.invalid(pos, format!("content after </{ROOT}>"))),
            }
        }
    }

    /// The root element: its attributes, its children, then the checks across them.
    fn root(&mut self, root: Elem) -> Result<NodeResult, ReadError> {
        let mut r = self.root_attrs(&root)?;
        let mut seen: Vec<&'static str> = Vec::new();
        let mut cycle_pos = Vec::new();
        self.children(|p, e| {
            p.at_most_once(&e, &mut seen)?;
            p.root_child(e, &mut r, &mut cycle_pos)
        })?;
        self.check_root(&root, &r, &seen, &cycle_pos)?;
        Ok(r)
    }

    /// The result as the root's attributes start it; the version first, as a newer format
    /// may differ in every other respect.
    fn root_attrs(&self, root: &Elem) -> Result<NodeResult, ReadError> {
        let format: String = self.attr(root, "format")?;
        if format != FORMAT_VERSION.to_string() {
            return Err(ReadError::UnsupportedFormat {
                at: self.at(root.pos),
                found: shorten(&format),
            });
        }
        Ok(NodeResult {
            format_version: FORMAT_VERSION,
            tool_version: self.attr(root, "tool-version")?,
            started_unix_ms: self.attr(root, "started-unix-ms")?,
            began_unix_ms: self.opt_attr(root, "began-unix-ms")?,
            finished_unix_ms: 0,
            interrupted: false,
            node: NodeInfo::default(),
            test: TestInfo::default(),
            config: BenchConfig::default(),
            steps: Vec::new(),
            scenarios: Vec::new(),
            cycles: Vec::new(),
            series: Vec::new(),
            latency: LatencySeries::default(),
            errors: Vec::new(),
            data: Vec::new(),
            resources: Vec::new(),
        })
    }

    /// Refuses a second one of the root's children that appear once.
    fn at_most_once(&self, e: &Elem, seen: &mut Vec<&'static str>) -> Result<(), ReadError> {
        const ONCE: [&str; 12] = [
            "data",
            "node",
            "test",
            "config",
            "thresholds",
            "steps",
            "scenarios",
            "cycles",
            "series",
            "latency",
            "errors",
            "end",
        ];
        if let Some(name) = ONCE.iter().find(|n| **n == e.name) {
            if seen.contains(name) {
                return Err(self.invalid(e.pos, format!("<{name}> appears twice")));
            }
            seen.push(name);
        }
        Ok(())
    }

    /// One child of the root, read into `r` (`cycle_pos`: where each cycle starts).
    fn root_child(
        &mut self,
        e: Elem,
        r: &mut NodeResult,
        cycle_pos: &mut Vec<u64>,
    ) -> Result<(), ReadError> {
        match e.name.as_str() {
            "node" => {
                r.node = NodeInfo {
                    number: self.attr(&e, "number")?,
                    count: self.attr(&e, "count")?,
                    host: self.attr(&e, "host")?,
                    run: self.attr(&e, "run")?,
                    start_delay_ms: self.attr(&e, "start-delay-ms")?,
                };
                self.skip()
            }
            "test" => {
                r.test.name = self.attr(&e, "name")?;
                r.test.url = self.attr(&e, "url")?;
                r.test.description = self.text()?;
                Ok(())
            }
            "config" => {
                let thresholds = std::mem::take(&mut r.config.thresholds);
                r.config = BenchConfig {
                    thresholds,
                    ..self.config(&e)?
                };
                self.skip()
            }
            "thresholds" => {
                r.config.thresholds = self.thresholds()?;
                Ok(())
            }
            "steps" => self.steps(&mut r.steps),
            "scenarios" => self.scenarios(&mut r.scenarios),
            "cycles" => self.children(|p, e| {
                if e.name != "cycle" {
                    return p.skip();
                }
                cycle_pos.push(e.pos);
                r.cycles.push(p.cycle(e)?);
                Ok(())
            }),
            "series" => self.children(|p, e| {
                if e.name == "s" {
                    r.series.push(p.second(&e)?);
                }
                p.skip()
            }),
            "latency" => self.latency(e, r),
            "errors" => self.children(|p, e| {
                if e.name != "group" {
                    return p.skip();
                }
                r.errors.push(p.error_group(e)?);
                Ok(())
            }),
            "data" => self.children(|p, e| {
                if e.name == "source" {
                    p.expect_index(&e, r.data.len())?;
                    r.data.push(DataUsage {
                        name: p.attr(&e, "name")?,
                        file: p.attr(&e, "file")?,
                        order: p.attr(&e, "order")?,
                        on_end: p.attr(&e, "on-end")?,
                        rows: p.count(&e, "rows")?,
                        used: p.count(&e, "used")?,
                        exhausted_ms: p.opt_attr(&e, "exhausted-ms")?,
                    });
                }
                p.skip()
            }),
            "resources" => {
                let h = self.resources(e)?;
                r.resources.push(h);
                Ok(())
            }
            "end" => {
                r.interrupted = self.attr(&e, "interrupted")?;
                r.finished_unix_ms = self.attr(&e, "finished-unix-ms")?;
                self.skip()
            }
            _ => self.skip(),
        }
    }

    /// The `<step>` list, each in its place.
    fn steps(&mut self, steps: &mut Vec<StepInfo>) -> Result<(), ReadError> {
        self.children(|p, e| {
            if e.name != "step" {
                return p.skip();
            }
            p.expect_index(&e, steps.len())?;
            steps.push(StepInfo {
                name: p.attr(&e, "name")?,
                method: p.attr(&e, "method")?,
                target: p.attr(&e, "target")?,
                protocol: p
                    .opt_attr(&e, "protocol")?
                    .unwrap_or_else(|| "HTTP/1.1".to_string()),
            });
            p.skip()
        })
    }

    /// The `<scenario>` list (absent before scenarios, and for a test without them).
    fn scenarios(&mut self, scenarios: &mut Vec<ScenarioInfo>) -> Result<(), ReadError> {
        self.children(|p, e| {
            if e.name != "scenario" {
                return p.skip();
            }
            p.expect_index(&e, scenarios.len())?;
            scenarios.push(ScenarioInfo {
                name: p.attr(&e, "name")?,
                weight: p.attr(&e, "weight")?,
                first_step: p.attr(&e, "first-step")?,
                steps: p.attr(&e, "steps")?,
            });
            p.skip()
        })
    }

    /// The checks across the root's children: every required one there, every cycle with
    /// figures for every step.
    fn check_root(
        &self,
        root: &Elem,
        r: &NodeResult,
        seen: &[&'static str],
        cycle_pos: &[u64],
    ) -> Result<(), ReadError> {
        for required in ["node", "test", "config", "steps", "cycles", "end"] {
            if !seen.contains(&required) {
                return Err(self.invalid(root.pos, format!("<{ROOT}> lacks <{required}>")));
            }
        }
        for (i, s) in r.scenarios.iter().enumerate() {
            let end = u64::from(s.first_step) + u64::from(s.steps);
            if s.steps == 0 || end > r.steps.len() as u64 {
                return Err(self.invalid(
                    root.pos,
                    format!(
                        "<scenario index=\"{i}\"> names steps {}..{end}, but the test has {}",
                        s.first_step,
                        r.steps.len()
                    ),
                ));
            }
        }
        for (c, pos) in r.cycles.iter().zip(cycle_pos) {
            if c.scenarios.len() != r.scenarios.len() {
                return Err(self.invalid(
                    *pos,
                    format!(
                        "<cycle index=\"{}\"> has figures for {} scenarios, but the test has {}",
                        c.index,
                        c.scenarios.len(),
                        r.scenarios.len()
                    ),
                ));
            }
            if c.steps.len() != r.steps.len() {
                return Err(self.invalid(
                    *pos,
                    format!(
                        "<cycle index=\"{}\"> has figures for {} steps, but the test has {}",
                        c.index,
                        c.steps.len(),
                        r.steps.len()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks that the `index` attribute of a list item is its position.
    fn expect_index(&self, e: &Elem, expected: usize) -> Result<(), ReadError> {
        let index: u64 = self.attr(e, "index")?;
        if index != expected as u64 {
            return Err(self.invalid(
                e.pos,
                format!(
                    "<{} index=\"{index}\"> is out of order: expected index {expected}",
                    e.name
                ),
            ));
        }
        Ok(())
    }

    fn config(&self, e: &Elem) -> Result<BenchConfig, ReadError> {
        Ok(BenchConfig {
            cycles: self.attr::<List<u32>>(e, "cycles")?.0,
            duration_s: self.attr(e, "duration-s")?,
            startup_delay_s: self.attr(e, "startup-delay-s")?,
            sleep_time_min_s: self.attr(e, "sleep-time-min-s")?,
            sleep_time_max_s: self.attr(e, "sleep-time-max-s")?,
            sleep_time_s: self.attr(e, "sleep-time-s")?,
            cycle_time_s: self.attr(e, "cycle-time-s")?,
            apdex_t_s: self.attr(e, "apdex-t-s")?,
            ok_codes: self.attr::<List<u16>>(e, "ok-codes")?.0,
            timeout_s: self.attr(e, "timeout-s")?,
            model: self.attr(e, "model")?,
            thresholds: Vec::new(),
            streams: self.opt_attr(e, "streams")?.unwrap_or(1),
        })
    }

    fn cycle(&mut self, e: Elem) -> Result<CycleResult, ReadError> {
        let mut c = CycleResult {
            index: self.attr(&e, "index")?,
            users: self.attr(&e, "users")?,
            window_start_ms: self.attr(&e, "window-start-ms")?,
            window_s: self.attr(&e, "window-s")?,
            dropped: self.count(&e, "dropped")?,
            ..CycleResult::default()
        };
        let mut seen = Vec::new();
        self.children(|p, e| match e.name.as_str() {
            "tests" | "pages" | "requests" => {
                if seen.contains(&e.name) {
                    return Err(p.invalid(e.pos, format!("<{}> appears twice", e.name)));
                }
                seen.push(e.name.clone());
                let counts = p.counts(e)?;
                match seen.last().map(String::as_str) {
                    Some("tests") => c.tests = counts,
                    Some("pages") => c.pages = counts,
                    _ => c.requests = counts,
                }
                Ok(())
            }
            "step" => {
                p.expect_index(&e, c.steps.len())?;
                c.steps.push(p.counts(e)?);
                Ok(())
            }
            "scenario" => {
                p.expect_index(&e, c.scenarios.len())?;
                c.scenarios.push(p.counts(e)?);
                Ok(())
            }
            "outside" => {
                c.outside = Outside {
                    tests: p.count(&e, "tests")?,
                    pages: p.count(&e, "pages")?,
                    requests: p.count(&e, "requests")?,
                };
                p.skip()
            }
            _ => p.skip(),
        })?;
        for required in ["tests", "pages", "requests"] {
            if !seen.iter().any(|s| s == required) {
                return Err(self.invalid(e.pos, format!("<cycle> lacks <{required}>")));
            }
        }
        Ok(c)
    }

    fn counts(&mut self, e: Elem) -> Result<Counts, ReadError> {
        let bytes = self.count(&e, "bytes")?;
        let mut c = Counts {
            success: self.count(&e, "success")?,
            failure: self.count(&e, "failure")?,
            error: self.count(&e, "error")?,
            bytes,
            decoded_bytes: self.opt_count(&e, "decoded-bytes")?.unwrap_or(bytes),
            messages: self.opt_count(&e, "messages")?.unwrap_or(0),
            resources: PageResources {
                requests: self.opt_count(&e, "resource-requests")?.unwrap_or(0),
                bytes: self.opt_count(&e, "resource-bytes")?.unwrap_or(0),
                revalidated: self.opt_count(&e, "resource-revalidated")?.unwrap_or(0),
                cached: self.opt_count(&e, "resource-cached")?.unwrap_or(0),
            },
            latency: new_histogram(),
        };
        let mut found = false;
        self.children(|p, h| {
            if h.name != "histogram" {
                return p.skip();
            }
            if found {
                return Err(p.invalid(h.pos, format!("<{}> has two histograms", e.name)));
            }
            found = true;
            let text = p.text()?;
            c.latency = decode_histogram(&text).map_err(|reason| ReadError::BadHistogram {
                at: p.at(h.pos),
                element: e.name.clone(),
                reason,
            })?;
            Ok(())
        })?;
        Ok(c)
    }

    fn second(&self, e: &Elem) -> Result<SecondSample, ReadError> {
        Ok(SecondSample {
            second: self.attr(e, "t")?,
            cycle: self.opt_attr(e, "cycle")?,
            users: self.attr(e, "users")?,
            tests_ok: self.count(e, "tests")?,
            pages_ok: self.count(e, "pages")?,
            requests: self.count(e, "requests")?,
            failures: self.count(e, "failures")?,
            errors: self.count(e, "errors")?,
        })
    }

    /// `<latency>`: intervals in increasing order, each step's histogram checked.
    fn latency(&mut self, e: Elem, r: &mut NodeResult) -> Result<(), ReadError> {
        let interval_s: u32 = self.attr(&e, "interval-s")?;
        if interval_s == 0 {
            return Err(self.invalid(e.pos, "<latency interval-s> must be at least 1"));
        }
        let steps = r.steps.len();
        let mut intervals: Vec<LatencyInterval> = Vec::new();
        self.children(|p, e| {
            if e.name != "interval" {
                return p.skip();
            }
            let index: u32 = p.attr(&e, "index")?;
            if intervals.last().is_some_and(|last| last.index >= index) {
                return Err(p.invalid(e.pos, "<interval> indexes must increase"));
            }
            let mut iv = LatencyInterval {
                index,
                steps: vec![Packed::default(); steps],
            };
            p.children(|p, s| {
                if s.name != "step" {
                    return p.skip();
                }
                let step: u32 = p.attr(&s, "index")?;
                let step = step as usize;
                if step >= steps {
                    let m = format!("<step index=\"{step}\"> but the test has {steps} steps");
                    return Err(p.invalid(s.pos, m));
                }
                let text = p.text()?;
                iv.steps[step] =
                    Packed::from_base64(&text).map_err(|reason| ReadError::BadHistogram {
                        at: p.at(s.pos),
                        element: "interval".into(),
                        reason,
                    })?;
                Ok(())
            })?;
            intervals.push(iv);
            Ok(())
        })?;
        r.latency = LatencySeries {
            interval_s,
            intervals,
        };
        Ok(())
    }

    fn error_group(&mut self, e: Elem) -> Result<ErrorGroup, ReadError> {
        let mut g = ErrorGroup {
            step: self.attr(&e, "step")?,
            kind: self.attr(&e, "kind")?,
            detail: self.attr(&e, "detail")?,
            count: self.count(&e, "count")?,
            samples: Vec::new(),
        };
        self.children(|p, s| {
            if s.name != "sample" {
                return p.skip();
            }
            let url = p.attr(&s, "url")?;
            let status = p.opt_attr(&s, "status")?;
            let at_ms = p.attr(&s, "at-ms")?;
            let body = p.text()?;
            g.samples.push(ErrorSample {
                url,
                status,
                at_ms,
                body,
            });
            Ok(())
        })?;
        Ok(g)
    }

    fn resources(&mut self, e: Elem) -> Result<HostResources, ReadError> {
        let mut h = HostResources {
            host: self.attr(&e, "host")?,
            role: self.attr(&e, "role")?,
            samples: Vec::new(),
        };
        self.children(|p, r| {
            if r.name == "r" {
                h.samples.push(ResourceSample {
                    at_ms: p.attr(&r, "at-ms")?,
                    cpu_pct: p.attr(&r, "cpu-pct")?,
                    load1: p.attr(&r, "load1")?,
                    mem_used_kib: p.attr(&r, "mem-used-kib")?,
                    mem_total_kib: p.attr(&r, "mem-total-kib")?,
                    net_rx_bps: p.attr(&r, "net-rx-bps")?,
                    net_tx_bps: p.attr(&r, "net-tx-bps")?,
                });
            }
            p.skip()
        })?;
        Ok(h)
    }
}

#[cfg(test)]
mod tests;
