//! Tests of the result XML writer and reader together: round trip, damaged and hostile input.

use std::io::Cursor;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::histogram::check_counts;
use super::*;
use crate::result::write::{encode_histogram, to_writer, write_file, ResultFile};
use hdrhistogram::serialization::Serializer as _;

fn counts(rng: &mut SmallRng, n: u64, base_us: u64) -> Counts {
    let mut c = Counts {
        success: n,
        failure: n / 10,
        error: n / 100,
        bytes: n * 1234,
        decoded_bytes: n * 4321,
        messages: n / 3,
        resources: PageResources {
            requests: n * 3,
            bytes: n * 999,
            revalidated: n,
            cached: n / 2,
        },
        latency: new_histogram(),
    };
    for _ in 0..n {
        c.latency
            .record(base_us + rng.gen_range(0..base_us * 4))
            .unwrap();
    }
    c
}

/// A result with every field filled, hostile text included.
/// Intervals 0, 1 and 5 of 2 s; interval 1 has no page of its second step.
fn latency(rng: &mut SmallRng) -> LatencySeries {
    let mut sum = LatencySum::new(2, 2);
    for second in [0, 1, 2, 3, 10] {
        for step in 0..2 {
            if (second == 2 || second == 3) && step == 1 {
                continue;
            }
            let mut h = crate::result::latency::new_interval_histogram();
            for _ in 0..50 {
                h.record(rng.gen_range(100..90_000)).unwrap();
            }
            sum.add_second(second, step, &h);
        }
    }
    sum.finish()
}

fn rich() -> NodeResult {
    let mut rng = SmallRng::seed_from_u64(7);
    let steps = vec![
        StepInfo {
            name: "home <&>".into(),
            method: "GET".into(),
            target: "/?a=1&b=\"2\"".into(),
            protocol: "HTTP/2".into(),
        },
        StepInfo {
            name: "login".into(),
            method: "POST".into(),
            target: "https://example.test/login".into(),
            protocol: "WebSocket".into(),
        },
    ];
    let cycles = (0..3)
        .map(|i| CycleResult {
            index: i,
            users: 10 * (i + 1),
            window_start_ms: 1000 + 12_000 * u64::from(i),
            window_s: 10.0,
            tests: counts(&mut rng, 500, 20_000),
            pages: counts(&mut rng, 1000, 5_000),
            requests: counts(&mut rng, 1100, 4_000),
            steps: vec![counts(&mut rng, 500, 3_000), Counts::default()],
            scenarios: vec![counts(&mut rng, 300, 9_000), counts(&mut rng, 200, 2_000)],
            outside: Outside {
                tests: 3,
                pages: 7,
                requests: 9,
            },
            dropped: u64::from(i),
        })
        .collect();
    NodeResult {
        format_version: FORMAT_VERSION,
        tool_version: crate::VERSION.into(),
        started_unix_ms: 1_700_000_000_123,
        began_unix_ms: Some(1_700_000_000_131),
        finished_unix_ms: 1_700_000_040_456,
        interrupted: true,
        node: NodeInfo {
            number: 2,
            count: 4,
            host: "node-3.example".into(),
            run: "nightly 'quoted'".into(),
            start_delay_ms: 12.625,
        },
        test: TestInfo {
            name: "shop".into(),
            description: "  Line one\n\tline <two> & \"three\"  ".into(),
            url: "http://127.0.0.1:8099/".into(),
        },
        config: BenchConfig {
            cycles: vec![10, 20, 30],
            duration_s: 10.0,
            startup_delay_s: 0.01,
            sleep_time_min_s: 0.0,
            sleep_time_max_s: 0.5,
            sleep_time_s: 1.0 / 3.0,
            cycle_time_s: 2.0,
            apdex_t_s: 1.5,
            ok_codes: vec![200, 301, 302],
            timeout_s: 30.0,
            model: ModelKind::Closed,
            thresholds: vec![crate::result::Threshold {
                metric: crate::result::threshold::Metric::P999,
                step: Some("a <step> & \"more\"".into()),
                scope: crate::result::threshold::Scope::Last,
                bound: crate::result::threshold::Bound::Min,
                limit: 0.125,
                abort: true,
                abort_after_s: 2.5,
            }],
            streams: 4,
        },
        steps,
        scenarios: vec![
            ScenarioInfo {
                name: "browse <&>".into(),
                weight: 8,
                first_step: 0,
                steps: 1,
            },
            ScenarioInfo {
                name: "buy".into(),
                weight: 2,
                first_step: 1,
                steps: 1,
            },
        ],
        cycles,
        data: vec![
            DataUsage {
                name: "account".into(),
                file: "data/accounts <1>.csv".into(),
                order: DataOrder::Unique,
                on_end: OnEnd::Stop,
                rows: 250,
                used: 250,
                exhausted_ms: Some(1234),
            },
            DataUsage {
                name: "item".into(),
                file: "items.jsonl".into(),
                order: DataOrder::Random,
                on_end: OnEnd::Wrap,
                rows: 9,
                used: 4000,
                exhausted_ms: None,
            },
        ],
        series: (0..40)
            .map(|s| SecondSample {
                second: s,
                cycle: (s % 12 < 10).then_some(s / 12),
                users: s,
                tests_ok: u64::from(s) * 3,
                pages_ok: u64::from(s) * 6,
                requests: u64::from(s) * 7,
                failures: 1,
                errors: u64::from(s % 2),
            })
            .collect(),
        latency: latency(&mut rng),
        errors: vec![
            ErrorGroup {
                step: "home <&>".into(),
                kind: ErrorKind::Status,
                detail: "HTTP 500".into(),
                count: 42,
                samples: vec![
                    ErrorSample {
                        url: "http://127.0.0.1:8099/?a=1&b=2".into(),
                        status: Some(500),
                        at_ms: 1500,
                        body: "<script>alert(\"x\") & 'y'</script>\n\tüñï €".into(),
                    },
                    ErrorSample {
                        url: "http://127.0.0.1:8099/".into(),
                        status: None,
                        at_ms: 1600,
                        body: String::new(),
                    },
                ],
            },
            ErrorGroup {
                step: "login".into(),
                kind: ErrorKind::Connect,
                detail: "connection refused".into(),
                count: 1,
                samples: vec![],
            },
        ],
        resources: vec![
            HostResources {
                host: "node-3.example".into(),
                role: HostRole::Node,
                samples: (0..5)
                    .map(|i| ResourceSample {
                        at_ms: 1000 * i,
                        cpu_pct: 12.5 + i as f64 / 7.0,
                        load1: 0.52,
                        mem_used_kib: 1_000_000 + i,
                        mem_total_kib: 16_000_000,
                        net_rx_bps: 12345.678,
                        net_tx_bps: 0.1,
                    })
                    .collect(),
            },
            HostResources {
                host: "db".into(),
                role: HostRole::Monitor,
                samples: vec![],
            },
        ],
    }
}

fn to_bytes(r: &NodeResult) -> Vec<u8> {
    let mut out = Vec::new();
    to_writer(r, &mut out).unwrap();
    out
}

fn read(bytes: &[u8]) -> Result<NodeResult, ReadError> {
    from_reader(Cursor::new(bytes), "t.xml")
}

fn read_str(s: &str) -> Result<NodeResult, ReadError> {
    read(s.as_bytes())
}

#[test]
fn round_trip_equals_original() {
    let r = rich();
    let back = read(&to_bytes(&r)).unwrap();
    assert_eq!(back, r);
    // The histograms really came back: same percentiles.
    let (a, b) = (
        &r.cycles[1].requests.latency,
        &back.cycles[1].requests.latency,
    );
    assert!(!a.is_empty());
    assert_eq!(a.value_at_quantile(0.99), b.value_at_quantile(0.99));
}

#[test]
fn control_characters_are_dropped_and_the_rest_kept() {
    let mut r = rich();
    r.errors[0].samples[0].body = "a\u{0}b\u{1b}[31mc\u{7}\r\n<script>&\"'\u{fffe}".into();
    r.errors[0].detail = "bad\u{8}detail".into();
    r.test.name = "n\u{1}".into();
    let bytes = to_bytes(&r);
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(!text.contains(['\u{0}', '\u{1}', '\u{7}', '\u{8}', '\u{1b}', '\u{fffe}']));
    assert!(
        text.contains("&lt;script&gt;&amp;"),
        "quick-xml escapes the text"
    );
    let back = read(&bytes).unwrap();
    assert_eq!(back.errors[0].samples[0].body, "ab[31mc\r\n<script>&\"'");
    assert_eq!(back.errors[0].detail, "baddetail");
    assert_eq!(back.test.name, "n");
}

#[test]
fn non_finite_numbers_are_written_as_zero() {
    let mut r = rich();
    r.resources[0].samples[0].cpu_pct = f64::NAN;
    r.config.duration_s = f64::INFINITY;
    let back = read(&to_bytes(&r)).unwrap();
    assert_eq!(back.resources[0].samples[0].cpu_pct, 0.0);
    assert_eq!(back.config.duration_s, 0.0);
}

#[test]
fn truncated_anywhere_is_an_error_with_a_position() {
    let bytes = to_bytes(&rich());
    let end = bytes.len() - "</benchmaster-result>\n".len();
    let cuts = (0..end).step_by(13).chain(end.saturating_sub(300)..end);
    let mut truncated = 0;
    for cut in cuts {
        let e = read(&bytes[..cut]).expect_err("a cut file must not read");
        if cut > 0 {
            let at = e.location().expect("a position");
            assert!(at.byte <= cut as u64 && at.line.is_some(), "{e}");
        }
        if matches!(e, ReadError::Truncated { .. }) {
            truncated += 1;
        }
    }
    assert!(truncated > 0);
    let e = read(&bytes[..end]).unwrap_err();
    assert!(
        e.to_string().contains("ends before </benchmaster-result>"),
        "{e}"
    );
    assert!(e.to_string().starts_with("t.xml: line "), "{e}");
}

#[test]
fn unknown_format_version_is_named() {
    let text =
        String::from_utf8(to_bytes(&rich()))
            .unwrap()
            .replacen("format=\"1\"", "format=\"7\"", 1);
    let e = read_str(&text).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "t.xml: line 2 (byte 39): format 7 is not supported by this bench-report {}, \
             which reads format 1",
            crate::VERSION
        )
    );
}

#[test]
fn doctype_and_entities_are_refused() {
    let xxe =
        "<?xml version=\"1.0\"?>\n<!DOCTYPE r [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\n\
               <benchmaster-result format=\"1\">&xxe;</benchmaster-result>";
    assert!(matches!(read_str(xxe), Err(ReadError::Doctype { .. })));
    let text = String::from_utf8(to_bytes(&rich())).unwrap();
    let with_entity = text.replacen("Line one", "&xxe;", 1);
    let e = read_str(&with_entity).unwrap_err();
    assert!(matches!(e, ReadError::Malformed { .. }), "{e}");
    let in_attr = text.replacen("name=\"shop\"", "name=\"&lol;\"", 1);
    assert!(matches!(
        read_str(&in_attr),
        Err(ReadError::Malformed { .. })
    ));
    // Predefined entities and character references are fine.
    let refs = text.replacen("name=\"shop\"", "name=\"&#65;&#x42;&apos;\"", 1);
    assert_eq!(read_str(&refs).unwrap().test.name, "AB'");
}

#[test]
fn garbage_is_an_error() {
    for g in [
        "",
        "   ",
        "hello",
        "{\"json\": true}",
        "<a></a>",
        "<benchmaster-result>",
        "<benchmaster-result format=\"1\"/>",
        "<benchmaster-result format=\"1\" tool-version=\"x\" started-unix-ms=\"-1\"/>",
        "<benchmaster-result format=\"1\" format=\"1\"/>",
        "<benchmaster-result format='1'></other>",
        "<<<>>>",
        "<!-- unclosed",
        "<![CDATA[x",
        "\u{feff}<?xml version=\"1.0\"?>",
    ] {
        let e = read_str(g).expect_err(g);
        assert!(!e.to_string().is_empty());
    }
    let mut rng = SmallRng::seed_from_u64(1);
    for _ in 0..200 {
        let len = rng.gen_range(0..300);
        let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        assert!(read(&bytes).is_err());
    }
}

#[test]
fn damaged_documents_never_panic() {
    let bytes = to_bytes(&rich());
    let mut rng = SmallRng::seed_from_u64(2);
    let specials = b"<>&\"'/=!?[]#;x0 \n";
    for _ in 0..400 {
        let mut b = bytes.clone();
        for _ in 0..rng.gen_range(1..4) {
            let i = rng.gen_range(0..b.len());
            match rng.gen_range(0..3) {
                0 => b[i] = specials[rng.gen_range(0..specials.len())],
                1 => {
                    b.remove(i);
                }
                _ => b.insert(i, rng.gen()),
            }
        }
        let _ = read(&b);
    }
}

#[test]
fn unknown_elements_and_attributes_are_skipped() {
    let text = String::from_utf8(to_bytes(&rich())).unwrap();
    let text = text
        .replacen(
            "<cycles>",
            "<future a=\"1\"><deep><deeper/></deep>text</future><cycles>",
            1,
        )
        .replacen("<outside ", "<newthing x=\"y\"/><outside extra=\"1\" ", 1)
        .replacen("<node ", "<!-- a comment --><node color=\"blue\" ", 1);
    assert_eq!(read_str(&text).unwrap(), rich());
}

#[test]
fn bad_attributes_name_element_attribute_and_line() {
    let text = String::from_utf8(to_bytes(&rich())).unwrap();
    let e = read_str(&text.replacen(" users=\"10\"", " users=\"ten\"", 1)).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("t.xml: line "), "{msg}");
    assert!(
        msg.contains("<cycle> attribute `users` = \"ten\": expected a whole number"),
        "{msg}"
    );
    let e = read_str(&text.replacen(" count=\"4\"", "", 1)).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("<node> lacks the attribute `count`"),
        "{e}"
    );
    let e = read_str(&text.replacen("cpu-pct=\"12.5\"", "cpu-pct=\"NaN\"", 1)).unwrap_err();
    assert!(e.to_string().contains("finite"), "{e}");
    let e = read_str(&text.replacen("<step index=\"1\"", "<step index=\"5\"", 1)).unwrap_err();
    assert!(e.to_string().contains("out of order"), "{e}");
}

/// Error kinds and load models are closed sets: a word outside them is a read error at its
/// place, naming the words allowed; every word the writer spells reads back.
#[test]
fn unknown_error_kinds_and_models_are_named_with_their_place() {
    let mut r = rich();
    for &kind in ErrorKind::ALL {
        r.errors[0].kind = kind;
        for &model in ModelKind::ALL {
            r.config.model = model;
            assert_eq!(read(&to_bytes(&r)).unwrap(), r);
        }
    }
    let text = String::from_utf8(to_bytes(&rich())).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("kind=\"status\""))
        .unwrap()
        + 1;
    let e = read_str(&text.replacen("kind=\"status\"", "kind=\"statuss\"", 1)).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("t.xml: line {line} ")), "{msg}");
    assert!(
        msg.contains("<group> attribute `kind` = \"statuss\": one of: status check dns"),
        "{msg}"
    );
    let e = read_str(&text.replacen("role=\"node\"", "role=\"nod\"", 1)).unwrap_err();
    assert!(e.to_string().contains("one of: node monitor"), "{e}");
    let e = read_str(&text.replacen("model=\"closed\"", "model=\"open rate\"", 1)).unwrap_err();
    assert!(
        e.to_string()
            .contains("<config> attribute `model` = \"open rate\": one of: closed open"),
        "{e}"
    );
}

#[test]
fn latency_intervals_round_trip_and_bad_ones_are_named() {
    let r = rich();
    assert_eq!(r.latency.intervals.len(), 3);
    assert!(r.latency.intervals[1].steps[1].is_empty());
    let text = String::from_utf8(to_bytes(&r)).unwrap();
    assert!(text.contains("<latency interval-s=\"2\">"), "{text}");
    assert_eq!(read_str(&text).unwrap().latency, r.latency);
    // An older file (no <latency>) reads with an empty series.
    let start = text.find("<latency").unwrap();
    let end = text.find("</latency>").unwrap() + "</latency>".len();
    let old = format!("{}{}", &text[..start], &text[end..]);
    assert_eq!(read_str(&old).unwrap().latency, LatencySeries::default());
    let bad = |from: &str, to: &str| read_str(&text.replacen(from, to, 1)).unwrap_err();
    let e = bad("<step index=\"1\">", "<step index=\"7\">");
    assert!(e.to_string().contains("the test has 2 steps"), "{e}");
    let e = bad("<interval index=\"1\">", "<interval index=\"0\">");
    assert!(e.to_string().contains("must increase"), "{e}");
    let e = bad("interval-s=\"2\"", "interval-s=\"0\"");
    assert!(e.to_string().contains("at least 1"), "{e}");
    let hist_start = text[start..].find("<step index=\"0\">").unwrap() + start + 16;
    let e = read_str(&format!(
        "{}AAAA{}",
        &text[..hist_start],
        &text[hist_start + 4..]
    ))
    .unwrap_err();
    assert!(matches!(e, ReadError::BadHistogram { .. }), "{e}");
}

#[test]
fn bad_histograms_are_errors() {
    let text = String::from_utf8(to_bytes(&rich())).unwrap();
    let start = text.find("<histogram>").unwrap() + "<histogram>".len();
    let end = start + text[start..].find("</histogram>").unwrap();
    let with = |h: &str| format!("{}{h}{}", &text[..start], &text[end..]);
    for bad in ["!!!", "AAAA", &text[start..end - 8], "HIWTFA=="] {
        let e = read_str(&with(bad)).unwrap_err();
        assert!(matches!(e, ReadError::BadHistogram { .. }), "{bad}: {e}");
    }
    // Other bounds would break exact merging: refused.
    let mut other = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1000, 2).unwrap();
    other.record(5).unwrap();
    let mut bytes = Vec::new();
    hdrhistogram::serialization::V2DeflateSerializer::new()
        .serialize(&other, &mut bytes)
        .unwrap();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let e = read_str(&with(&b64)).unwrap_err();
    assert!(e.to_string().contains("bounds"), "{e}");
    // ... which is why the writer converts such a histogram to the format's bounds.
    let back = decode_histogram(&encode_histogram(&other).unwrap()).unwrap();
    assert_eq!((back.len(), back.max()), (1, 5));
    let mut wide = hdrhistogram::Histogram::<u64>::new(2).unwrap();
    wide.record(u64::MAX / 4).unwrap();
    let back = decode_histogram(&encode_histogram(&wide).unwrap()).unwrap();
    assert_eq!(back.len(), 1);
    assert!(back.max() >= HISTOGRAM_MAX_US);
    // A count hdrhistogram could not negate.
    assert!(check_counts(&[0xff; 9]).is_err());
    assert!(check_counts(&[0x80]).is_err());
    assert!(check_counts(&[0x02, 0x01, 0x81, 0x01]).is_ok());
}

#[test]
fn write_file_replaces_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node0.xml");
    let mut r = rich();
    write_file(&r, &path).unwrap();
    r.node.number = 3;
    write_file(&r, &path).unwrap();
    assert_eq!(read_file(&path).unwrap(), r);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["node0.xml"]);
    let e = write_file(&r, &dir.path().join("missing/node0.xml")).unwrap_err();
    assert!(e.to_string().contains("missing/node0.xml"), "{e}");
    let e = read_file(&dir.path().join("nope.xml")).unwrap_err();
    assert!(e.to_string().contains("nope.xml: cannot read"), "{e}");
}

#[test]
fn a_result_file_is_made_before_and_written_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node0.xml");
    let names = || {
        let mut n: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        n.sort();
        n
    };
    // Made: only the temporary file is there; dropped unwritten (a run that failed before
    // its end), it goes.
    let file = ResultFile::create(&path).unwrap();
    assert_eq!(names(), ["node0.xml.tmp"]);
    drop(file);
    assert!(names().is_empty());
    // Written: the result takes the path, and nothing else is left.
    let r = rich();
    let file = ResultFile::create(&path).unwrap();
    file.write(&r).unwrap();
    assert_eq!(names(), ["node0.xml"]);
    assert_eq!(read_file(&path).unwrap(), r);
    // Its place gone before the end: the error names the file, and no temporary file stays.
    let gone = dir.path().join("gone");
    std::fs::create_dir(&gone).unwrap();
    let file = ResultFile::create(&gone.join("node1.xml")).unwrap();
    std::fs::remove_file(gone.join("node1.xml.tmp")).unwrap();
    std::fs::remove_dir(&gone).unwrap();
    let e = file.write(&r).unwrap_err();
    assert!(e.to_string().contains("gone/node1.xml"), "{e}");
    assert_eq!(names(), ["node0.xml"]);
}

#[test]
fn size_is_bounded_with_millions_of_requests() {
    let mut rng = SmallRng::seed_from_u64(3);
    let mut r = rich();
    let mut total = 0u64;
    for c in &mut r.cycles {
        for counts in [&mut c.tests, &mut c.pages, &mut c.requests]
            .into_iter()
            .chain(c.steps.iter_mut())
        {
            // Latencies spread from 100 µs to 60 s: the worst case for the encoding.
            for _ in 0..20_000 {
                let v = (100.0 * 600_000f64.powf(rng.gen::<f64>())) as u64;
                counts.latency.record_n(v, 100).unwrap();
            }
            total += counts.latency.len();
        }
    }
    let bytes = to_bytes(&r);
    println!(
        "{} values in histograms -> {} bytes of XML",
        total,
        bytes.len()
    );
    assert!(total >= 10_000_000);
    assert!(bytes.len() < 400_000, "{} bytes", bytes.len());
    assert_eq!(read(&bytes).unwrap(), r);
}

/// A file written before HTTP/2 and WebSockets (no `streams`, `protocol`, `messages`) reads,
/// with what those runs were: one stream, HTTP/1.1, no messages.
#[test]
fn files_from_before_http2_read_as_http1() {
    let doc = include_str!("../../../docs/RESULT-FORMAT.md");
    let start = doc.find("```xml\n").unwrap() + "```xml\n".len();
    let example = &doc[start..start + doc[start..].find("```").unwrap()];
    let old = example
        .replace(" streams=\"1\"", "")
        .replace(" protocol=\"HTTP/1.1\"", "");
    assert_ne!(old, example);
    let r = read_str(&old).unwrap();
    assert_eq!(r.config.streams, 1);
    assert_eq!(r.steps[0].protocol, "HTTP/1.1");
    assert_eq!(r.cycles[0].steps[0].messages, 0);
    let mut with = r.clone();
    with.cycles[0].steps[0].messages = 7;
    assert_eq!(
        read(&to_bytes(&with)).unwrap().cycles[0].steps[0].messages,
        7
    );
}

/// A step without page resources writes none of their attributes (files read as before);
/// one with them reads back what it wrote, a 304 or a fresh cache hit alone included.
#[test]
fn page_resources_are_written_only_where_there_are_some() {
    let mut r = rich();
    for c in &mut r.cycles {
        let all = [&mut c.tests, &mut c.pages, &mut c.requests];
        for counts in all.into_iter().chain(&mut c.steps).chain(&mut c.scenarios) {
            counts.resources = PageResources::default();
        }
    }
    let bytes = to_bytes(&r);
    assert!(!String::from_utf8_lossy(&bytes).contains("resource-"));
    r.cycles[0].steps[0].resources.cached = 1;
    r.cycles[0].steps[1].resources = PageResources {
        requests: 4,
        bytes: 0,
        revalidated: 4,
        cached: 0,
    };
    assert_eq!(read(&to_bytes(&r)).unwrap(), r);
}

/// The example of docs/RESULT-FORMAT.md reads, and is exactly what the writer writes.
#[test]
fn documented_example_is_current() {
    let doc = include_str!("../../../docs/RESULT-FORMAT.md");
    let start = doc.find("```xml\n").unwrap() + "```xml\n".len();
    let example = &doc[start..start + doc[start..].find("```").unwrap()];
    let r = read_str(example).unwrap();
    assert!(r.interrupted);
    assert_eq!(r.config.thresholds.len(), 2);
    assert_eq!(r.config.thresholds[1].step.as_deref(), Some("home"));
    assert_eq!(r.cycles[0].requests.total(), 3);
    assert_eq!(r.cycles[0].requests.latency.len(), 2);
    assert_eq!(r.cycles[0].requests.latency.max(), 15_503);
    assert_eq!(r.series[0].cycle, None);
    let second = &r.latency.intervals[0];
    assert_eq!((r.latency.interval_s, second.index), (1, 1));
    assert_eq!(second.pages().len(), 2);
    assert_eq!(r.errors[1].samples[0].status, None);
    assert_eq!(
        r.errors[0].samples[0].body, "<h1>Internal error</h1>",
        "entities expanded"
    );
    assert_eq!(String::from_utf8(to_bytes(&r)).unwrap(), example);
}

#[test]
fn counts_too_large_to_add_up_are_refused() {
    let text = String::from_utf8(to_bytes(&rich())).unwrap();
    let huge = text.replacen(" success=\"500\"", " success=\"18446744073709551615\"", 1);
    let e = read_str(&huge).unwrap_err();
    assert!(e.to_string().contains("`success`"), "{e}");
    // 2^53 + 1 as one zig-zag varint: 0x40_0000_0000_0002 -> bytes.
    let mut v: u64 = ((1u64 << 53) + 1) << 1;
    let mut payload = Vec::new();
    while v >= 0x80 {
        payload.push((v as u8) | 0x80);
        v >>= 7;
    }
    payload.push(v as u8);
    assert!(check_counts(&payload).unwrap_err().contains("more than"));
    // A byte order mark before the root is fine.
    assert_eq!(read_str(&format!("\u{feff}{text}")).unwrap(), rich());
}

#[test]
fn mutated_histograms_never_panic() {
    use base64::Engine as _;
    use std::io::{Read as _, Write as _};
    let mut rng = SmallRng::seed_from_u64(4);
    let h = counts(&mut rng, 2000, 1000).latency;
    let b64 = encode_histogram(&h).unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&bytes[8..])
        .read_to_end(&mut raw)
        .unwrap();
    for _ in 0..2000 {
        let mut m = raw.clone();
        for _ in 0..rng.gen_range(1..4) {
            let i = rng.gen_range(0..m.len());
            match rng.gen_range(0..4) {
                0 => m[i] = rng.gen(),
                1 => m[i] = 0xff,
                2 => {
                    m.truncate(i);
                }
                _ => m.insert(i, rng.gen()),
            }
        }
        if m.len() >= 8 && rng.gen_bool(0.5) {
            // Keep the payload length consistent, so that the counts get decoded.
            let len = (m.len().saturating_sub(40) as u32).to_be_bytes();
            m[4..8].copy_from_slice(&len);
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(&m).unwrap();
        let z = z.finish().unwrap();
        let mut framed = 0x1c84_9314u32.to_be_bytes().to_vec();
        framed.extend_from_slice(&(z.len() as u32).to_be_bytes());
        framed.extend_from_slice(&z);
        let text = base64::engine::general_purpose::STANDARD.encode(framed);
        let _ = decode_histogram(&text);
    }
}

#[test]
fn scenario_figures_must_match_the_scenarios() {
    let r = rich();
    let text = String::from_utf8(to_bytes(&r)).unwrap();
    assert!(text.contains("<scenario index=\"1\" name=\"buy\" weight=\"2\""));
    // A file written before scenarios (none listed, none per cycle) reads as before.
    let mut old = r.clone();
    old.scenarios.clear();
    for c in &mut old.cycles {
        c.scenarios.clear();
    }
    let old_text = String::from_utf8(to_bytes(&old)).unwrap();
    assert!(!old_text.contains("scenario"));
    assert_eq!(read_str(&old_text).unwrap(), old);
    // Per-cycle figures for a scenario the file does not list are refused, with the place.
    let cut = text.replacen(
        "<scenario index=\"1\" name=\"buy\" weight=\"2\" first-step=\"1\" steps=\"1\"/>",
        "",
        1,
    );
    let e = read_str(&cut).unwrap_err().to_string();
    assert!(
        e.contains("has figures for 2 scenarios, but the test has 1"),
        "{e}"
    );
    // A scenario past the last step is refused.
    let past = text.replacen(
        "first-step=\"1\" steps=\"1\"",
        "first-step=\"1\" steps=\"5\"",
        1,
    );
    let e = read_str(&past).unwrap_err().to_string();
    assert!(e.contains("names steps 1..6, but the test has 2"), "{e}");
}
