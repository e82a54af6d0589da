//! Reading and parsing /proc: a host's CPU, load, memory and network as a [`ProcSnapshot`].
//!
//! The same parsers serve both ends: a node reads its own /proc ([`read_local`]), the master
//! runs [`REMOTE_COMMAND`] on a monitored host and hands its output to [`parse_concatenated`].
//! Two snapshots make one [`ResourceSample`] ([`sample`]): CPU and network are rates over the
//! interval between them, load and memory are the values of the later one. The loop that takes
//! them every second is [`super::sampler`].

use std::path::PathBuf;
use std::time::Instant;

use crate::result::ResourceSample;

/// The command whose output [`parse_concatenated`] reads (the four files, in this order).
pub const REMOTE_COMMAND: &str = "cat /proc/stat /proc/loadavg /proc/meminfo /proc/net/dev";

/// Counters and gauges of one host at one instant, as read from /proc.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcSnapshot {
    /// CPU time spent busy (everything but idle and iowait), all cores, jiffies since boot.
    pub cpu_busy_jiffies: u64,
    /// CPU time in total (user to steal), all cores, jiffies since boot.
    pub cpu_total_jiffies: u64,
    /// 1-minute load average.
    pub load1: f64,
    /// Memory total, KiB.
    pub mem_total_kib: u64,
    /// Memory available for new work (`MemAvailable`), KiB.
    pub mem_available_kib: u64,
    /// Bytes received since boot, summed over all interfaces but `lo`.
    pub net_rx_bytes: u64,
    /// Bytes sent since boot, summed over all interfaces but `lo`.
    pub net_tx_bytes: u64,
    /// When the snapshot was parsed (for remote hosts: when the output arrived).
    pub taken_at: Instant,
}

/// Why /proc could not be read or understood.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    /// A /proc file could not be read (not Linux, or /proc not mounted).
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text of a /proc file is not what Linux writes.
    #[error("{file}: line {line}: {reason}")]
    Parse {
        /// Which file (`/proc/stat`, ...).
        file: &'static str,
        /// Line within that file's text, from 1 (0 when the file is empty or the line absent).
        line: usize,
        reason: String,
    },
}

fn parse_err(file: &'static str, line: usize, reason: impl Into<String>) -> MonitorError {
    MonitorError::Parse {
        file,
        line,
        reason: reason.into(),
    }
}

/// Parses a number field of a /proc file.
fn num<T: std::str::FromStr>(
    file: &'static str,
    line: usize,
    what: &str,
    s: Option<&str>,
) -> Result<T, MonitorError> {
    let s = s.ok_or_else(|| parse_err(file, line, format!("{what} is missing")))?;
    s.parse()
        .map_err(|_| parse_err(file, line, format!("{what} is not a number: {s:?}")))
}

/// Busy and total jiffies from the aggregate `cpu` line of /proc/stat.
fn parse_stat(stat: &str) -> Result<(u64, u64), MonitorError> {
    const FILE: &str = "/proc/stat";
    let (idx, line) = stat
        .lines()
        .enumerate()
        .find(|(_, l)| l.split_whitespace().next() == Some("cpu"))
        .ok_or_else(|| parse_err(FILE, 0, "no aggregate `cpu` line"))?;
    let fields: Vec<&str> = line.split_whitespace().skip(1).collect();
    if fields.len() < 4 {
        return Err(parse_err(
            FILE,
            idx + 1,
            "`cpu` line has fewer than 4 fields",
        ));
    }
    // user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is
    // already included in user and nice, so the total stops at steal.
    let mut values = [0u64; 8];
    for (i, v) in values.iter_mut().enumerate() {
        if let Some(f) = fields.get(i) {
            *v = num(FILE, idx + 1, "cpu time", Some(f))?;
        }
    }
    let total = values.iter().fold(0u64, |a, v| a.saturating_add(*v));
    let idle = values[3].saturating_add(values[4]);
    Ok((total.saturating_sub(idle), total))
}

/// The 1-minute load average from /proc/loadavg.
fn parse_loadavg(loadavg: &str) -> Result<f64, MonitorError> {
    let load: f64 = num(
        "/proc/loadavg",
        1,
        "1-minute load",
        loadavg.split_whitespace().next(),
    )?;
    if !load.is_finite() || load < 0.0 {
        return Err(parse_err(
            "/proc/loadavg",
            1,
            "1-minute load is out of range",
        ));
    }
    Ok(load)
}

/// Total and available memory in KiB from /proc/meminfo.
fn parse_meminfo(meminfo: &str) -> Result<(u64, u64), MonitorError> {
    const FILE: &str = "/proc/meminfo";
    let get = |key: &str| -> Result<Option<u64>, MonitorError> {
        for (i, line) in meminfo.lines().enumerate() {
            let Some((k, rest)) = line.split_once(':') else {
                continue;
            };
            if k.trim() == key {
                return num(FILE, i + 1, key, rest.split_whitespace().next()).map(Some);
            }
        }
        Ok(None)
    };
    let total = get("MemTotal")?.ok_or_else(|| parse_err(FILE, 0, "no MemTotal line"))?;
    let available = match get("MemAvailable")? {
        Some(a) => a,
        // Kernels before 3.14 lack MemAvailable; free + buffers + cache approximates it.
        None => {
            let free = get("MemFree")?.ok_or_else(|| parse_err(FILE, 0, "no MemFree line"))?;
            free.saturating_add(get("Buffers")?.unwrap_or(0))
                .saturating_add(get("Cached")?.unwrap_or(0))
        }
    };
    Ok((total, available.min(total)))
}

/// Received and sent bytes summed over every interface but `lo`, from /proc/net/dev.
fn parse_netdev(netdev: &str) -> Result<(u64, u64), MonitorError> {
    const FILE: &str = "/proc/net/dev";
    let (mut rx, mut tx) = (0u64, 0u64);
    let mut seen_header = false;
    for (i, line) in netdev.lines().enumerate() {
        if line.contains('|') {
            seen_header = true;
            continue;
        }
        // `  eth0: 123 ...`; old kernels glue the first number to the colon.
        let Some((name, counters)) = line.split_once(':') else {
            if line.trim().is_empty() {
                continue;
            }
            return Err(parse_err(FILE, i + 1, "interface line without `name:`"));
        };
        if name.trim() == "lo" {
            continue;
        }
        let fields: Vec<&str> = counters.split_whitespace().collect();
        let r: u64 = num(FILE, i + 1, "received bytes", fields.first().copied())?;
        let t: u64 = num(FILE, i + 1, "sent bytes", fields.get(8).copied())?;
        rx = rx.saturating_add(r);
        tx = tx.saturating_add(t);
    }
    if !seen_header {
        return Err(parse_err(FILE, 0, "no `Inter-|` header"));
    }
    Ok((rx, tx))
}

/// Parses the text of /proc/stat, /proc/loadavg, /proc/meminfo and /proc/net/dev into a
/// snapshot taken now.
pub fn parse_snapshot(
    stat: &str,
    loadavg: &str,
    meminfo: &str,
    netdev: &str,
) -> Result<ProcSnapshot, MonitorError> {
    let (cpu_busy_jiffies, cpu_total_jiffies) = parse_stat(stat)?;
    let load1 = parse_loadavg(loadavg)?;
    let (mem_total_kib, mem_available_kib) = parse_meminfo(meminfo)?;
    let (net_rx_bytes, net_tx_bytes) = parse_netdev(netdev)?;
    Ok(ProcSnapshot {
        cpu_busy_jiffies,
        cpu_total_jiffies,
        load1,
        mem_total_kib,
        mem_available_kib,
        net_rx_bytes,
        net_tx_bytes,
        taken_at: Instant::now(),
    })
}

/// True for the single line of /proc/loadavg: `0.52 0.58 0.59 1/1234 5678`.
fn is_loadavg_line(line: &str) -> bool {
    let f: Vec<&str> = line.split_whitespace().collect();
    f.len() == 5
        && f[..3].iter().all(|x| x.parse::<f64>().is_ok())
        && f[3]
            .split_once('/')
            .is_some_and(|(a, b)| a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok())
}

/// Parses the output of [`REMOTE_COMMAND`]: the four files one after the other. The files are
/// told apart by their shapes: /proc/stat runs up to the loadavg line, /proc/meminfo follows it
/// up to the `Inter-|` header of /proc/net/dev.
pub fn parse_concatenated(text: &str) -> Result<ProcSnapshot, MonitorError> {
    let lines: Vec<&str> = text.lines().collect();
    let load_at = lines
        .iter()
        .position(|l| is_loadavg_line(l))
        .ok_or_else(|| parse_err("/proc/loadavg", 0, "no loadavg line in the output"))?;
    let net_at = lines[load_at..]
        .iter()
        .position(|l| l.trim_start().starts_with("Inter-"))
        .map(|p| p + load_at)
        .ok_or_else(|| parse_err("/proc/net/dev", 0, "no `Inter-|` header in the output"))?;
    parse_snapshot(
        &lines[..load_at].join("\n"),
        lines[load_at],
        &lines[load_at + 1..net_at].join("\n"),
        &lines[net_at..].join("\n"),
    )
}

/// Reads this host's /proc.
pub fn read_local() -> Result<ProcSnapshot, MonitorError> {
    let read = |p: &str| {
        std::fs::read_to_string(p).map_err(|source| MonitorError::Io {
            path: PathBuf::from(p),
            source,
        })
    };
    parse_snapshot(
        &read("/proc/stat")?,
        &read("/proc/loadavg")?,
        &read("/proc/meminfo")?,
        &read("/proc/net/dev")?,
    )
}

/// The sample for the interval from `prev` to `now`, stamped `at_ms` (ms since the run
/// started). Counters that went backwards (a reboot, an interface removed) count as zero.
pub fn sample(prev: &ProcSnapshot, now: &ProcSnapshot, at_ms: u64) -> ResourceSample {
    let busy = now.cpu_busy_jiffies.saturating_sub(prev.cpu_busy_jiffies);
    let total = now.cpu_total_jiffies.saturating_sub(prev.cpu_total_jiffies);
    let cpu_pct = if total == 0 {
        0.0
    } else {
        (100.0 * busy as f64 / total as f64).clamp(0.0, 100.0)
    };
    let secs = now
        .taken_at
        .saturating_duration_since(prev.taken_at)
        .as_secs_f64();
    let rate = |a: u64, b: u64| {
        if secs > 0.0 {
            b.saturating_sub(a) as f64 / secs
        } else {
            0.0
        }
    };
    ResourceSample {
        at_ms,
        cpu_pct,
        load1: now.load1,
        mem_used_kib: now.mem_total_kib.saturating_sub(now.mem_available_kib),
        mem_total_kib: now.mem_total_kib,
        net_rx_bps: rate(prev.net_rx_bytes, now.net_rx_bytes),
        net_tx_bps: rate(prev.net_tx_bytes, now.net_tx_bytes),
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const STAT: &str = "cpu  1000 50 300 8000 100 10 20 30 5 0
cpu0 500 25 150 4000 50 5 10 15 0 0
intr 12345 0 0
ctxt 999
btime 1700000000
processes 4242
procs_running 2
procs_blocked 0
softirq 1 2 3
";
    const LOADAVG: &str = "0.52 0.58 0.59 1/1234 5678\n";
    const MEMINFO: &str = "MemTotal:       16318480 kB
MemFree:         1000000 kB
MemAvailable:    8000000 kB
Buffers:          200000 kB
Cached:          3000000 kB
";
    const NETDEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 999999     100    0    0    0     0          0         0   999999     100    0    0    0     0       0          0
  eth0: 1000     10    0    0    0     0          0         0     2000      20    0    0    0     0       0          0
wlan0:500 5 0 0 0 0 0 0 700 7 0 0 0 0 0 0
";

    #[test]
    fn parses_fixed_proc_text() {
        let s = parse_snapshot(STAT, LOADAVG, MEMINFO, NETDEV).unwrap();
        // user..steal = 1000+50+300+8000+100+10+20+30; idle = 8000+100.
        assert_eq!(s.cpu_total_jiffies, 9510);
        assert_eq!(s.cpu_busy_jiffies, 1410);
        assert_eq!(s.load1, 0.52);
        assert_eq!(s.mem_total_kib, 16318480);
        assert_eq!(s.mem_available_kib, 8000000);
        assert_eq!((s.net_rx_bytes, s.net_tx_bytes), (1500, 2700));
    }

    #[test]
    fn concatenated_equals_separate() {
        let text = format!("{STAT}{LOADAVG}{MEMINFO}{NETDEV}");
        let a = parse_concatenated(&text).unwrap();
        let b = parse_snapshot(STAT, LOADAVG, MEMINFO, NETDEV).unwrap();
        assert_eq!(
            (
                a.cpu_busy_jiffies,
                a.cpu_total_jiffies,
                a.load1,
                a.mem_total_kib
            ),
            (
                b.cpu_busy_jiffies,
                b.cpu_total_jiffies,
                b.load1,
                b.mem_total_kib
            )
        );
        assert_eq!(
            (a.mem_available_kib, a.net_rx_bytes, a.net_tx_bytes),
            (b.mem_available_kib, b.net_rx_bytes, b.net_tx_bytes)
        );
    }

    #[test]
    fn old_kernel_without_memavailable() {
        let mem = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 200 kB\n";
        let s = parse_snapshot(STAT, LOADAVG, mem, NETDEV).unwrap();
        assert_eq!(s.mem_available_kib, 350);
    }

    #[test]
    fn bad_text_names_file_and_line() {
        let e = parse_snapshot("intr 1\ncpu 1 2 x 4\n", LOADAVG, MEMINFO, NETDEV).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/proc/stat: line 2: cpu time is not a number: \"x\""
        );
        let e = parse_snapshot(STAT, "", MEMINFO, NETDEV).unwrap_err();
        assert!(e.to_string().starts_with("/proc/loadavg"), "{e}");
        let e = parse_snapshot(STAT, LOADAVG, "Foo: 1 kB\n", NETDEV).unwrap_err();
        assert!(e.to_string().contains("MemTotal"), "{e}");
        let e = parse_snapshot(STAT, LOADAVG, MEMINFO, "eth0: 1 2\n").unwrap_err();
        assert!(e.to_string().starts_with("/proc/net/dev: line 1"), "{e}");
        assert!(parse_concatenated("garbage\n").is_err());
        assert!(parse_concatenated("").is_err());
    }

    #[test]
    fn sample_computes_rates() {
        let prev = parse_snapshot(STAT, LOADAVG, MEMINFO, NETDEV).unwrap();
        let mut now = prev.clone();
        now.taken_at = prev.taken_at + Duration::from_secs(2);
        now.cpu_busy_jiffies += 50;
        now.cpu_total_jiffies += 200;
        now.net_rx_bytes += 4000;
        now.net_tx_bytes += 1000;
        now.load1 = 1.5;
        let s = sample(&prev, &now, 1234);
        assert_eq!(s.at_ms, 1234);
        assert_eq!(s.cpu_pct, 25.0);
        assert_eq!(s.load1, 1.5);
        assert_eq!(s.mem_used_kib, 16318480 - 8000000);
        assert_eq!(s.mem_total_kib, 16318480);
        assert_eq!((s.net_rx_bps, s.net_tx_bps), (2000.0, 500.0));
        // Counters going backwards and a zero interval give zeros, not garbage.
        let back = sample(&now, &prev, 0);
        assert_eq!((back.cpu_pct, back.net_rx_bps), (0.0, 0.0));
    }

    #[test]
    fn reads_this_machines_proc() {
        let a = read_local().unwrap();
        assert!(a.cpu_total_jiffies > 0 && a.cpu_busy_jiffies <= a.cpu_total_jiffies);
        assert!(a.mem_total_kib > 0 && a.mem_available_kib <= a.mem_total_kib);
        // What the master gets over SSH parses the same way.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(REMOTE_COMMAND)
            .output()
            .unwrap();
        assert!(out.status.success());
        let b = parse_concatenated(&String::from_utf8_lossy(&out.stdout)).unwrap();
        assert!(b.cpu_total_jiffies >= a.cpu_total_jiffies);
        assert_eq!(b.mem_total_kib, a.mem_total_kib);
        let s = sample(&a, &b, 7);
        assert!((0.0..=100.0).contains(&s.cpu_pct), "{s:?}");
    }
}
