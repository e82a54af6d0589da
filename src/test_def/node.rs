//! The per-node configuration the master writes next to the test: who this node is, and the
//! command-line overrides of the run.

use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::error::{from_toml, read_text, Source};
use super::values::{check_base_url, check_cycle_list, duration_secs, CycleUnit};
use super::{NodeConfig, Overrides, TestDefError};

/// The file: a single `[node]` table.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File<N> {
    node: N,
}

/// `[node]` as written.
#[derive(Serialize)]
struct NodeOut<'a> {
    number: u32,
    count: u32,
    run: &'a str,
    host: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cycles: Option<&'a [u32]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rates: Option<&'a [u32]>,
    /// Seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
}

/// `[node]` as read.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeIn {
    number: Spanned<u32>,
    count: Spanned<u32>,
    run: String,
    host: String,
    cycles: Option<Spanned<Vec<u32>>>,
    rates: Option<Spanned<Vec<u32>>>,
    duration: Option<Spanned<f64>>,
    url: Option<Spanned<String>>,
}

/// Writes `config` as the TOML [`load_node_config`] reads.
pub fn node_config_toml(config: &NodeConfig) -> String {
    let o = &config.overrides;
    let file = File {
        node: NodeOut {
            number: config.number,
            count: config.count,
            run: &config.run,
            host: &config.host,
            cycles: o.cycles.as_deref(),
            rates: o.rates.as_deref(),
            duration: o.duration.map(|d| d.as_secs_f64()),
            url: o.url.as_ref().map(url::Url::as_str),
        },
    };
    // Serialising integers, floats and strings into a table cannot fail.
    toml::to_string(&file).unwrap_or_default()
}

/// Reads a node configuration written by [`node_config_toml`]; its values are checked by the
/// same parsers as the flags they come from.
pub fn load_node_config(path: &Path) -> Result<NodeConfig, TestDefError> {
    let text = read_text(path)?;
    let src = Source { path, text: &text };
    let file: File<NodeIn> = serde_path_to_error::deserialize(toml::Deserializer::new(&text))
        .map_err(|e| {
            let path = e.path().to_string();
            let field = path.strip_prefix("node.").map(str::to_string);
            let section = if path.starts_with("node") {
                "[node]"
            } else {
                ""
            };
            from_toml(&src, e.inner(), section, field.as_deref())
        })?;
    let n = file.node;
    if *n.count.get_ref() == 0 {
        return Err(src.error(n.count.span(), "[node] count", "must be at least 1"));
    }
    if n.number.get_ref() >= n.count.get_ref() {
        return Err(src.error(
            n.number.span(),
            "[node] number",
            format!(
                "node number {} is not below the node count {} (nodes are numbered from 0)",
                n.number.get_ref(),
                n.count.get_ref()
            ),
        ));
    }
    let overrides = overrides(&src, n.cycles, n.rates, n.duration, n.url)?;
    Ok(NodeConfig {
        number: n.number.into_inner(),
        count: n.count.into_inner(),
        run: n.run,
        host: n.host,
        overrides,
    })
}

/// The run's overrides in `[node]`, each checked where it is written.
fn overrides(
    src: &Source<'_>,
    cycles: Option<Spanned<Vec<u32>>>,
    rates: Option<Spanned<Vec<u32>>>,
    duration: Option<Spanned<f64>>,
    url: Option<Spanned<String>>,
) -> Result<Overrides, TestDefError> {
    let list = |value: Option<Spanned<Vec<u32>>>, key: &str, unit: CycleUnit| {
        value
            .map(|v| {
                check_cycle_list(v.get_ref(), unit).map_err(|m| src.error(v.span(), key, m))?;
                Ok(v.into_inner())
            })
            .transpose()
    };
    Ok(Overrides {
        cycles: list(cycles, "[node] cycles", CycleUnit::Users)?,
        rates: list(rates, "[node] rates", CycleUnit::Rate)?,
        duration: duration
            .map(|d| {
                duration_secs(*d.get_ref()).map_err(|m| src.error(d.span(), "[node] duration", m))
            })
            .transpose()?,
        url: url
            .map(|u| check_base_url(u.get_ref()).map_err(|m| src.error(u.span(), "[node] url", m)))
            .transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn round_trip() {
        let config = NodeConfig {
            number: 2,
            count: 4,
            run: "nightly \"quoted\"".into(),
            host: "10.0.0.2".into(),
            overrides: Overrides {
                cycles: Some(vec![5, 10]),
                duration: Some(Duration::from_millis(2500)),
                url: Some("https://example.test:8443/api".parse().unwrap()),
                rates: Some(vec![50]),
            },
        };
        let text = node_config_toml(&config);
        assert!(text.starts_with("[node]\n"), "{text}");
        let f = write(&text);
        let back = load_node_config(f.path()).unwrap();
        assert_eq!(back.number, 2);
        assert_eq!(back.count, 4);
        assert_eq!(back.run, config.run);
        assert_eq!(back.host, config.host);
        assert_eq!(back.overrides.cycles, config.overrides.cycles);
        assert_eq!(back.overrides.rates, config.overrides.rates);
        assert_eq!(back.overrides.duration, config.overrides.duration);
        assert_eq!(back.overrides.url, config.overrides.url);
    }

    #[test]
    fn round_trip_without_overrides() {
        let config = NodeConfig {
            number: 0,
            count: 1,
            run: "r".into(),
            host: "h".into(),
            overrides: Overrides::default(),
        };
        let f = write(&node_config_toml(&config));
        let back = load_node_config(f.path()).unwrap();
        assert!(back.overrides.cycles.is_none());
        assert!(back.overrides.duration.is_none());
        assert!(back.overrides.url.is_none());
    }

    #[test]
    fn bad_node_configs_name_line_and_key() {
        let err = |text: &str| {
            let f = write(text);
            let e = load_node_config(f.path()).unwrap_err().to_string();
            assert!(e.starts_with(&f.path().display().to_string()), "{e}");
            e
        };
        let base = "[node]\nnumber = 0\ncount = 2\nrun = \"r\"\nhost = \"h\"\n";
        let e = err(&format!("{base}colour = 1\n"));
        assert!(e.contains(":6:1: unknown key `colour` in [node]"), "{e}");
        let e = err("[node]\nnumber = 3\ncount = 2\nrun = \"r\"\nhost = \"h\"\n");
        assert!(e.contains(":2:10: [node] number: node number 3"), "{e}");
        let e = err(&format!("{base}url = \"ftp://x\"\n"));
        assert!(e.contains(":6:7: [node] url:"), "{e}");
        let e = err(&format!("{base}cycles = [1, 0]\n"));
        assert!(e.contains(":6:10: [node] cycles:"), "{e}");
        let e = err("[node]\nnumber = 0\n");
        assert!(e.contains("missing key `count` in [node]"), "{e}");
    }
}
