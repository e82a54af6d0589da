//! Latency percentiles and active users over time: in summary.json, drawn in the report (as a
//! real browser renders it) and overlaid by `--diff`.

use std::path::Path;

use benchmaster::report::{self, build_diff, write_report, ReportOptions};
use benchmaster::result::NodeResult;

use super::fixture::{CycleSpec, Fixture};
use super::{chromium, merged, run_dir, tempdir};

/// Two nodes, one 6-s cycle, two steps: each second 10 pages of `fast_us` and 1 of `slow_us`
/// per node (the fixture puts success i in second i % 6, at step i % 2: step 1 in the even
/// seconds, step 2 in the odd ones).
fn nodes(fast_us: u64, slow_us: u64) -> Vec<NodeResult> {
    let f = Fixture {
        steps: vec!["home".into(), "search".into()],
        ..Fixture::default()
    };
    (0..2)
        .map(|n| {
            let cycle = CycleSpec::new(5, 6.0).ok(60, fast_us).ok(6, slow_us);
            f.node(n, &format!("load{n}"), &[cycle])
        })
        .collect()
}

/// Per figure `id` of the page: the number of points of each line (plotters draws a data line
/// as one `<polyline stroke-width="2" points="x,y x,y …">`, axes and grid thinner), read in
/// headless Chromium.
fn lines_in_browser(page: &Path, ids: &[&str]) -> Vec<Vec<usize>> {
    let probe = r#"<script>
var out = [];
IDS.forEach(function (id) {
  var f = document.getElementById('chart-' + id);
  var counts = f ? Array.from(f.querySelectorAll('svg polyline[stroke-width="2"]')).map(function (p) {
    return p.getAttribute('points').trim().split(/\s+/).length;
  }) : ['missing'];
  out.push(counts.join(','));
});
var p = document.createElement('pre');
p.textContent = 'LINES' + 'POINTS ' + out.join(' ') + ' END';
document.body.appendChild(p);
</script></body>"#
        .replace("IDS", &format!("{ids:?}"));
    let html = std::fs::read_to_string(page).unwrap();
    let copy = page.with_file_name("probe-over-time.html");
    std::fs::write(&copy, html.replace("</body>", &probe)).unwrap();
    let (dom, log) = chromium(&["--dump-dom", &format!("file://{}", copy.display())]);
    let found = dom
        .split("LINESPOINTS ")
        .nth(1)
        .and_then(|s| s.split(" END").next())
        .unwrap_or_else(|| panic!("the probe did not run; chromium said:\n{log}"));
    found
        .split_whitespace()
        .map(|f| {
            f.split(',')
                .map(|n| n.parse().unwrap_or_else(|_| panic!("{f}")))
                .collect()
        })
        .collect()
}

#[test]
fn the_report_draws_latency_percentiles_and_users_over_time_a_point_per_interval() {
    let dir = tempdir();
    let opts = ReportOptions::default();
    let r = report::report_of(merged(nodes(2_000, 40_000)), &[], &opts);
    let t = &r.summary.over_time;
    assert_eq!((t.interval_s, t.pages.len(), t.users.len()), (1, 6, 6));
    for p in &t.pages {
        // 2 nodes × (10 fast + 1 slow): p50 the fast, p99 the slow (1 % precision).
        assert_eq!(p.pages, 22);
        assert!((p.p50_ms - 2.0).abs() < 0.02, "{p:?}");
        assert!((p.p99_ms - 40.0).abs() < 0.4, "{p:?}");
    }
    assert_eq!(t.users[0], (0, 10));
    assert_eq!((t.steps[0].points.len(), t.steps[1].points.len()), (3, 3));
    let written = write_report(&r, dir.path(), &opts).unwrap();
    let json = std::fs::read_to_string(&written.summary_json).unwrap();
    assert!(json.contains("\"over_time\""), "summary.json carries it");
    let ids = [
        "latency-over-time",
        "users-over-time",
        "step-1-over-time",
        "step-2-over-time",
    ];
    let lines = lines_in_browser(&written.index_html, &ids);
    assert_eq!(lines[0], [6, 6, 6], "p50, p95, p99 per interval");
    assert_eq!(lines[1], [6], "users per second");
    assert_eq!(lines[2], [3, 3, 3], "step 1's intervals");
    assert_eq!(lines[3], [3, 3, 3], "step 2's intervals");
}

#[test]
fn diff_overlays_both_runs_latency_and_users_over_time() {
    let root = tempdir();
    let base = run_dir(root.path(), "base", nodes(2_000, 40_000));
    let new = run_dir(root.path(), "new", nodes(3_000, 90_000));
    let out = root.path().join("diff");
    let (page, _) = build_diff(&base, &new, &out, &ReportOptions::default()).unwrap();
    let html = std::fs::read_to_string(page).unwrap();
    let figure = |id: &str| {
        let start = html
            .find(&format!("id=\"chart-{id}\""))
            .unwrap_or_else(|| panic!("no {id} in the diff"));
        let end = start + html[start..].find("</figure>").unwrap();
        html[start..end].to_string()
    };
    let lines = |svg: &str| {
        svg.split("<polyline")
            .skip(1)
            .filter(|p| p[..p.find('>').unwrap()].contains("stroke-width=\"2\""))
            .count()
    };
    let latency = figure("diff-latency-over-time");
    assert_eq!(lines(&latency), 6, "3 percentiles × 2 runs");
    assert!(latency.contains("base base: p95") && latency.contains("new new: p99"));
    let users = figure("diff-users-over-time");
    assert_eq!(lines(&users), 2);
}
