//! Flags the commands share, as clap structs, and their turning into typed values (ripgrep's
//! low-level → high-level arguments): [`RunArgs`] (`-c`, `-r`, `-D`, `-u`) is flattened into
//! both `bench-master` and `bench-node run` and becomes the [`Overrides`] the test loader
//! takes; [`DocArgs`] (`--completions SHELL`, `--man`) is on all three commands. Values are
//! parsed by [`crate::test_def::values`], the same parsers that read `node.toml`; the rest of
//! the library sees typed values only.

use std::io::Write;

use clap_complete::Shell;

use crate::export::ExportSink;
use crate::test_def::values::{self, CycleUnit};
use crate::test_def::Overrides;

/// The run flags of `bench-master` and `bench-node run`, as given.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// Users per cycle on each node, e.g. `10:20:30` (`:` separates cycles; `,` is accepted
    /// too); overrides [bench] cycles.
    #[arg(short = 'c', long = "cycles", value_name = "CYCLES")]
    pub cycles: Option<String>,
    /// Open model: test executions started per second on each node, per cycle, e.g.
    /// `100:200:400` (`:` separates cycles; `,` is accepted too); overrides [bench] cycles and
    /// rate.
    #[arg(
        short = 'r',
        long = "rate",
        value_name = "RATES",
        conflicts_with = "cycles"
    )]
    pub rates: Option<String>,
    /// Measured time of each cycle: seconds (`30`, `2.5`) or a duration with its unit (`90s`,
    /// `5m`); overrides [bench] duration.
    #[arg(short = 'D', long = "duration", value_name = "DURATION")]
    pub duration: Option<String>,
    /// Base URL of the target, e.g. `http://10.0.0.5:8080`; overrides [test] url.
    #[arg(short = 'u', long = "url", value_name = "URL")]
    pub url: Option<String>,
    /// Send each second's numbers to monitoring as the run goes (repeatable):
    /// `influxdb=http://HOST:8086/write?db=DB` (1.x) or `influxdb=http://HOST:8086/api/v2/write?org=O&bucket=B`
    /// (2.x, token from INFLUX_TOKEN), `statsd=HOST:PORT` (UDP), `prometheus=ADDR` (a scrape
    /// endpoint served here, e.g. 127.0.0.1:9400). Never slows the bench: what a sink that is
    /// down cannot take is dropped, counted in the report.
    #[arg(long = "export", value_name = "SINK=WHERE")]
    pub export: Vec<String>,
}

impl RunArgs {
    /// The `--export` sinks, parsed (a bad one names the flag and the value).
    pub fn exports(&self) -> Result<Vec<ExportSink>, FlagError> {
        self.export
            .iter()
            .map(|v| {
                v.parse().map_err(|message| FlagError {
                    flag: "--export",
                    value: v.clone(),
                    message,
                })
            })
            .collect()
    }
}

/// A run flag whose value is not valid: names the flag and the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{flag} `{value}`: {message}")]
pub struct FlagError {
    /// The flag as a user types it, e.g. `-c`.
    pub flag: &'static str,
    /// The value as given.
    pub value: String,
    /// What is wrong with it.
    pub message: String,
}

impl TryFrom<RunArgs> for Overrides {
    type Error = FlagError;

    fn try_from(a: RunArgs) -> Result<Overrides, FlagError> {
        Ok(Overrides {
            cycles: check("-c", a.cycles, |v| {
                values::parse_cycle_list(v, CycleUnit::Users)
            })?,
            rates: check("-r", a.rates, |v| {
                values::parse_cycle_list(v, CycleUnit::Rate)
            })?,
            duration: check("-D", a.duration, values::parse_duration)?,
            url: check("-u", a.url, values::check_base_url)?,
        })
    }
}

/// Parses an optional flag value, naming the flag and the value when it is wrong.
fn check<T>(
    flag: &'static str,
    value: Option<String>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, FlagError> {
    value
        .map(|value| {
            parse(&value).map_err(|message| FlagError {
                flag,
                value,
                message,
            })
        })
        .transpose()
}

/// `--completions SHELL` and `--man`: what the command prints about itself instead of running.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DocArgs {
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell) and exit.
    #[arg(long, value_name = "SHELL", exclusive = true)]
    pub completions: Option<Shell>,
    /// Print the man page (roff) and exit.
    #[arg(long, exclusive = true)]
    pub man: bool,
}

impl DocArgs {
    /// True when a completion script or the man page was asked for.
    pub fn wanted(&self) -> bool {
        self.completions.is_some() || self.man
    }

    /// Writes the completion script or the man page of `cmd` (the command's clap definition);
    /// the page of a command with subcommands is followed by one page for each (`bench-node-run`).
    pub fn write(&self, mut cmd: clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
        if let Some(shell) = self.completions {
            let name = cmd.get_name().to_string();
            clap_complete::generate(shell, &mut cmd, name, out);
        } else if self.man {
            let mut cmd = cmd.disable_help_subcommand(true);
            cmd.build();
            man_pages(cmd, out)?;
        }
        out.flush()
    }
}

/// The man page of `cmd`, then those of its visible subcommands, as `clap_mangen::generate_to`
/// would write them to files.
fn man_pages(cmd: clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    let subcommands: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    clap_mangen::Man::new(cmd).render(out)?;
    for sub in subcommands {
        man_pages(sub, out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn args(c: Option<&str>, r: Option<&str>, d: Option<&str>, u: Option<&str>) -> RunArgs {
        RunArgs {
            cycles: c.map(String::from),
            rates: r.map(String::from),
            duration: d.map(String::from),
            url: u.map(String::from),
            export: Vec::new(),
        }
    }

    #[test]
    fn flags_become_typed_overrides() {
        let o =
            Overrides::try_from(args(Some("5,10"), None, Some("5m"), Some("http://h:81"))).unwrap();
        assert_eq!(o.cycles, Some(vec![5, 10]));
        assert_eq!(o.duration, Some(Duration::from_secs(300)));
        assert_eq!(o.url.unwrap().as_str(), "http://h:81/");
        let o = Overrides::try_from(args(None, Some("100:200"), Some("2.5"), None)).unwrap();
        assert_eq!(o.rates, Some(vec![100, 200]));
        assert_eq!(o.duration, Some(Duration::from_millis(2500)));
        assert_eq!(
            Overrides::try_from(RunArgs::default()).unwrap(),
            Overrides::default()
        );
    }

    #[test]
    fn errors_name_the_flag_and_the_value() {
        let e = |a: RunArgs| Overrides::try_from(a).unwrap_err().to_string();
        let msg = e(args(Some("5:x"), None, None, None));
        assert!(
            msg.starts_with("-c `5:x`: cycle 2 `x` is not a positive"),
            "{msg}"
        );
        let msg = e(args(None, Some("10:0"), None, None));
        assert!(
            msg.starts_with("-r `10:0`: cycle 2 has 0 executions"),
            "{msg}"
        );
        let msg = e(args(None, None, Some("soon"), None));
        assert!(msg.starts_with("-D `soon`: expected seconds"), "{msg}");
        let msg = e(args(None, None, None, Some("ftp://x")));
        assert!(msg.starts_with("-u `ftp://x`: invalid URL"), "{msg}");
    }

    #[test]
    fn export_sinks_are_typed_once() {
        let sinks = |v: &[&str]| {
            RunArgs {
                export: v.iter().map(|s| s.to_string()).collect(),
                ..RunArgs::default()
            }
            .exports()
        };
        let ok = sinks(&[
            "influxdb=http://127.0.0.1:8086/write?db=b",
            "statsd=127.0.0.1:8125",
            "prometheus=127.0.0.1:0",
        ])
        .unwrap();
        assert!(matches!(ok[0], ExportSink::Influx(_)));
        assert_eq!(ok[1], ExportSink::Statsd("127.0.0.1:8125".into()));
        assert_eq!(
            ok[2],
            ExportSink::Prometheus("127.0.0.1:0".parse().unwrap())
        );
        let msg = sinks(&["graphite=x"]).unwrap_err().to_string();
        assert!(
            msg.starts_with("--export `graphite=x`: unknown sink"),
            "{msg}"
        );
        assert!(sinks(&["statsd"])
            .unwrap_err()
            .to_string()
            .contains("SINK=WHERE"));
        assert!(sinks(&["prometheus=9400"]).is_err());
    }
}
