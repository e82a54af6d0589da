//! A builder of node results with known counts and latencies, for the report tests.

use benchmaster::result::*;

/// One cycle of a fixture node: users, and the latency of each successful request, µs.
#[derive(Clone, Default)]
pub struct CycleSpec {
    pub users: u32,
    pub ok_us: Vec<u64>,
    pub failures: Vec<u64>,
    pub errors: u64,
    pub window_s: f64,
}

impl CycleSpec {
    pub fn new(users: u32, window_s: f64) -> Self {
        CycleSpec {
            users,
            window_s,
            ..CycleSpec::default()
        }
    }

    /// `n` successes of `us` µs each.
    pub fn ok(mut self, n: usize, us: u64) -> Self {
        self.ok_us.resize(self.ok_us.len() + n, us);
        self
    }

    /// `n` failures (bad status) of `us` µs each.
    pub fn fail(mut self, n: usize, us: u64) -> Self {
        self.failures.resize(self.failures.len() + n, us);
        self
    }

    pub fn err(mut self, n: u64) -> Self {
        self.errors += n;
        self
    }
}

/// Builds node results with known counts and latencies: every test is one page of one
/// request; pages go to the steps in turn.
pub struct Fixture {
    pub test: String,
    pub url: String,
    pub steps: Vec<String>,
    pub duration_s: f64,
    pub apdex_t_s: f64,
    pub started_unix_ms: u64,
    pub run: String,
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture {
            test: "checkout".into(),
            url: "http://127.0.0.1:8080".into(),
            steps: vec!["home".into(), "search".into()],
            duration_s: 10.0,
            apdex_t_s: 1.5,
            started_unix_ms: 1_700_000_000_000,
            run: "nightly".into(),
        }
    }
}

fn counts(ok: &[u64], fail: &[u64], errors: u64) -> Counts {
    let mut c = Counts::default();
    for &us in ok {
        c.latency.record(us).unwrap();
        c.success += 1;
        c.bytes += 100;
        c.decoded_bytes += 100;
    }
    for &us in fail {
        c.latency.record(us).unwrap();
        c.failure += 1;
    }
    c.error = errors;
    c
}

impl Fixture {
    pub fn node(&self, number: u32, host: &str, cycles: &[CycleSpec]) -> NodeResult {
        let plan: Vec<u32> = cycles.iter().map(|c| c.users).collect();
        let nsteps = self.steps.len();
        let mut series = Vec::new();
        let mut latency = LatencySum::new(1, nsteps);
        let mut results = Vec::new();
        let mut at_ms = 0u64;
        for (i, c) in cycles.iter().enumerate() {
            let all = counts(&c.ok_us, &c.failures, c.errors);
            // Steps in turn: success i goes to step i % nsteps.
            let mut steps = Vec::new();
            for s in 0..nsteps {
                let pick = |v: &[u64]| {
                    v.iter()
                        .skip(s)
                        .step_by(nsteps)
                        .copied()
                        .collect::<Vec<_>>()
                };
                let e = (0..c.errors).skip(s).step_by(nsteps).count() as u64;
                steps.push(counts(&pick(&c.ok_us), &pick(&c.failures), e));
            }
            let secs = c.window_s.ceil() as u64;
            let start_s = at_ms / 1000;
            // Success i completes in second i % secs of the window, at step i % nsteps.
            let mut by_second = std::collections::BTreeMap::new();
            for (i, us) in c.ok_us.iter().enumerate() {
                let second = (start_s + i as u64 % secs.max(1)) as u32;
                by_second
                    .entry((second, i % nsteps))
                    .or_insert_with(latency::new_interval_histogram)
                    .record(*us)
                    .unwrap();
            }
            for ((second, step), h) in by_second {
                latency.add_second(second, step, &h);
            }
            for k in 0..secs {
                let share = |n: u64| n / secs + u64::from(k < n % secs);
                let ok = share(c.ok_us.len() as u64);
                series.push(SecondSample {
                    second: (start_s + k) as u32,
                    cycle: Some(i as u32),
                    users: c.users,
                    tests_ok: ok,
                    pages_ok: ok,
                    requests: ok + share(c.failures.len() as u64) + share(c.errors),
                    failures: share(c.failures.len() as u64),
                    errors: share(c.errors),
                });
            }
            results.push(CycleResult {
                index: i as u32,
                users: c.users,
                window_start_ms: at_ms,
                window_s: c.window_s,
                tests: all.clone(),
                pages: all.clone(),
                requests: all,
                steps,
                scenarios: Vec::new(),
                outside: Outside {
                    tests: 1,
                    pages: 1,
                    requests: 1,
                },
                dropped: 0,
            });
            at_ms += (c.window_s * 1000.0) as u64;
        }
        NodeResult {
            format_version: FORMAT_VERSION,
            tool_version: benchmaster::VERSION.into(),
            started_unix_ms: self.started_unix_ms + u64::from(number) * 7,
            began_unix_ms: None,
            finished_unix_ms: self.started_unix_ms + at_ms,
            interrupted: false,
            node: NodeInfo {
                number,
                count: 2,
                host: host.into(),
                run: self.run.clone(),
                start_delay_ms: 0.0,
            },
            test: TestInfo {
                name: self.test.clone(),
                description: "buy one thing".into(),
                url: self.url.clone(),
            },
            scenarios: Vec::new(),
            data: Vec::new(),
            config: BenchConfig {
                cycles: plan,
                duration_s: self.duration_s,
                startup_delay_s: 0.1,
                sleep_time_min_s: 0.0,
                sleep_time_max_s: 0.5,
                sleep_time_s: 1.0,
                cycle_time_s: 1.0,
                apdex_t_s: self.apdex_t_s,
                ok_codes: vec![200, 301, 302],
                timeout_s: 10.0,
                model: ModelKind::Closed,
                thresholds: Vec::new(),
                streams: 1,
            },
            steps: self
                .steps
                .iter()
                .map(|s| StepInfo {
                    name: s.clone(),
                    method: "GET".into(),
                    target: format!("/{s}"),
                    protocol: "HTTP/1.1".into(),
                })
                .collect(),
            cycles: results,
            series,
            latency: latency.finish(),
            errors: Vec::new(),
            resources: vec![HostResources {
                host: host.into(),
                role: HostRole::Node,
                samples: (0..10)
                    .map(|k| ResourceSample {
                        at_ms: k * 1000,
                        cpu_pct: 10.0 + k as f64 * (if number == 1 { 9.0 } else { 2.0 }),
                        load1: 0.5,
                        mem_used_kib: 1 << 20,
                        mem_total_kib: 4 << 20,
                        net_rx_bps: 1e5,
                        net_tx_bps: 2e4,
                    })
                    .collect(),
            }],
        }
    }
}
