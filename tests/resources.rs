//! Page resources against Debian's nginx serving a static site with its own ETag and
//! Last-Modified (and `Cache-Control: max-age` on one script): nginx's access log is the
//! witness of what a user fetched on its first and second visit, over how many connections,
//! and the result XML and summary.json must count exactly that.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Command;

use benchmaster::result::read::read_file;
use benchmaster::result::write::write_file;
use benchmaster::result::{NodeResult, PageResources};

use crate::nginx::Nginx;
use crate::util::{bench_node, report, run, tempdir, write, LogServer, Server};

/// The page and what it names: a stylesheet, two scripts (one fresh for 10 minutes), an
/// image, a `srcset` (only its widest candidate is fetched), an icon, the proxied slow
/// answer (300 ms) and an image on another origin (fetched only with `resources = "all"`).
fn site(dir: &Path, other_origin: &str) {
    let site = dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    let page = format!(
        r#"<!doctype html><html><head><title>shop</title>
<link rel="stylesheet" href="app.css"><link rel="icon" href="/site/icon.png">
<script src="app.js"></script><script src="/site/fresh.js"></script>
</head><body><img src="logo.png">
<img src="hero-small.png" srcset="hero-480.png 480w, hero-960.png 960w">
<img src="/slow"><img src="{other_origin}/cross.png">
<script>document.write('<img src="/site/not-a-resource.png">')</script>
</body></html>"#
    );
    write(&site, "index.html", &page);
    write(
        &site,
        "broken.html",
        r#"<img src="logo.png"><img src="missing.png">"#,
    );
    write(
        &site,
        "cookie.html",
        r#"<link rel="stylesheet" href="moved.css"><img src="cookie.png">"#,
    );
    write(&site, "app.css", &"body { color: red }\n".repeat(50));
    write(&site, "app.js", &"console.log(1);\n".repeat(80));
    write(&site, "fresh.js", "var fresh = true;\n");
    for (name, size) in [
        ("logo.png", 700),
        ("icon.png", 90),
        ("hero-960.png", 3000),
        ("cookie.png", 10),
    ] {
        write(&site, name, &"p".repeat(size));
    }
}

/// nginx serving `dir/site/` (types for the page and its resources, `fresh.js` with
/// `max-age`, `moved.css` redirected to `app.css`, `cookie.png` setting the session cookie
/// nginx's `/need` wants) and logging every request of its server to `dir/res.log` with the protocol,
/// connection, status, body bytes and validators sent.
fn start_nginx(dir: &Path, upstream: &Server) -> Nginx {
    let d = dir.display();
    let http = "log_format res '$server_protocol|$connection|$request_uri|$status|\
                $body_bytes_sent|$http_if_none_match|$http_if_modified_since';";
    let server = format!(
        r#"types {{ text/html html; text/css css; application/javascript js; image/png png; }}
        access_log {d}/res.log res;
        location /site/ {{ root {d}; }}
        location = /site/fresh.js {{ root {d}; add_header Cache-Control "max-age=600"; }}
        location = /site/moved.css {{ return 301 /site/app.css; }}
        location = /site/cookie.png {{ root {d}; add_header Set-Cookie "session=res1; Path=/"; }}"#
    );
    Nginx::start_full(&upstream.target.addr.to_string(), http, &server)
}

/// One line of `res.log`.
#[derive(Debug)]
struct Line {
    protocol: String,
    connection: u64,
    uri: String,
    status: u16,
    bytes: u64,
    if_none_match: bool,
    if_modified_since: bool,
}

fn log(dir: &Path) -> Vec<Line> {
    let text = std::fs::read_to_string(dir.join("res.log")).unwrap_or_default();
    std::fs::write(dir.join("res.log"), "").unwrap();
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            assert_eq!(f.len(), 7, "{l}");
            Line {
                protocol: f[0].into(),
                connection: f[1].parse().unwrap(),
                uri: f[2].into(),
                status: f[3].parse().unwrap(),
                bytes: f[4].parse().unwrap(),
                if_none_match: f[5] != "-",
                if_modified_since: f[6] != "-",
            }
        })
        .collect()
}

/// Each user visits the page twice (0.2 s apart) and only once executes the test (its pause
/// after it outlasts the window), so that the node's counts are all inside the window.
fn two_visits(url: &str, users: u32, test_keys: &str, bench_keys: &str) -> String {
    format!(
        r#"
[test]
name = "resources"
url = "{url}"
{test_keys}

[bench]
cycles = [{users}]
duration = 3
startup_delay = 0
sleep_time_min = 0.2
sleep_time = 60
timeout = 5
resources = true
{bench_keys}

[[step]]
name = "first"
path = "/site/index.html"

[[step]]
name = "second"
path = "/site/index.html"
"#
    )
}

/// Runs `text` with bench-node, which must succeed: its result, and its report's summary.
fn run_test(dir: &Path, text: &str) -> (NodeResult, serde_json::Value) {
    let test = write(dir, "t.toml", text);
    let out = dir.join("r.xml");
    let o = run(bench_node().arg("run").arg(&test).arg("-o").arg(&out));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, summary) = report(&out, &dir.join("report"));
    (read_file(&out).unwrap(), summary)
}

fn step_resources(r: &NodeResult, step: usize) -> PageResources {
    let mut sum = PageResources::default();
    for c in &r.cycles {
        sum.add(&c.steps[step].resources);
    }
    sum
}

fn skip_without_nginx() -> bool {
    if Nginx::available() {
        return false;
    }
    // .ci/run installs it: in CI a missing server is a failure, not a skip.
    assert!(std::env::var_os("CI").is_none(), "no nginx-light");
    eprintln!("skipped: no nginx-light");
    true
}

/// The site in a temp dir served by nginx (its access log beside it), the other origin the
/// page links to, and the upstream nginx stands in front of; `None` (skipped) without nginx.
struct Served {
    dir: tempfile::TempDir,
    other: LogServer,
    _upstream: Server,
    nginx: Nginx,
}

fn serve() -> Option<Served> {
    if skip_without_nginx() {
        return None;
    }
    let dir = tempdir();
    let other = LogServer::start();
    site(dir.path(), &other.url());
    let upstream = Server::start();
    let nginx = start_nginx(dir.path(), &upstream);
    Some(Served {
        dir,
        other,
        _upstream: upstream,
        nginx,
    })
}

#[test]
fn resources_are_fetched_once_per_user_then_revalidated_or_taken_fresh_from_the_cache() {
    let Some(served) = serve() else { return };
    let (dir, other, nginx) = (&served.dir, &served.other, &served.nginx);
    let users = 3u64;
    let (r, summary) = run_test(
        dir.path(),
        &two_visits(&nginx.http1_url(), users as u32, "", ""),
    );
    let lines = log(dir.path());
    let count = |uri: &str| lines.iter().filter(|l| l.uri == uri).count() as u64;
    // The page each visit; each resource once per user on the first visit, again on the
    // second (revalidated) unless still fresh; the widest srcset candidate only; nothing
    // written by a script or on another origin.
    assert_eq!(count("/site/index.html"), 2 * users, "{lines:#?}");
    for uri in [
        "/site/app.css",
        "/site/app.js",
        "/site/logo.png",
        "/site/icon.png",
        "/site/hero-960.png",
    ] {
        assert_eq!(count(uri), 2 * users, "{uri}: {lines:#?}");
        let (first, second): (Vec<&Line>, Vec<&Line>) = lines
            .iter()
            .filter(|l| l.uri == uri)
            .partition(|l| !l.if_none_match);
        assert!(first
            .iter()
            .all(|l| l.status == 200 && !l.if_modified_since));
        assert!(
            second
                .iter()
                .all(|l| l.status == 304 && l.if_modified_since),
            "{uri}: {second:?}"
        );
        assert_eq!(second.len() as u64, users, "{uri}");
    }
    assert_eq!(count("/site/fresh.js"), users, "max-age: fetched once");
    assert_eq!(
        count("/slow"),
        2 * users,
        "no validators: fetched each visit"
    );
    for uri in [
        "/site/hero-small.png",
        "/site/hero-480.png",
        "/site/not-a-resource.png",
    ] {
        assert_eq!(count(uri), 0, "{uri}");
    }
    assert!(other.requests().is_empty(), "{:?}", other.requests());

    // Over HTTP/1.1 a user opens 6 resource connections besides its own, and keeps them.
    let connections: HashSet<u64> = lines.iter().map(|l| l.connection).collect();
    assert_eq!(connections.len() as u64, users * 7, "{lines:#?}");

    // The result counts exactly what nginx saw, per visit.
    let resource_lines: Vec<&Line> = lines
        .iter()
        .filter(|l| l.uri != "/site/index.html")
        .collect();
    let (first, second) = (step_resources(&r, 0), step_resources(&r, 1));
    assert_eq!(
        first.requests + second.requests,
        resource_lines.len() as u64
    );
    assert_eq!(first.requests, 7 * users);
    assert_eq!((first.revalidated, first.cached), (0, 0));
    assert_eq!(second.requests, 6 * users);
    assert_eq!(second.revalidated, 5 * users);
    assert_eq!(second.cached, users);
    let logged_bytes: u64 = resource_lines.iter().map(|l| l.bytes).sum();
    assert_eq!(first.bytes + second.bytes, logged_bytes);
    let c = &r.cycles[0];
    assert_eq!(c.requests.total(), lines.len() as u64);
    assert_eq!(c.outside.requests, 0);
    assert_eq!(
        (c.pages.success, c.pages.failure, c.pages.error),
        (2 * users, 0, 0)
    );
    // The page's latency is its HTML and its resources: at least the slow one's 300 ms.
    for step in &c.steps {
        assert!(step.latency.min() >= 300_000, "{} µs", step.latency.min());
    }
    // summary.json says the same per step.
    let steps = summary["steps"].as_array().unwrap();
    let json = |i: usize, k: &str| steps[i]["resources"][k].as_u64().unwrap();
    assert_eq!(json(0, "requests"), first.requests);
    assert_eq!(json(0, "bytes"), first.bytes);
    assert_eq!(json(1, "revalidated"), second.revalidated);
    assert_eq!(json(1, "cached"), second.cached);
    assert_eq!(
        summary["cycles"][0]["requests"]["total"].as_u64().unwrap(),
        lines.len() as u64
    );
    assert_eq!(
        summary["cycles"][0]["pages"]["total"].as_u64().unwrap(),
        2 * users
    );
    merged_as_two_nodes(&r, dir.path());
}

/// `r` and a copy of it merged as two nodes: the resources add up exactly, in summary.json
/// and in the report's step tables.
fn merged_as_two_nodes(r: &NodeResult, dir: &Path) {
    let mut other = r.clone();
    other.node.number = 1;
    other.node.host = "second".into();
    let (a, b) = (dir.join("a.xml"), dir.join("b.xml"));
    write_file(r, &a).unwrap();
    write_file(&other, &b).unwrap();
    let out = dir.join("merged");
    let o = run(Command::new(env!("CARGO_BIN_EXE_bench-report"))
        .arg("-o")
        .arg(&out)
        .arg(&a)
        .arg(&b));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    for (i, step) in summary["steps"].as_array().unwrap().iter().enumerate() {
        let one = step_resources(r, i);
        let two: PageResources = serde_json::from_value(step["resources"].clone()).unwrap();
        let twice = PageResources {
            requests: 2 * one.requests,
            bytes: 2 * one.bytes,
            revalidated: 2 * one.revalidated,
            cached: 2 * one.cached,
        };
        assert_eq!(two, twice, "step {i}");
    }
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        html.contains("<th>Resource KiB</th>"),
        "no resources column"
    );
    let second = step_resources(r, 1);
    let row = format!(
        "<td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td>",
        2 * second.requests,
        (2 * second.bytes) as f64 / 1024.0,
        2 * second.revalidated,
        2 * second.cached
    );
    assert!(html.contains(&row), "{row} not in the report");

    // Per page the same in both, side by side in --diff: 7 requests on the first visit, 6 on
    // the second, when 6 of 7 resources came from the cache (5 revalidated, 1 fresh).
    let diff = dir.join("diff");
    let o = run(Command::new(env!("CARGO_BIN_EXE_bench-report"))
        .arg("--diff")
        .arg(dir.join("report"))
        .arg(&out)
        .arg("-o")
        .arg(&diff));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let html = std::fs::read_to_string(diff.join("index.html")).unwrap();
    let first = "<td class=\"l\">first</td><td>7.00</td>";
    let second = "<td class=\"l\">second</td><td>6.00</td>";
    assert!(html.contains(first) && html.contains(second), "{html}");
    assert_eq!(html.matches("<td>85.7</td>").count(), 2, "{html}");
}

#[test]
fn over_http2_and_tls_resources_are_streams_on_the_users_one_connection() {
    let Some(served) = serve() else { return };
    let (dir, nginx) = (&served.dir, &served.nginx);
    let users = 2u64;
    // h2c with prior knowledge, and TLS where `auto` takes the h2 that ALPN offers.
    for (url, http) in [
        (nginx.h2c_url(), "http = \"2\""),
        (nginx.tls_url(), "http = \"auto\""),
    ] {
        let text = two_visits(&url, users as u32, http, "insecure = true");
        let (r, _) = run_test(dir.path(), &text);
        let lines = log(dir.path());
        assert!(
            lines.iter().all(|l| l.protocol == "HTTP/2.0"),
            "{url}: {lines:#?}"
        );
        let mut per_connection: HashMap<u64, u64> = HashMap::new();
        for l in &lines {
            *per_connection.entry(l.connection).or_default() += 1;
        }
        assert_eq!(
            per_connection.len() as u64,
            users,
            "{url}: {per_connection:?}"
        );
        // Per user: 2 pages, 7 resources, then 6 of them again (fresh.js from the cache).
        assert!(per_connection.values().all(|n| *n == 2 + 7 + 6), "{url}");
        let revalidated = lines.iter().filter(|l| l.status == 304).count() as u64;
        assert_eq!(step_resources(&r, 1).revalidated, revalidated, "{url}");
        assert_eq!(revalidated, 5 * users, "{url}");
        assert_eq!(step_resources(&r, 1).cached, users, "{url}");
    }
}

#[test]
fn a_missing_resource_fails_its_page_and_all_origins_are_fetched_when_asked() {
    let Some(served) = serve() else { return };
    let (dir, other, nginx) = (&served.dir, &served.other, &served.nginx);
    let text = format!(
        r#"
[test]
name = "broken"
url = "{}"

[bench]
cycles = [1]
duration = 1
startup_delay = 0
sleep_time = 60
resource_connections = 2

[[step]]
name = "page"
path = "/site/index.html"
resources = "all"

[[step]]
name = "cookie"
path = "/site/cookie.html"
resources = true

[[step]]
name = "need"
path = "/need"
contains = "hello res1"

[[step]]
name = "broken"
path = "/site/broken.html"
resources = true
"#,
        nginx.http1_url()
    );
    let (r, summary) = run_test(dir.path(), &text);
    let lines = log(dir.path());
    // The other origin's image was fetched; the first page's resources came over two
    // connections besides the user's (its lines are all logged before the second page's).
    assert_eq!(other.requests(), ["/cross.png"]);
    let second_page = lines
        .iter()
        .position(|l| l.uri == "/site/cookie.html")
        .unwrap();
    let connections: HashSet<u64> = lines[..second_page].iter().map(|l| l.connection).collect();
    assert_eq!(connections.len(), 3, "{lines:#?}");
    // The 404 is a failed request and fails its page, in the page's error group.
    let missing = lines.iter().filter(|l| l.status == 404).count() as u64;
    assert_eq!(missing, 1, "{lines:#?}");
    let c = &r.cycles[0];
    let outcomes: Vec<(u64, u64)> = c.steps.iter().map(|s| (s.success, s.failure)).collect();
    assert_eq!(outcomes, [(1, 0), (1, 0), (1, 0), (0, 1)], "{:?}", r.errors);
    // The stylesheet's redirect was followed (two requests of that resource), and the cookie
    // an image set went with the user's next page (its check passed).
    let moved = lines
        .iter()
        .position(|l| l.uri == "/site/moved.css")
        .unwrap();
    assert_eq!(lines[moved].status, 301);
    assert!(lines[moved..]
        .iter()
        .any(|l| l.uri == "/site/app.css" && l.status == 200));
    assert_eq!(step_resources(&r, 1).requests, 3);
    assert_eq!(c.requests.failure, 1);
    assert_eq!(c.tests.failure, 1);
    assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
    let e = &r.errors[0];
    assert_eq!(
        (e.step.as_str(), e.detail.as_str(), e.count),
        ("broken", "resource HTTP 404", 1)
    );
    assert!(
        e.samples[0].url.ends_with("/site/missing.png"),
        "{:?}",
        e.samples
    );
    assert_eq!(summary["errors"][0]["detail"], "resource HTTP 404");
    // The broken page's resources: logo.png, kept since the first page, revalidated, and the
    // missing one.
    assert_eq!(step_resources(&r, 3).requests, 2);
    assert_eq!(step_resources(&r, 3).revalidated, 1);
    // Every request in nginx's log, and one to the other origin.
    assert_eq!(c.requests.total(), lines.len() as u64 + 1);
}
