//! StatsD over UDP: per point, counters `bench.requests`, `bench.failures`, `bench.errors`,
//! `bench.bytes` (`|c`) and gauges `bench.p50_ms`, `bench.p95_ms`, `bench.p99_ms`,
//! `bench.users` (`|g`), tagged in the DogStatsD way (`|#run:..,test:..,cycle:..,step:..,node:..`,
//! which Telegraf's and Datadog's daemons read). Datagrams stay under 1 400 bytes. A daemon that
//! is not there costs nothing: UDP sends do not wait for it.

use std::fmt::Write;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::net::UdpSocket;

use super::{Interval, Sink};

/// Largest datagram sent (fits a usual MTU).
const DATAGRAM: usize = 1400;

/// Checks `HOST:PORT` of `--export statsd=`.
pub fn check_address(value: &str) -> Result<(), String> {
    match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!(
            "`{value}`: expected HOST:PORT, e.g. 127.0.0.1:8125"
        )),
    }
}

/// A tag value as StatsD takes it: no `|`, `,`, `#`, `:`, newline or space.
fn clean(v: &str) -> String {
    v.chars()
        .map(|c| if "|,#: \n\r".contains(c) { '_' } else { c })
        .collect()
}

/// The metric lines of `batch`.
pub fn lines(batch: &[Arc<Interval>]) -> Vec<String> {
    let mut out = Vec::new();
    for i in batch {
        let cycle = i.cycle.unwrap_or(0);
        for p in &i.points {
            let tags = format!(
                "|#run:{},test:{},cycle:{cycle},step:{},node:{}",
                clean(&i.run),
                clean(&i.test),
                clean(&p.step),
                clean(&p.node)
            );
            let mut add = |name: &str, value: String, kind: &str| {
                out.push(format!("bench.{name}:{value}|{kind}{tags}"));
            };
            add("requests", p.requests.to_string(), "c");
            add("failures", p.failures.to_string(), "c");
            add("errors", p.errors.to_string(), "c");
            if let Some(b) = p.bytes {
                add("bytes", b.to_string(), "c");
            }
            for (name, v) in [
                ("p50_ms", p.p50_ms),
                ("p95_ms", p.p95_ms),
                ("p99_ms", p.p99_ms),
            ] {
                if let Some(v) = v {
                    add(name, format!("{v:.3}"), "g");
                }
            }
            if let Some(u) = p.users {
                add("users", u.to_string(), "g");
            }
        }
    }
    out
}

/// The lines packed into datagrams of at most [`DATAGRAM`] bytes.
fn datagrams(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for l in lines {
        if !cur.is_empty() && cur.len() + 1 + l.len() > DATAGRAM {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push('\n');
        }
        let _ = write!(cur, "{l}");
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// A StatsD daemon's address, through one connected UDP socket.
pub struct Statsd {
    socket: UdpSocket,
}

impl Statsd {
    /// A socket connected to `addr` (resolved once, now).
    pub async fn connect(addr: &str) -> Result<Statsd, String> {
        let target = tokio::net::lookup_host(addr)
            .await
            .map_err(|e| format!("cannot resolve: {e}"))?
            .next()
            .ok_or("no address")?;
        let local = if target.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
        socket.connect(target).await.map_err(|e| e.to_string())?;
        Ok(Statsd { socket })
    }

    async fn send_all(&self, batch: &[Arc<Interval>]) -> Result<(), String> {
        for d in datagrams(&lines(batch)) {
            // A refused port (ICMP from an earlier datagram) shows up here: nobody listens,
            // which for StatsD means the numbers are lost, not that they should pile up.
            if let Err(e) = self.socket.send(d.as_bytes()).await {
                if e.kind() != std::io::ErrorKind::ConnectionRefused {
                    return Err(e.to_string());
                }
            }
        }
        Ok(())
    }
}

impl Sink for Statsd {
    fn send<'a>(
        &'a mut self,
        batch: &'a [Arc<Interval>],
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(self.send_all(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::Point;

    #[test]
    fn metrics_carry_their_tags_and_pack_into_small_datagrams() {
        let i = Interval {
            unix_ms: 0,
            run: "a,b".into(),
            test: "t".into(),
            cycle: Some(1),
            points: vec![Point {
                node: "all".into(),
                step: "all".into(),
                requests: 7,
                users: Some(3),
                p99_ms: Some(2.0),
                ..Point::default()
            }],
        };
        let l = lines(&[Arc::new(i)]);
        assert_eq!(
            l[0],
            "bench.requests:7|c|#run:a_b,test:t,cycle:1,step:all,node:all"
        );
        assert!(l.iter().any(|x| x.starts_with("bench.p99_ms:2.000|g")));
        assert!(l.iter().any(|x| x.starts_with("bench.users:3|g")));
        let many: Vec<String> = (0..100).map(|_| l[0].clone()).collect();
        let d = datagrams(&many);
        assert!(d.len() > 1 && d.iter().all(|x| x.len() <= DATAGRAM));
        assert_eq!(d.iter().map(|x| x.lines().count()).sum::<usize>(), 100);
        assert!(check_address("127.0.0.1:8125").is_ok());
        assert!(check_address("8125").is_err());
    }
}
