//! One parser per run value, shared by every place a value is given: the flags of
//! `bench-master` and `bench-node run` (`-c`, `-r`, `-D`, `-u`), the per-node file the master
//! writes (`node.toml`) and the overrides the loader applies. Each returns the typed value or
//! says what is wrong with it; the caller names the flag or the key.

use std::time::Duration;

use url::Url;

use super::TestDefError;

/// What a list of cycles counts: `-c` users, `-r` test executions started per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CycleUnit {
    /// Users per cycle (closed model).
    Users,
    /// Test executions started per second per cycle (open model).
    Rate,
}

impl CycleUnit {
    fn noun(self) -> &'static str {
        match self {
            CycleUnit::Users => "users",
            CycleUnit::Rate => "executions per second",
        }
    }

    fn example(self) -> &'static str {
        match self {
            CycleUnit::Users => "5:10:20",
            CycleUnit::Rate => "100:200:400",
        }
    }
}

/// Parses `5:10:20` (`:` is canonical; `,` is accepted too) into one value per cycle, each at
/// least 1.
pub fn parse_cycle_list(text: &str, unit: CycleUnit) -> Result<Vec<u32>, String> {
    let hint = format!(
        "give {} per cycle separated by `:`, e.g. {}",
        unit.noun(),
        unit.example()
    );
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("no cycle given ({hint})"));
    }
    let list = trimmed
        .split([':', ','])
        .enumerate()
        .map(|(i, item)| {
            let item = item.trim();
            let n = i + 1;
            if item.is_empty() {
                return Err(format!("cycle {n} is empty ({hint})"));
            }
            item.parse::<u32>()
                .map_err(|_| format!("cycle {n} `{item}` is not a positive whole number ({hint})"))
        })
        .collect::<Result<Vec<u32>, String>>()?;
    check_cycle_list(&list, unit)?;
    Ok(list)
}

/// Checks a list of cycles given as numbers: at least one, each at least 1.
pub fn check_cycle_list(list: &[u32], unit: CycleUnit) -> Result<(), String> {
    if list.is_empty() {
        return Err("no cycle given: give at least one".to_string());
    }
    match list.iter().position(|&v| v == 0) {
        Some(i) => Err(format!(
            "cycle {} has 0 {}; each cycle needs at least 1",
            i + 1,
            unit.noun()
        )),
        None => Ok(()),
    }
}

/// Parses users per cycle, `5:10:20`, for callers that want a [`TestDefError`].
pub fn parse_cycles(s: &str) -> Result<Vec<u32>, TestDefError> {
    parse_cycle_list(s, CycleUnit::Users).map_err(|message| TestDefError::Cycles {
        text: s.to_string(),
        message,
    })
}

/// Parses the measured time of a cycle: seconds (`30`, `2.5`) or a duration with its unit
/// (`90s`, `5m`, `1h 30m`, `500ms`); more than 0.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<f64>() {
        return duration_secs(secs);
    }
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("the duration of a cycle must be more than 0 seconds".to_string()),
        Err(_) => Err(
            "expected seconds (`30`, `2.5`) or a duration with its unit (`90s`, `5m`)".to_string(),
        ),
    }
}

/// A positive, finite number of seconds as a duration.
pub fn duration_secs(secs: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{secs} is not a positive number of seconds"))
}

/// Checks a base URL: absolute, `http` or `https`, with a host.
pub fn check_base_url(text: &str) -> Result<Url, String> {
    let hint = |e: &dyn std::fmt::Display| {
        if text.contains("://") {
            format!("invalid URL `{text}`: {e}")
        } else {
            format!("invalid URL `{text}`: {e} (write it whole, e.g. `http://{text}`)")
        }
    };
    let url = Url::parse(text.trim()).map_err(|e| hint(&e))?;
    if !text.contains("://") {
        return Err(hint(&"no scheme"));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "invalid URL `{text}`: the scheme must be http or https, not `{}`",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(|h| h.is_empty()) {
        return Err(format!("invalid URL `{text}`: no host"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_lists() {
        assert_eq!(parse_cycles("5").unwrap(), [5]);
        assert_eq!(parse_cycles("5:10:20").unwrap(), [5, 10, 20]);
        assert_eq!(parse_cycles(" 1, 2 ,3 ").unwrap(), [1, 2, 3]);
        assert_eq!(
            parse_cycle_list("100,200", CycleUnit::Rate).unwrap(),
            [100, 200]
        );
    }

    #[test]
    fn invalid_lists_say_why() {
        let msg = |s: &str| parse_cycles(s).unwrap_err().to_string();
        assert!(
            msg("10::20").contains("cycle 2 is empty"),
            "{}",
            msg("10::20")
        );
        assert!(msg("10:").contains("cycle 2 is empty"));
        assert!(msg("0").contains("cycle 1 has 0 users"));
        assert!(msg("5:0").contains("cycle 2 has 0 users"));
        assert!(msg("").contains("no cycle given"));
        assert!(msg("a:b").contains("`a` is not a positive whole number"));
        assert!(msg("-3").contains("not a positive whole number"));
        assert!(msg("5:x").starts_with("invalid cycles `5:x`: "));
        assert!(msg("99999999999").contains("not a positive whole number"));
        let rate = parse_cycle_list("10:0", CycleUnit::Rate).unwrap_err();
        assert!(
            rate.contains("cycle 2 has 0 executions per second"),
            "{rate}"
        );
    }

    #[test]
    fn durations_in_seconds_or_with_a_unit() {
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2.5").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        for bad in ["0", "0s", "-1", "soon", "", "NaN", "inf"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(duration_secs(f64::INFINITY).is_err());
        assert_eq!(duration_secs(0.25).unwrap(), Duration::from_millis(250));
    }
}
