//! Cycles given on the command line: `-c 5:10:20` is three cycles of 5, 10 and 20 users.

use super::TestDefError;

/// Parses `5:10:20` (`,` is accepted as a separator too) into users per cycle.
///
/// Rejects an empty list, an empty item (`10::20`), a non-number and a cycle of 0.
pub fn parse_cycles(s: &str) -> Result<Vec<u32>, TestDefError> {
    let fail = |message: String| TestDefError::Cycles {
        text: s.to_string(),
        message,
    };
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err(fail("no cycle given".to_string()));
    }
    trimmed
        .split([':', ','])
        .enumerate()
        .map(|(i, item)| {
            let item = item.trim();
            let n = i + 1;
            if item.is_empty() {
                return Err(fail(format!("cycle {n} is empty")));
            }
            match item.parse::<u32>() {
                Ok(0) => Err(fail(format!(
                    "cycle {n} has 0 users; each cycle needs at least 1"
                ))),
                Ok(users) => Ok(users),
                Err(_) => Err(fail(format!(
                    "cycle {n} `{item}` is not a positive whole number"
                ))),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_lists() {
        assert_eq!(parse_cycles("5").unwrap(), [5]);
        assert_eq!(parse_cycles("5:10:20").unwrap(), [5, 10, 20]);
        assert_eq!(parse_cycles(" 1, 2 ,3 ").unwrap(), [1, 2, 3]);
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
    }
}
