//! The plan in words, as `bench-node check TEST.toml` prints it.

use std::fmt::Write;
use std::time::Duration;

use super::{HttpVersion, TestPlan, WsMessage};

/// Seconds as written in a test file: `3`, `0.01`, `1.5`.
fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// A longer time, rounded for reading: `6.1 s`, `12 min 5 s`.
fn long(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        let whole = s.round() as u64;
        let (h, m, s) = (whole / 3600, whole / 60 % 60, whole % 60);
        if h > 0 {
            format!("{h} h {m} min {s} s")
        } else {
            format!("{m} min {s} s")
        }
    }
}

fn join<T: ToString>(items: &[T], sep: &str) -> String {
    items.iter().map(T::to_string).collect::<Vec<_>>().join(sep)
}

impl TestPlan {
    /// About how long the bench lasts on one node: for each cycle the ramp-up (one
    /// `startup_delay` per user) and the `duration`, plus `cycle_time` between cycles.
    pub fn expected_duration(&self) -> Duration {
        // Saturating: absurd values in a test file must not panic here.
        let b = &self.bench;
        let pauses = u32::try_from(b.cycles.len().saturating_sub(1)).unwrap_or(u32::MAX);
        b.cycles
            .iter()
            .map(|users| {
                let ramp = b.startup_delay.checked_mul(*users).unwrap_or(Duration::MAX);
                ramp.saturating_add(b.duration)
            })
            .fold(Duration::ZERO, Duration::saturating_add)
            .saturating_add(b.cycle_time.checked_mul(pauses).unwrap_or(Duration::MAX))
    }

    /// The plan as `bench-node check` prints it: test, URL, cycles, times, steps with their
    /// method, target, checks and captures.
    pub fn describe(&self) -> String {
        let b = &self.bench;
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_to(&mut out, b);
        out
    }

    fn write_to(&self, out: &mut String, b: &super::Bench) -> std::fmt::Result {
        self.write_bench(out, b)?;
        match &self.generator {
            Some(g) => write_generator(out, g)?,
            None => self.write_steps(out)?,
        }
        if let Some(service) = &self.service {
            writeln!(
                out,
                "service   {} on {}, ready when {} answers (within {})",
                join(&service.command, " "),
                service.host.as_deref().unwrap_or("the master"),
                service.ready_url,
                secs(service.ready_timeout)
            )?;
        }
        if !self.monitor_hosts.is_empty() {
            writeln!(out, "monitor   {}", self.monitor_hosts.join(", "))?;
        }
        super::threshold::describe(out, &self.thresholds)
    }

    /// The test, its URL and the `[bench]` values.
    fn write_bench(&self, out: &mut String, b: &super::Bench) -> std::fmt::Result {
        writeln!(out, "test      {}", self.name)?;
        if !self.description.is_empty() {
            writeln!(
                out,
                "          {}",
                self.description.replace('\n', "\n          ")
            )?;
        }
        writeln!(out, "file      {}", self.path.display())?;
        writeln!(out, "url       {}", self.url)?;
        writeln!(
            out,
            "cycles    {} users ({} cycle{} of {} each)",
            join(&b.cycles, ", "),
            b.cycles.len(),
            if b.cycles.len() == 1 { "" } else { "s" },
            secs(b.duration)
        )?;
        if self.generator.is_some() {
            writeln!(out, "apdex T   {}", secs(b.apdex_t))?;
        } else {
            self.write_pacing(out, b)?;
        }
        writeln!(
            out,
            "expected  about {} per node (ramp-ups and pauses included)",
            long(self.expected_duration())
        )
    }

    /// The `[bench]` values that pace HTTP users and judge their requests.
    fn write_pacing(&self, out: &mut String, b: &super::Bench) -> std::fmt::Result {
        writeln!(
            out,
            "pacing    {} between user starts, think time {} to {}, {} between executions, {} between cycles",
            secs(b.startup_delay),
            secs(b.sleep_time_min),
            secs(b.sleep_time_max),
            secs(b.sleep_time),
            secs(b.cycle_time)
        )?;
        writeln!(
            out,
            "requests  timeout {}, ok codes {}, apdex T {}{}",
            secs(b.timeout),
            join(&b.ok_codes, " "),
            secs(b.apdex_t),
            if b.insecure {
                ", TLS certificates NOT checked"
            } else {
                ""
            }
        )?;
        let plain: Vec<&str> = (self.steps.iter())
            .filter(|s| s.websocket.is_none() && !s.compression.unwrap_or(b.compression))
            .map(|s| s.name.as_str())
            .collect();
        if !plain.is_empty() {
            writeln!(out, "compress  not asked for by {}", plain.join(", "))?;
        }
        writeln!(out, "protocol  {}", self.protocols())
    }

    /// The HTTP versions the steps speak, and the streams per user.
    fn protocols(&self) -> String {
        let mut versions: Vec<&str> = Vec::new();
        for step in self.steps.iter().filter(|s| s.websocket.is_none()) {
            let v = match step.http {
                HttpVersion::Http1 => "HTTP/1.1",
                HttpVersion::Http2 => "HTTP/2 (ALPN h2 over TLS, h2c on http://)",
                HttpVersion::Auto => "HTTP/2 or HTTP/1.1 as ALPN agrees (HTTP/1.1 on http://)",
            };
            if !versions.contains(&v) {
                versions.push(v);
            }
        }
        if self.steps.iter().any(|s| s.websocket.is_some()) {
            versions.push("WebSocket (HTTP/1.1 upgrade)");
        }
        let mut text = versions.join(", ");
        if versions == ["HTTP/1.1"] {
            text.push_str(" (the default; http = \"2\" or \"auto\" in [test] or a step)");
        }
        if self.streams > 1 {
            let _ = write!(
                text,
                ", {} requests in flight per user on its one connection",
                self.streams
            );
        }
        text
    }

    /// The scenarios with their weights, the data files with their first row, the seed.
    fn write_mix(&self, out: &mut String) -> std::fmt::Result {
        let recorded = self.scenarios.recorded();
        if !recorded.is_empty() {
            let total: u32 = recorded.iter().map(|s| s.weight).sum();
            let mix: Vec<String> = recorded
                .iter()
                .map(|s| {
                    let pct = f64::from(s.weight) * 100.0 / f64::from(total);
                    format!(
                        "{} ×{} ({pct:.0} %, {} steps)",
                        s.name,
                        s.weight,
                        s.steps.len()
                    )
                })
                .collect();
            writeln!(out, "scenarios {}: {}", recorded.len(), mix.join(", "))?;
        }
        for d in &self.data {
            let first: Vec<String> = d
                .columns
                .iter()
                .zip(&d.first_row)
                .map(|(c, v)| format!("{c}={v:?}"))
                .collect();
            writeln!(
                out,
                "data      {} = {} ({} row{}, {}, at the end {}); columns {}; first row {}",
                d.name,
                d.file.display(),
                d.rows,
                if d.rows == 1 { "" } else { "s" },
                d.order,
                d.on_end,
                d.columns.join(", "),
                first.join(" ")
            )?;
        }
        if let Some(seed) = self.bench.seed {
            writeln!(out, "seed      {seed} (the same random streams every run)")?;
        }
        Ok(())
    }

    /// The steps with their method, target, body, headers, checks and captures.
    fn write_steps(&self, out: &mut String) -> std::fmt::Result {
        self.write_mix(out)?;
        writeln!(out, "steps     {}", self.steps.len())?;
        let width = self.steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for (i, step) in self.steps.iter().enumerate() {
            let method = match step.websocket {
                Some(_) => "WS".to_string(),
                None => step.method.to_string(),
            };
            write!(
                out,
                "  {:>2}. {:width$}  {method} {}",
                i + 1,
                step.name,
                step.target_text
            )?;
            if let Some(body) = &step.body {
                write!(out, "  [{} body]", body.kind())?;
            }
            if step.websocket.is_none() && step.http != HttpVersion::Http1 {
                write!(out, "  [http {}]", step.http)?;
            }
            writeln!(out)?;
            let indent = " ".repeat(width + 8);
            if let Some(ws) = &step.websocket {
                match &ws.send {
                    Some(WsMessage::Text(t)) => writeln!(out, "{indent}send {:?}", t.source())?,
                    Some(WsMessage::Binary(b)) => {
                        writeln!(out, "{indent}send {} binary bytes", b.len())?
                    }
                    None => {}
                }
                if let Some(e) = &ws.expect {
                    writeln!(out, "{indent}wait for a message containing {e:?}")?;
                }
                for r in &ws.expect_regex {
                    writeln!(out, "{indent}wait for a message matching {:?}", r.as_str())?;
                }
            }
            if !step.headers.is_empty() {
                let headers: Vec<String> = step
                    .headers
                    .iter()
                    .map(|(n, v)| format!("{n}: {}", v.source()))
                    .collect();
                writeln!(out, "{indent}headers {}", headers.join("; "))?;
            }
            if let Some(codes) = &step.expect_status {
                writeln!(out, "{indent}expect status {}", join(codes, " "))?;
            }
            for check in &step.checks {
                writeln!(out, "{indent}check {check}")?;
            }
            for capture in &step.captures {
                writeln!(
                    out,
                    "{indent}capture {} from {}",
                    capture.name, capture.source
                )?;
            }
            let origins = match step.resources {
                super::Resources::Off => None,
                super::Resources::SameOrigin => Some("its own origin"),
                super::Resources::All => Some("every origin"),
            };
            if let Some(origins) = origins {
                writeln!(
                    out,
                    "{indent}then its page resources of {origins}, over {} connections, cached per user",
                    self.bench.resource_connections
                )?;
            }
        }
        Ok(())
    }
}

/// The program that makes the load, what it reports and what goes with it.
fn write_generator(out: &mut String, g: &super::Generator) -> std::fmt::Result {
    writeln!(
        out,
        "generator {}  (run in the test's directory once per cycle on each node; SIGTERM when \
         the cycle's window ends, SIGKILL 5 s later)",
        join(&g.command, " ")
    )?;
    writeln!(
        out,
        "          environment BENCH_NODE BENCH_NODES BENCH_USERS BENCH_CYCLE BENCH_DURATION \
         BENCH_RUN BENCH_URL; one JSON line per operation on stdout"
    )?;
    writeln!(
        out,
        "steps     {} reported: {}",
        g.steps.len(),
        g.steps.join(", ")
    )?;
    if !g.files.is_empty() {
        let files: Vec<String> = g.files.iter().map(|f| f.display().to_string()).collect();
        writeln!(
            out,
            "files     {} (deployed with the test)",
            files.join(", ")
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_times_are_rounded() {
        assert_eq!(long(Duration::from_millis(6080)), "6.1 s");
        assert_eq!(long(Duration::from_secs(725)), "12 min 5 s");
        assert_eq!(long(Duration::from_secs(3 * 3600 + 61)), "3 h 1 min 1 s");
        assert_eq!(secs(Duration::from_millis(10)), "0.01 s");
        assert_eq!(secs(Duration::from_secs(3)), "3 s");
    }
}
