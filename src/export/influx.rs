//! InfluxDB: each interval's points as line protocol (built and escaped by the
//! `influxdb-line-protocol` crate), POSTed to the 1.x `/write?db=` or 2.x `/api/v2/write`
//! endpoint, ms precision. One measurement, `bench`; tags `run`, `test`, `cycle`, `step`,
//! `node` (`all` for the cluster and for all steps); fields `requests`, `failures`,
//! `errors`, `bytes`, `users` (integers) and `p50_ms`, `p95_ms`, `p99_ms`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use influxdb_line_protocol::LineProtocolBuilder;

use super::{Interval, Sink};

/// The measurement every point is written to.
pub const MEASUREMENT: &str = "bench";

/// Checks an `--export influxdb=URL` value and adds `precision=ms`: an `http` URL whose path
/// is `/write` (1.x, with `db=`) or `/api/v2/write` (2.x, with `bucket=`).
pub fn write_url(value: &str) -> Result<url::Url, String> {
    let mut url = url::Url::parse(value).map_err(|e| format!("`{value}`: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!("`{value}`: only http:// is supported"));
    }
    let has = |key: &str| url.query_pairs().any(|(k, _)| k == key);
    match url.path() {
        "/write" if has("db") => {}
        "/api/v2/write" if has("bucket") => {}
        _ => {
            return Err(format!(
                "`{value}`: expected http://HOST:PORT/write?db=DB (InfluxDB 1.x) or \
                 http://HOST:PORT/api/v2/write?org=ORG&bucket=BUCKET (2.x)"
            ))
        }
    }
    if !has("precision") {
        url.query_pairs_mut().append_pair("precision", "ms");
    }
    Ok(url)
}

/// The line protocol of `batch`, one line per point.
pub fn lines(batch: &[Arc<Interval>]) -> Vec<u8> {
    let mut b = LineProtocolBuilder::new();
    for i in batch {
        let cycle = i.cycle.map_or_else(|| "0".to_string(), |c| c.to_string());
        for p in &i.points {
            let mut tagged = b.measurement(MEASUREMENT);
            let tags = [
                ("cycle", cycle.as_str()),
                ("node", &p.node),
                ("run", &i.run),
                ("step", &p.step),
                ("test", &i.test),
            ];
            // InfluxDB refuses an empty tag value (`run=`): such a tag is left out.
            for (key, value) in tags.into_iter().filter(|(_, v)| !v.is_empty()) {
                tagged = tagged.tag(key, value);
            }
            let mut l = tagged
                .field("requests", p.requests as i64)
                .field("failures", p.failures as i64)
                .field("errors", p.errors as i64);
            if let Some(bytes) = p.bytes {
                l = l.field("bytes", bytes as i64);
            }
            if let Some(users) = p.users {
                l = l.field("users", i64::from(users));
            }
            for (key, value) in [
                ("p50_ms", p.p50_ms),
                ("p95_ms", p.p95_ms),
                ("p99_ms", p.p99_ms),
            ] {
                if let Some(v) = value {
                    l = l.field(key, v);
                }
            }
            b = l.timestamp(i.unix_ms as i64).close_line();
        }
    }
    b.build()
}

/// An InfluxDB write endpoint.
pub struct Influx {
    url: url::Url,
    /// `Authorization: Token ...` for 2.x, from `INFLUX_TOKEN`.
    token: Option<String>,
}

impl Influx {
    pub fn new(url: url::Url) -> Influx {
        Influx {
            url,
            token: std::env::var("INFLUX_TOKEN").ok().filter(|t| !t.is_empty()),
        }
    }

    async fn post(&self, body: Vec<u8>) -> Result<(), String> {
        let host = self.url.host_str().unwrap_or("localhost");
        let port = self.url.port_or_known_default().unwrap_or(8086);
        let stream = tokio::net::TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let target = match self.url.query() {
            Some(q) => format!("{}?{q}", self.url.path()),
            None => self.url.path().to_string(),
        };
        let mut req = Request::post(target)
            .header("host", format!("{host}:{port}"))
            .header("content-type", "text/plain; charset=utf-8");
        if let Some(token) = &self.token {
            req = req.header("authorization", format!("Token {token}"));
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = resp.into_body().collect().await.map(|b| b.to_bytes());
        let text = body.map(|b| String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned());
        Err(format!("{status}: {}", text.unwrap_or_default()))
    }
}

impl Sink for Influx {
    fn send<'a>(
        &'a mut self,
        batch: &'a [Arc<Interval>],
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(self.post(lines(batch)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::Point;

    #[test]
    fn urls_of_both_versions_are_taken_and_others_refused() {
        let u = write_url("http://127.0.0.1:8086/write?db=bench").unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:8086/write?db=bench&precision=ms"
        );
        let u = write_url("http://h:8086/api/v2/write?org=o&bucket=b&precision=s").unwrap();
        assert_eq!(u.query(), Some("org=o&bucket=b&precision=s"));
        assert!(write_url("http://h:8086/write")
            .unwrap_err()
            .contains("db=DB"));
        assert!(write_url("https://h/write?db=x")
            .unwrap_err()
            .contains("http://"));
        assert!(write_url("h:8086").is_err());
    }

    #[test]
    fn tags_with_spaces_commas_and_equals_are_escaped() {
        let i = Interval {
            unix_ms: 1_700_000_000_000,
            run: "night run, v=2".into(),
            test: "shop".into(),
            cycle: Some(2),
            points: vec![Point {
                node: "all".into(),
                step: "log in".into(),
                requests: 5,
                p95_ms: Some(1.5),
                ..Point::default()
            }],
        };
        let mut i = Arc::new(i);
        let text = String::from_utf8(lines(&[i.clone()])).unwrap();
        assert_eq!(
            text,
            "bench,cycle=2,node=all,run=night\\ run\\,\\ v\\=2,step=log\\ in,test=shop \
             requests=5i,failures=0i,errors=0i,p95_ms=1.5 1700000000000\n"
        );
        // An empty tag value is left out, not written as `test=`.
        Arc::make_mut(&mut i).test = String::new();
        let text = String::from_utf8(lines(&[i])).unwrap();
        assert!(text.contains(",step=log\\ in requests=5i"), "{text}");
    }
}
