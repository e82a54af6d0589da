//! Loading a test file: parse with spans, validate every value, compile templates, apply the
//! command-line overrides.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::data::{column_names, data_sources};
use super::error::{from_toml, read_text, Source};
use super::generator::generator;
use super::protocol::{check_streams, http_version, streams};
use super::raw::{OneOrMany, RawBench, RawFile, RawService};
use super::scenario::{compile_steps, scenarios, Scenarios};
use super::step::{resources, StepDefaults};
use super::values::{check_base_url, check_cycle_list, duration_secs, CycleUnit};
use super::{
    Bench, HttpVersion, LoadModel, Overrides, Resources, Service, Step, TestDefError, TestPlan,
    DEFAULT_MAX_USERS, DEFAULT_RESOURCE_CONNECTIONS,
};

/// Status codes a page may answer with by default.
pub const DEFAULT_OK_CODES: [u16; 5] = [200, 301, 302, 303, 307];

/// Loads, validates and compiles the test file at `path`, then applies `overrides` (`-c`,
/// `-r`, `-D`, `-u`), checked with the same parsers as the flags.
pub fn load(path: &Path, overrides: &Overrides) -> Result<TestPlan, TestDefError> {
    let text = read_text(path)?;
    let src = Source { path, text: &text };
    let raw: RawFile = parse(&src)?;
    let mut plan = build(&src, raw)?;
    apply(&mut plan, overrides).map_err(|(option, message)| TestDefError::Override {
        option: option.into(),
        message,
    })?;
    Ok(plan)
}

/// Applies the command-line overrides; `Err` names the option and what is wrong.
fn apply(plan: &mut TestPlan, o: &Overrides) -> Result<(), (&'static str, String)> {
    if let Some(url) = &o.url {
        plan.url = check_base_url(url.as_str()).map_err(|m| ("-u", m))?;
    }
    if let Some(cycles) = &o.cycles {
        check_cycle_list(cycles, CycleUnit::Users).map_err(|m| ("-c", m))?;
        if o.rates.is_some() {
            return Err((
                "-c",
                "give either -c (users per cycle) or -r (executions per second), not both".into(),
            ));
        }
        plan.bench.cycles = cycles.clone();
        plan.bench.model = LoadModel::Closed;
    }
    if let Some(rates) = &o.rates {
        if plan.generator.is_some() {
            return Err((
                "-r",
                "a [generator] test runs users per cycle (-c); its program paces itself".into(),
            ));
        }
        check_cycle_list(rates, CycleUnit::Rate).map_err(|m| ("-r", m))?;
        plan.bench.cycles = rates.clone();
        if plan.bench.model == LoadModel::Closed {
            plan.bench.model = LoadModel::Open {
                max_users: DEFAULT_MAX_USERS,
            };
        }
    }
    if let Some(duration) = o.duration {
        duration_secs(duration.as_secs_f64()).map_err(|m| ("-D", m))?;
        plan.bench.duration = duration;
    }
    Ok(())
}

/// Deserialises the file, turning serde errors into located ones.
fn parse(src: &Source<'_>) -> Result<RawFile, TestDefError> {
    serde_path_to_error::deserialize(toml::Deserializer::new(src.text)).map_err(|e| {
        use serde_path_to_error::Segment;
        let mut segments: Vec<&Segment> = e
            .path()
            .iter()
            .filter(|s| !matches!(s, Segment::Map { key } if key.starts_with("$__")))
            .collect();
        // The path of an unknown key ends with that key; the table is what we name.
        if e.inner().message().starts_with("unknown field") {
            segments.pop();
        }
        let (section, field) = place(&segments);
        from_toml(src, e.inner(), &section, field.as_deref())
    })
}

/// The human name of the table a serde path is in, and the key inside it.
fn place(segments: &[&serde_path_to_error::Segment]) -> (String, Option<String>) {
    use serde_path_to_error::Segment;
    let mut section = String::new();
    let mut rest = segments;
    match rest {
        [Segment::Map { key }, Segment::Seq { index: i }, Segment::Map { key: c }, Segment::Seq { index: j }, tail @ ..]
            if key == "step" && c == "capture" =>
        {
            section = format!("[[step]] #{} capture #{}", i + 1, j + 1);
            rest = tail;
        }
        [Segment::Map { key }, Segment::Seq { index: i }, Segment::Map { key: c }, Segment::Seq { index: j }, tail @ ..]
            if key == "scenario" && c == "step" =>
        {
            section = format!("[[scenario]] #{} step #{}", i + 1, j + 1);
            rest = tail;
        }
        [Segment::Map { key }, Segment::Seq { index }, tail @ ..]
            if key == "scenario" || key == "data" || key == "threshold" =>
        {
            section = format!("[[{key}]] #{}", index + 1);
            rest = tail;
        }
        [Segment::Map { key }, Segment::Seq { index }, tail @ ..] if key == "step" => {
            section = format!("[[step]] #{}", index + 1);
            rest = tail;
        }
        [Segment::Map { key }, tail @ ..] => {
            section = if key == "step" || key == "threshold" {
                format!("[[{key}]]")
            } else {
                format!("[{key}]")
            };
            rest = tail;
        }
        _ => {}
    }
    let field: Vec<String> = rest
        .iter()
        .filter_map(|s| match s {
            Segment::Map { key } => Some(key.clone()),
            Segment::Seq { index } => Some(index.to_string()),
            _ => None,
        })
        .collect();
    let field = (!field.is_empty()).then(|| field.join("."));
    (section, field)
}

/// Builds the plan from the raw file, validating every value.
fn build(src: &Source<'_>, raw: RawFile) -> Result<TestPlan, TestDefError> {
    let test = raw.test.into_inner();
    let name = test.name.get_ref().trim().to_string();
    if name.is_empty() {
        return Err(src.error(test.name.span(), "[test] name", "must not be empty"));
    }
    let url = check_base_url(test.url.get_ref())
        .map_err(|m| src.error(test.url.span(), "[test] url", m))?;
    let raw_bench = raw.bench.unwrap_or_default();
    let http = http_version(src, "[test] http", test.http.as_ref(), HttpVersion::Http1)?;
    let streams = streams(src, test.streams.as_ref())?;

    let generator = match raw.generator {
        Some(g) => {
            let steps = raw.step.as_ref().map(|s| ("[[step]]s", s.span()));
            let scenarios = raw.scenario.as_ref().map(|s| ("[[scenario]]s", s.span()));
            let users_only = [
                ("[test] http", test.http.as_ref().map(Spanned::span)),
                ("[test] streams", test.streams.as_ref().map(Spanned::span)),
                (
                    "[[data]]",
                    raw.data.iter().flatten().next().map(Spanned::span),
                ),
            ];
            Some(generator(
                src,
                g,
                steps.or(scenarios),
                &raw_bench,
                &users_only,
            )?)
        }
        None => None,
    };
    let data = data_sources(src, raw.data.unwrap_or_default())?;
    let data_names = column_names(&data);
    let mut bench = bench(src, raw_bench)?;
    let mut steps: Vec<Step> = Vec::new();
    let scenarios = match &generator {
        // The program starts at once: its window opens when it starts.
        Some(_) => {
            bench.startup_delay = Duration::ZERO;
            Scenarios::implicit(0)
        }
        None => {
            let defaults = StepDefaults {
                http,
                resources: bench.resources,
            };
            let raw_steps = (raw.step, raw.scenario);
            steps_and_scenarios(src, raw_steps, &mut steps, &data_names, defaults)?
        }
    };
    if let Some(span) = test.streams.as_ref().map(Spanned::span) {
        check_streams(src, span, streams, &steps)?;
    }
    let names: Vec<String> = match &generator {
        Some(g) => g.steps.clone(),
        None => steps.iter().map(|s| s.name.clone()).collect(),
    };
    let service = raw.service.map(|s| service(src, s)).transpose()?;
    let thresholds = super::threshold::thresholds(src, raw.threshold, &names)?;
    Ok(TestPlan {
        path: src.path.to_path_buf(),
        name,
        description: test.description.unwrap_or_default().trim().to_string(),
        url,
        bench,
        steps,
        scenarios,
        data,
        generator,
        monitor_hosts: raw.monitor.map(|m| m.hosts).unwrap_or_default(),
        service,
        thresholds,
        streams,
    })
}

/// An array of tables as written (`[[step]]`, `[[scenario]]`), when given.
type Tables<T> = Option<Spanned<Vec<Spanned<T>>>>;

/// The top-level `[[step]]`s as one scenario, or the `[[scenario]]`s; their steps go to `steps`.
fn steps_and_scenarios(
    src: &Source<'_>,
    (raw_steps, raw_scenarios): (Tables<super::raw::RawStep>, Tables<super::raw::RawScenario>),
    steps: &mut Vec<Step>,
    data_names: &std::collections::HashSet<String>,
    defaults: StepDefaults,
) -> Result<Scenarios, TestDefError> {
    match (raw_steps, raw_scenarios) {
        (Some(_), Some(sc)) => Err(src.error(
            sc.span(),
            "[[scenario]]",
            "give either top-level [[step]]s (one scenario) or [[scenario]]s with their own \
             [[scenario.step]]s, not both",
        )),
        (None, Some(sc)) => scenarios(src, sc, steps, data_names, defaults),
        (Some(raw_steps), None) => {
            if raw_steps.get_ref().is_empty() {
                return Err(src.error(raw_steps.span(), "step", "the list of steps is empty"));
            }
            compile_steps(
                src,
                "[[step]]",
                raw_steps.into_inner(),
                steps,
                data_names,
                defaults,
            )?;
            Ok(Scenarios::implicit(steps.len()))
        }
        (None, None) => {
            let end = src.text.trim_end().len();
            Err(src.error(
                end..end,
                "[[step]]",
                "the test has no steps: add at least one [[step]] with a name and a path (or a \
                 [generator])",
            ))
        }
    }
}

/// A time in seconds: finite, not negative, and more than 0 when `positive`.
fn seconds(
    src: &Source<'_>,
    key: &str,
    value: Option<Spanned<f64>>,
    default: f64,
    positive: bool,
) -> Result<Duration, TestDefError> {
    let Some(value) = value else {
        return Ok(Duration::from_secs_f64(default));
    };
    let secs = *value.get_ref();
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if !(positive && d.is_zero()) => Ok(d),
        _ => Err(src.error(
            value.span(),
            key,
            format!(
                "{secs} is not a valid time: give {} number of seconds",
                if positive {
                    "a positive"
                } else {
                    "a non-negative"
                }
            ),
        )),
    }
}

/// Status codes: a non-empty list of numbers from 100 to 599.
pub(crate) fn status_codes(
    src: &Source<'_>,
    key: &str,
    codes: Spanned<OneOrMany<i64>>,
) -> Result<Vec<u16>, TestDefError> {
    let span = codes.span();
    let codes = codes.into_inner().0;
    if codes.is_empty() {
        return Err(src.error(span, key, "the list of status codes is empty"));
    }
    codes
        .into_iter()
        .map(|c| {
            u16::try_from(c)
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| {
                    src.error(
                        span.clone(),
                        key,
                        format!("{c} is not an HTTP status code (100 to 599)"),
                    )
                })
        })
        .collect()
}

fn bench(src: &Source<'_>, raw: RawBench) -> Result<Bench, TestDefError> {
    let open = load_model(src, &raw)?;
    let mut bench = bench_times(src, raw)?;
    if let Some((rates, model)) = open {
        bench.cycles = rates;
        bench.model = model;
    }
    Ok(bench)
}

/// Users per cycle (`cycles`) or executions per second per cycle (`rate`, open model).
fn load_model(
    src: &Source<'_>,
    raw: &RawBench,
) -> Result<Option<(Vec<u32>, LoadModel)>, TestDefError> {
    let Some(rate) = &raw.rate else {
        if let Some(m) = &raw.max_users {
            return Err(src.error(
                m.span(),
                "[bench] max_users",
                "applies only with `rate` (the open model)",
            ));
        }
        return Ok(None);
    };
    if let Some(c) = &raw.cycles {
        return Err(src.error(
            c.span(),
            "[bench] cycles",
            "give either `cycles` (users per cycle) or `rate` (executions per second per cycle), not both",
        ));
    }
    let rates = rate
        .get_ref()
        .0
        .iter()
        .map(|r| {
            u32::try_from(*r).ok().filter(|r| *r > 0).ok_or_else(|| {
                src.error(
                    rate.span(),
                    "[bench] rate",
                    format!("{r} is not a rate; give executions per second, at least 1"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if rates.is_empty() {
        return Err(src.error(rate.span(), "[bench] rate", "give at least one rate"));
    }
    let max_users = match &raw.max_users {
        None => DEFAULT_MAX_USERS,
        Some(m) => u32::try_from(*m.get_ref())
            .ok()
            .filter(|m| *m > 0)
            .ok_or_else(|| src.error(m.span(), "[bench] max_users", "must be at least 1"))?,
    };
    Ok(Some((rates, LoadModel::Open { max_users })))
}

/// `[bench] seed`: a whole number, 0 or more.
fn seed(src: &Source<'_>, seed: Option<Spanned<i64>>) -> Result<Option<u64>, TestDefError> {
    seed.map(|s| {
        u64::try_from(*s.get_ref())
            .map_err(|_| src.error(s.span(), "[bench] seed", "give a whole number, 0 or more"))
    })
    .transpose()
}

fn bench_times(src: &Source<'_>, raw: RawBench) -> Result<Bench, TestDefError> {
    let open = raw.rate.is_some();
    let cycles = match raw.cycles {
        None if open => vec![],
        None => vec![1],
        Some(list) => {
            if list.get_ref().is_empty() {
                return Err(src.error(
                    list.span(),
                    "[bench] cycles",
                    "the list of cycles is empty: give users per cycle, e.g. [5, 10]",
                ));
            }
            list.into_inner()
                .into_iter()
                .enumerate()
                .map(|(i, users)| {
                    u32::try_from(*users.get_ref())
                        .ok()
                        .filter(|u| *u > 0)
                        .ok_or_else(|| {
                            src.error(
                                users.span(),
                                "[bench] cycles",
                                format!(
                                    "cycle {} has {} users; each cycle needs at least 1",
                                    i + 1,
                                    users.get_ref()
                                ),
                            )
                        })
                })
                .collect::<Result<_, _>>()?
        }
    };
    let sleep_time_min = seconds(
        src,
        "[bench] sleep_time_min",
        raw.sleep_time_min,
        0.0,
        false,
    )?;
    let max_span = raw.sleep_time_max.as_ref().map(Spanned::span);
    let sleep_time_max = seconds(
        src,
        "[bench] sleep_time_max",
        raw.sleep_time_max,
        sleep_time_min.as_secs_f64(),
        false,
    )?;
    if sleep_time_max < sleep_time_min {
        return Err(src.error(
            max_span.unwrap_or(0..0),
            "[bench] sleep_time_max",
            format!(
                "{} s is below sleep_time_min ({} s)",
                sleep_time_max.as_secs_f64(),
                sleep_time_min.as_secs_f64()
            ),
        ));
    }
    Ok(Bench {
        cycles,
        duration: seconds(src, "[bench] duration", raw.duration, 10.0, true)?,
        startup_delay: seconds(src, "[bench] startup_delay", raw.startup_delay, 0.01, false)?,
        sleep_time_min,
        sleep_time_max,
        sleep_time: seconds(src, "[bench] sleep_time", raw.sleep_time, 0.0, false)?,
        cycle_time: seconds(src, "[bench] cycle_time", raw.cycle_time, 0.0, false)?,
        apdex_t: seconds(src, "[bench] apdex_t", raw.apdex_t, 1.5, true)?,
        ok_codes: match raw.ok_codes {
            Some(codes) => status_codes(src, "[bench] ok_codes", codes)?,
            None => DEFAULT_OK_CODES.to_vec(),
        },
        timeout: seconds(src, "[bench] timeout", raw.timeout, 30.0, true)?,
        insecure: raw.insecure.is_some_and(|i| *i.get_ref()),
        model: LoadModel::Closed,
        seed: seed(src, raw.seed)?,
        compression: raw.compression.is_none_or(|c| *c.get_ref()),
        resources: resources(
            src,
            "[bench] resources",
            raw.resources.as_ref(),
            Resources::Off,
        )?,
        resource_connections: resource_connections(src, raw.resource_connections)?,
    })
}

/// Most resource connections per user: a browser opens 6 per origin, and more mostly says the
/// test wants more users.
const MAX_RESOURCE_CONNECTIONS: u32 = 64;

/// `[bench] resource_connections`: 1 to [`MAX_RESOURCE_CONNECTIONS`], default 6.
fn resource_connections(
    src: &Source<'_>,
    value: Option<Spanned<i64>>,
) -> Result<u32, TestDefError> {
    let Some(value) = value else {
        return Ok(DEFAULT_RESOURCE_CONNECTIONS);
    };
    let n = *value.get_ref();
    u32::try_from(n)
        .ok()
        .filter(|n| (1..=MAX_RESOURCE_CONNECTIONS).contains(n))
        .ok_or_else(|| {
            src.error(
                value.span(),
                "[bench] resource_connections",
                format!(
                    "{n} is not a connection count: give 1 to {MAX_RESOURCE_CONNECTIONS} extra \
                     connections per user for page resources"
                ),
            )
        })
}

fn service(src: &Source<'_>, raw: Spanned<RawService>) -> Result<Service, TestDefError> {
    let raw: RawService = raw.into_inner();
    if raw
        .command
        .get_ref()
        .first()
        .is_none_or(|p| p.trim().is_empty())
    {
        return Err(src.error(
            raw.command.span(),
            "[service] command",
            "give the program and its arguments, e.g. [\"bench-node\", \"target\"]",
        ));
    }
    let ready_url = check_base_url(raw.ready_url.get_ref())
        .map_err(|m| src.error(raw.ready_url.span(), "[service] ready_url", m))?;
    Ok(Service {
        command: raw.command.into_inner(),
        host: raw.host.filter(|h| !h.trim().is_empty()),
        ready_url,
        ready_timeout: seconds(
            src,
            "[service] ready_timeout",
            raw.ready_timeout,
            30.0,
            true,
        )?,
    })
}
