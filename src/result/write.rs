//! Writer of result XML.
//!
//! The format is described element by element in `docs/RESULT-FORMAT.md`. Escaping is done by
//! quick-xml; characters XML 1.0 cannot carry at all (control characters but tab, LF and CR,
//! U+FFFE, U+FFFF) are dropped from every string, and non-finite numbers are written as 0, so
//! that whatever a server sent, the file stays well-formed and readable.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hdrhistogram::Histogram;
use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use super::latency::*;
use super::model::*;
use super::threshold::Threshold;

/// Name of the root element.
pub const ROOT: &str = "benchmaster-result";

/// Writes `r` as a result XML document to `w`.
pub fn to_writer<W: Write>(r: &NodeResult, w: W) -> io::Result<()> {
    let mut x = Writer::new_with_indent(w, b' ', 1);
    x.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let root = Attrs::new()
        .add("format", r.format_version)
        .add("tool-version", &r.tool_version)
        .add("started-unix-ms", r.started_unix_ms);
    let root = match r.began_unix_ms {
        Some(at) => root.add("began-unix-ms", at),
        None => root,
    };
    root.element(&mut x, ROOT).write_inner_content(|x| {
        write_head(x, r)?;
        write_cycles(x, r)?;
        write_series(x, &r.series)?;
        write_latency(x, &r.latency)?;
        write_errors(x, &r.errors)?;
        write_data(x, &r.data)?;
        for h in &r.resources {
            write_resources(x, h)?;
        }
        Attrs::new()
            .add("interrupted", r.interrupted)
            .add("finished-unix-ms", r.finished_unix_ms)
            .element(x, "end")
            .write_empty()?;
        Ok(())
    })?;
    x.get_mut().write_all(b"\n")?;
    x.into_inner().flush()
}

/// Writes `r` to `path` safely: to `<path>.tmp` in the same directory first, flushed to disk,
/// then renamed onto `path`, so that `path` is either the previous file or the complete new one.
pub fn write_file(r: &NodeResult, path: &Path) -> io::Result<()> {
    ResultFile::create(path)
        .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))?
        .write(r)
}

/// A result file on its way: `<path>.tmp` created and held open before a run, so that a place
/// that cannot take the result fails before any load is made, and the run's end only writes,
/// syncs and renames (creating a file is the dearest of those on a busy directory). Dropped
/// unwritten, it removes `<path>.tmp`.
pub struct ResultFile {
    path: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
}

impl ResultFile {
    /// Creates (or empties) `<path>.tmp`.
    pub fn create(path: &Path) -> io::Result<ResultFile> {
        let tmp = tmp_path(path);
        let file = File::create(&tmp)?;
        Ok(ResultFile {
            path: path.to_path_buf(),
            tmp,
            file: Some(file),
        })
    }

    /// Writes `r` into the file, flushes it to disk and renames it onto its path.
    pub fn write(self, r: &NodeResult) -> io::Result<()> {
        let mut bytes = Vec::new();
        to_writer(r, &mut bytes)?;
        self.write_bytes(&bytes)
    }

    /// Writes `bytes` (a result [`to_writer`] encoded) as [`ResultFile::write`] does.
    pub fn write_bytes(mut self, bytes: &[u8]) -> io::Result<()> {
        let file = self.file.take().expect("a result file is written once");
        let result = self.commit(bytes, file);
        if result.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        result.map_err(|e: io::Error| {
            io::Error::new(e.kind(), format!("writing {}: {e}", self.path.display()))
        })
    }

    fn commit(&self, bytes: &[u8], mut file: File) -> io::Result<()> {
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path)?;
        // Make the rename itself durable; not every file system lets a directory be synced.
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for ResultFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// `<path>.tmp`, beside `path`.
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Attribute list of one element, values already turned into XML-safe text.
struct Attrs(Vec<(&'static str, String)>);

impl Attrs {
    fn new() -> Self {
        Attrs(Vec::new())
    }

    fn add(mut self, name: &'static str, value: impl AttrValue) -> Self {
        self.0.push((name, value.attr_text()));
        self
    }

    fn element<'a, W: Write>(
        &'a self,
        x: &'a mut Writer<W>,
        name: &'a str,
    ) -> quick_xml::writer::ElementWriter<'a, W> {
        x.create_element(name)
            .with_attributes(self.0.iter().map(|(k, v)| (*k, v.as_str())))
    }
}

/// How a value is spelled in an attribute.
trait AttrValue {
    fn attr_text(&self) -> String;
}

macro_rules! display_attr {
    ($($t:ty),*) => {$(
        impl AttrValue for $t {
            fn attr_text(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
display_attr!(u16, u32, u64, bool);

impl AttrValue for f64 {
    /// Rust prints the shortest text that parses back to the same `f64`.
    fn attr_text(&self) -> String {
        if self.is_finite() {
            self.to_string()
        } else {
            "0".to_string()
        }
    }
}

impl AttrValue for &String {
    fn attr_text(&self) -> String {
        xml_safe(self).into_owned()
    }
}

impl AttrValue for &str {
    fn attr_text(&self) -> String {
        xml_safe(self).into_owned()
    }
}

/// A list of numbers, space-separated.
impl<T: AttrValue> AttrValue for &[T] {
    fn attr_text(&self) -> String {
        let items: Vec<String> = self.iter().map(|v| v.attr_text()).collect();
        items.join(" ")
    }
}

/// True for characters XML 1.0 allows in a document.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// `s` without the characters XML 1.0 cannot hold.
pub fn xml_safe(s: &str) -> Cow<'_, str> {
    if s.chars().all(is_xml_char) {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.chars().filter(|c| is_xml_char(*c)).collect())
    }
}

/// Writes `<name attrs>text</name>`, the text escaped by quick-xml.
fn text_element<W: Write>(x: &mut Writer<W>, name: &str, a: Attrs, text: &str) -> io::Result<()> {
    a.element(x, name)
        .write_text_content(BytesText::new(&xml_safe(text)))?;
    Ok(())
}

fn write_head<W: Write>(x: &mut Writer<W>, r: &NodeResult) -> io::Result<()> {
    let n = &r.node;
    Attrs::new()
        .add("number", n.number)
        .add("count", n.count)
        .add("host", &n.host)
        .add("run", &n.run)
        .add("start-delay-ms", n.start_delay_ms)
        .element(x, "node")
        .write_empty()?;
    let t = &r.test;
    let a = Attrs::new().add("name", &t.name).add("url", &t.url);
    text_element(x, "test", a, &t.description)?;
    let c = &r.config;
    Attrs::new()
        .add("cycles", c.cycles.as_slice())
        .add("duration-s", c.duration_s)
        .add("startup-delay-s", c.startup_delay_s)
        .add("sleep-time-min-s", c.sleep_time_min_s)
        .add("sleep-time-max-s", c.sleep_time_max_s)
        .add("sleep-time-s", c.sleep_time_s)
        .add("cycle-time-s", c.cycle_time_s)
        .add("apdex-t-s", c.apdex_t_s)
        .add("ok-codes", c.ok_codes.as_slice())
        .add("timeout-s", c.timeout_s)
        .add("model", c.model.as_str())
        .add("streams", c.streams)
        .element(x, "config")
        .write_empty()?;
    write_thresholds(x, &c.thresholds)?;
    x.create_element("steps").write_inner_content(|x| {
        for (i, s) in r.steps.iter().enumerate() {
            Attrs::new()
                .add("index", i as u64)
                .add("name", &s.name)
                .add("method", &s.method)
                .add("target", &s.target)
                .add("protocol", &s.protocol)
                .element(x, "step")
                .write_empty()?;
        }
        Ok(())
    })?;
    if !r.scenarios.is_empty() {
        x.create_element("scenarios").write_inner_content(|x| {
            for (i, s) in r.scenarios.iter().enumerate() {
                Attrs::new()
                    .add("index", i as u64)
                    .add("name", &s.name)
                    .add("weight", s.weight)
                    .add("first-step", s.first_step)
                    .add("steps", s.steps)
                    .element(x, "scenario")
                    .write_empty()?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

fn write_cycles<W: Write>(x: &mut Writer<W>, r: &NodeResult) -> io::Result<()> {
    x.create_element("cycles").write_inner_content(|x| {
        for c in &r.cycles {
            let a = Attrs::new()
                .add("index", c.index)
                .add("users", c.users)
                .add("window-start-ms", c.window_start_ms)
                .add("window-s", c.window_s)
                .add("dropped", c.dropped);
            a.element(x, "cycle").write_inner_content(|x| {
                write_counts(x, "tests", None, &c.tests)?;
                write_counts(x, "pages", None, &c.pages)?;
                write_counts(x, "requests", None, &c.requests)?;
                for (i, s) in c.steps.iter().enumerate() {
                    write_counts(x, "step", Some(i), s)?;
                }
                for (i, s) in c.scenarios.iter().enumerate() {
                    write_counts(x, "scenario", Some(i), s)?;
                }
                Attrs::new()
                    .add("tests", c.outside.tests)
                    .add("pages", c.outside.pages)
                    .add("requests", c.outside.requests)
                    .element(x, "outside")
                    .write_empty()?;
                Ok(())
            })?;
        }
        Ok(())
    })?;
    Ok(())
}

fn write_counts<W: Write>(
    x: &mut Writer<W>,
    name: &str,
    index: Option<usize>,
    c: &Counts,
) -> io::Result<()> {
    let mut a = Attrs::new();
    if let Some(i) = index {
        a = a.add("index", i as u64);
    }
    let a = a
        .add("success", c.success)
        .add("failure", c.failure)
        .add("error", c.error)
        .add("bytes", c.bytes);
    // Only where answers came compressed: other results read as before.
    let a = if c.decoded_bytes != c.bytes {
        a.add("decoded-bytes", c.decoded_bytes)
    } else {
        a
    };
    // Only where there are any (WebSocket steps): HTTP results read as before.
    let a = if c.messages > 0 {
        a.add("messages", c.messages)
    } else {
        a
    };
    // Only for pages with resources: other results read as before.
    let r = &c.resources;
    let a = if r.is_empty() {
        a
    } else {
        a.add("resource-requests", r.requests)
            .add("resource-bytes", r.bytes)
            .add("resource-revalidated", r.revalidated)
            .add("resource-cached", r.cached)
    };
    let encoded = encode_histogram(&c.latency)?;
    a.element(x, name).write_inner_content(|x| {
        let h = x.create_element("histogram");
        if encoded.is_empty() {
            h.write_empty()?;
        } else {
            h.write_text_content(BytesText::new(&encoded))?;
        }
        Ok(())
    })?;
    Ok(())
}

/// The histogram in HdrHistogram's V2 + deflate format, base64; empty for an empty histogram.
/// A histogram of other bounds than [`new_histogram`]'s is converted to them first.
pub fn encode_histogram(h: &Histogram<u64>) -> io::Result<String> {
    if h.is_empty() {
        return Ok(String::new());
    }
    // A histogram of other bounds would not merge with the others: re-record its values
    // into one of the format's bounds (values past the top are clamped to it).
    let format = new_histogram();
    let converted;
    let h = if (h.low(), h.high(), h.sigfig()) == (format.low(), format.high(), format.sigfig()) {
        h
    } else {
        let mut f = format;
        for v in h.iter_recorded() {
            let value = v.value_iterated_to().clamp(f.low(), f.high());
            f.saturating_record_n(value, v.count_at_value());
        }
        converted = f;
        &converted
    };
    let bytes = super::pack::v2_deflate(h);
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

fn write_series<W: Write>(x: &mut Writer<W>, series: &[SecondSample]) -> io::Result<()> {
    x.create_element("series").write_inner_content(|x| {
        for s in series {
            let mut a = Attrs::new().add("t", s.second);
            if let Some(c) = s.cycle {
                a = a.add("cycle", c);
            }
            a.add("users", s.users)
                .add("tests", s.tests_ok)
                .add("pages", s.pages_ok)
                .add("requests", s.requests)
                .add("failures", s.failures)
                .add("errors", s.errors)
                .element(x, "s")
                .write_empty()?;
        }
        Ok(())
    })?;
    Ok(())
}

/// `<latency>`: per interval, each step's histogram (steps without a page left out).
fn write_latency<W: Write>(x: &mut Writer<W>, latency: &LatencySeries) -> io::Result<()> {
    if latency.intervals.is_empty() {
        return Ok(());
    }
    let a = Attrs::new().add("interval-s", latency.interval_s);
    a.element(x, "latency").write_inner_content(|x| {
        for iv in &latency.intervals {
            let a = Attrs::new().add("index", iv.index);
            a.element(x, "interval").write_inner_content(|x| {
                for (i, p) in iv.steps.iter().enumerate().filter(|(_, p)| !p.is_empty()) {
                    let text = p.to_base64();
                    let a = Attrs::new().add("index", i as u64);
                    a.element(x, "step")
                        .write_text_content(BytesText::new(&text))?;
                }
                Ok(())
            })?;
        }
        Ok(())
    })?;
    Ok(())
}

fn write_errors<W: Write>(x: &mut Writer<W>, errors: &[ErrorGroup]) -> io::Result<()> {
    x.create_element("errors").write_inner_content(|x| {
        for g in errors {
            let a = Attrs::new()
                .add("step", &g.step)
                .add("kind", g.kind.as_str())
                .add("detail", &g.detail)
                .add("count", g.count);
            a.element(x, "group").write_inner_content(|x| {
                for s in &g.samples {
                    let mut a = Attrs::new().add("url", &s.url);
                    if let Some(st) = s.status {
                        a = a.add("status", st);
                    }
                    text_element(x, "sample", a.add("at-ms", s.at_ms), &s.body)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    })?;
    Ok(())
}

fn write_data<W: Write>(x: &mut Writer<W>, data: &[DataUsage]) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    x.create_element("data").write_inner_content(|x| {
        for (i, d) in data.iter().enumerate() {
            let mut a = Attrs::new()
                .add("index", i as u64)
                .add("name", &d.name)
                .add("file", &d.file)
                .add("order", d.order.as_str())
                .add("on-end", d.on_end.as_str())
                .add("rows", d.rows)
                .add("used", d.used);
            if let Some(ms) = d.exhausted_ms {
                a = a.add("exhausted-ms", ms);
            }
            a.element(x, "source").write_empty()?;
        }
        Ok(())
    })?;
    Ok(())
}

fn write_resources<W: Write>(x: &mut Writer<W>, h: &HostResources) -> io::Result<()> {
    let a = Attrs::new()
        .add("host", &h.host)
        .add("role", h.role.as_str());
    a.element(x, "resources").write_inner_content(|x| {
        for s in &h.samples {
            Attrs::new()
                .add("at-ms", s.at_ms)
                .add("cpu-pct", s.cpu_pct)
                .add("load1", s.load1)
                .add("mem-used-kib", s.mem_used_kib)
                .add("mem-total-kib", s.mem_total_kib)
                .add("net-rx-bps", s.net_rx_bps)
                .add("net-tx-bps", s.net_tx_bps)
                .element(x, "r")
                .write_empty()?;
        }
        Ok(())
    })?;
    Ok(())
}

/// `<thresholds>`, only when the test has some (files without thresholds stay as they were).
fn write_thresholds<W: Write>(x: &mut Writer<W>, thresholds: &[Threshold]) -> io::Result<()> {
    if thresholds.is_empty() {
        return Ok(());
    }
    x.create_element("thresholds").write_inner_content(|x| {
        for t in thresholds {
            let mut a = Attrs::new().add("metric", t.metric.as_str());
            if let Some(step) = &t.step {
                a = a.add("step", step);
            }
            a.add("cycle", t.scope.as_str())
                .add(t.bound.as_str(), t.limit)
                .add("abort", t.abort)
                .add("abort-after-s", t.abort_after_s)
                .element(x, "threshold")
                .write_empty()?;
        }
        Ok(())
    })?;
    Ok(())
}
