//! `[[data]]` files against real servers that log what they receive: `unique` rows each used
//! once across four nodes of a real bench-master run, users stopping when rows run out,
//! `sequential` and `random` orders, and bad files refused by `bench-node check` with their
//! file, line and column.

use std::path::Path;

use benchmaster::result::read::read_file;

use crate::master::{summary, text, Bench};
use crate::util::{bench_node, run, tempdir, write, LogServer};

/// A test whose one step sends the data row's values in its query.
fn data_test(dir: &Path, url: &str, data: &str, bench: &str) -> std::path::PathBuf {
    write(
        dir,
        "test.toml",
        &format!(
            "[test]\nname = \"data\"\nurl = \"{url}\"\n\n[bench]\n{bench}\n\n{data}\n\
             [[step]]\nname = \"login\"\npath = \"/login?u={{{{ account.login }}}}&p={{{{ account.password }}}}\"\n"
        ),
    )
}

/// The `u` value of every `/login` request the server saw, in order.
fn logins(server: &LogServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .filter_map(|r| r.strip_prefix("/login?u="))
        .map(|r| r.split('&').next().unwrap_or("").to_string())
        .collect()
}

fn accounts(dir: &Path, n: usize) {
    let mut csv = String::from("login,password\n");
    for i in 0..n {
        csv.push_str(&format!("user{i:04},pw{i}\n"));
    }
    write(dir, "accounts.csv", &csv);
}

#[test]
fn unique_rows_are_used_once_across_four_nodes_and_users_stop_when_they_run_out() {
    let server = LogServer::start();
    let dir = tempdir();
    accounts(dir.path(), 203);
    let data = "[[data]]\nname = \"account\"\nfile = \"accounts.csv\"\norder = \"unique\"\non_end = \"stop\"\n";
    let test = data_test(
        dir.path(),
        &server.url(),
        data,
        "cycles = [3]\nduration = 2",
    );
    let nodes = write(dir.path(), "nodes", "local\nlocal\nlocal\nlocal\n");
    let b = Bench::new(dir.path());
    let out = b
        .command(None, &[])
        .arg(&nodes)
        .arg(&test)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // The server's own log is the witness: every row once, none twice, none left.
    let mut seen = logins(&server);
    assert_eq!(seen.len(), 203, "{} logins", seen.len());
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 203, "a row was used twice");
    assert_eq!(seen.first().map(String::as_str), Some("user0000"));
    assert_eq!(seen.last().map(String::as_str), Some("user0202"));
    // 12 users had 2 s: they stopped at the end of the rows, not after thousands of requests.
    assert_eq!(server.requests().len(), 203);

    // Each node used its own share, and the report says how many rows and when they ran out.
    let run_dir = b.run_dir();
    let s = summary(&run_dir);
    let d = &s["data"][0];
    assert_eq!(d["name"], "account");
    assert_eq!(d["order"], "unique");
    assert_eq!(
        (d["rows"].as_u64(), d["used"].as_u64()),
        (Some(203), Some(203))
    );
    assert_eq!(d["exhausted_nodes"], 4);
    assert!(d["ran_out_s"].as_f64().is_some_and(|t| t < 2.0), "{d}");
    let shares: Vec<u64> = (0..4)
        .map(|n| {
            let r = read_file(&run_dir.join(format!("results/node{n}.xml"))).unwrap();
            assert!(r.data[0].exhausted_ms.is_some());
            assert_eq!(r.data[0].used, r.data[0].rows);
            r.data[0].used
        })
        .collect();
    assert_eq!(shares, [51, 51, 51, 50]);
    // The file went to the host once: the other nodes' copies are links to the first.
    use std::os::unix::fs::MetadataExt;
    let run_id = run_dir.strip_prefix(&b.workdir).unwrap();
    let inodes: Vec<u64> = (0..4)
        .map(|n| {
            let copy = b
                .node_workdir
                .join(run_id)
                .join(format!("node{n}/accounts.csv"));
            std::fs::metadata(&copy).unwrap().ino()
        })
        .collect();
    assert!(inodes.iter().all(|i| *i == inodes[0]), "{inodes:?}");
    let html = std::fs::read_to_string(run_dir.join("report/index.html")).unwrap();
    assert!(html.contains("id=\"data\""), "no data section");
    assert!(html.contains("their users stopped"));
}

/// Runs one node alone with `data` and returns the logins the server saw.
fn node_logins(data: &str, bench: &str) -> Vec<String> {
    let server = LogServer::start();
    let dir = tempdir();
    accounts(dir.path(), 3);
    let test = data_test(dir.path(), &server.url(), data, bench);
    let o = run(bench_node()
        .arg("run")
        .arg(&test)
        .arg("-o")
        .arg(dir.path().join("r.xml")));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    logins(&server)
}

#[test]
fn sequential_rows_wrap_in_order_and_random_rows_are_drawn() {
    let bench = "cycles = [1]\nduration = 1\nsleep_time = 0.001";
    let seq = node_logins(
        "[[data]]\nname = \"account\"\nfile = \"accounts.csv\"\n",
        bench,
    );
    assert!(seq.len() > 10, "{}", seq.len());
    for (i, login) in seq.iter().enumerate() {
        assert_eq!(*login, format!("user{:04}", i % 3), "at {i}: {seq:?}");
    }
    let random = node_logins(
        "[[data]]\nname = \"account\"\nfile = \"accounts.csv\"\norder = \"random\"\n",
        &format!("{bench}\nseed = 3"),
    );
    assert!(random.len() > 30);
    for i in 0..3 {
        let n = random
            .iter()
            .filter(|l| **l == format!("user{i:04}"))
            .count();
        assert!(n > random.len() / 6, "{i}: {n} of {}", random.len());
    }
    assert_ne!(random[..30], seq[..30], "random drew the file's order");
}

/// `bench-node check` of a test whose data file holds `content`: its error line.
fn check_error(name: &str, content: &[u8], template: &str) -> String {
    let dir = tempdir();
    std::fs::write(dir.path().join(name), content).unwrap();
    let test = write(
        dir.path(),
        "test.toml",
        &format!(
            "[test]\nname = \"d\"\nurl = \"http://127.0.0.1:9\"\n[[data]]\nname = \"account\"\n\
             file = \"{name}\"\n[[step]]\nname = \"s\"\npath = \"/?{template}\"\n"
        ),
    );
    let o = run(bench_node().arg("check").arg(&test));
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
    let file = if err.contains("test.toml:") {
        "test.toml"
    } else {
        name
    };
    let at = err
        .split_once(&format!("{file}:"))
        .map(|(_, rest)| rest.to_string())
        .unwrap_or_else(|| panic!("{err}"));
    at
}

#[test]
fn bad_data_files_fail_at_check_time_with_file_line_and_column() {
    let login = "u={{ account.login }}";
    let e = check_error("a.csv", b"login,password\nann,1\nbob\n", login);
    assert!(
        e.starts_with("3:1: ") && e.contains("1 fields, the header has 2"),
        "{e}"
    );
    let e = check_error("a.csv", b"login,password\nann,1\nb\xffb,2\n", login);
    assert!(e.starts_with("3:2: ") && e.contains("not UTF-8"), "{e}");
    let e = check_error("a.csv", b"", login);
    assert!(e.starts_with("1:1: ") && e.contains("empty"), "{e}");
    let e = check_error("a.csv", b"login,password\n", login);
    assert!(e.starts_with("2:1: ") && e.contains("no rows"), "{e}");
    // A column the file does not have is named where the template uses it.
    let e = check_error(
        "a.csv",
        b"login,password\nann,1\n",
        "p={{ account.passwd }}",
    );
    assert!(
        e.starts_with("9:8: ") && e.contains("unknown name `account.passwd`"),
        "{e}"
    );
    let e = check_error("a.jsonl", b"{\"login\": \"a\"}\n{\"name\": \"b\"}\n", login);
    assert!(e.starts_with("2:1: ") && e.contains("no `login`"), "{e}");
    let e = check_error("a.jsonl", b"{\"login\": \"a\"}\n{\"login\": b}\n", login);
    assert!(
        e.starts_with("2:11: ") && e.contains("not a JSON object"),
        "{e}"
    );
    // A good one: check shows the first row and the row count.
    let dir = tempdir();
    std::fs::write(
        dir.path().join("a.jsonl"),
        "{\"login\": \"ann\", \"n\": 1}\n\n{\"login\": \"bob\", \"n\": 2}\n",
    )
    .unwrap();
    let test = write(
        dir.path(),
        "test.toml",
        &format!("[test]\nname = \"d\"\nurl = \"http://127.0.0.1:9\"\n[[data]]\nname = \"account\"\nfile = \"a.jsonl\"\norder = \"unique\"\n[[step]]\nname = \"s\"\npath = \"/?{login}\"\n"),
    );
    let o = run(bench_node().arg("check").arg(&test));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("a.jsonl (2 rows, unique, at the end stop)"),
        "{out}"
    );
    assert!(out.contains("first row login=\"ann\" n=\"1\""), "{out}");
}
