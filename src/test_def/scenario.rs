//! Scenarios: `[[scenario]]` tables with a `name`, a `weight` and their own `[[scenario.step]]`s,
//! or the top-level `[[step]]`s as one implicit scenario. Each test execution picks one by
//! weight from its user's random stream ([`Scenarios::pick`]).

use std::collections::HashSet;
use std::ops::Range;

use rand::Rng;
use toml::Spanned;

use super::error::Source;
use super::raw::{RawScenario, RawStep};
use super::step::{step, StepDefaults};
use super::{Step, TestDefError};

/// One scenario: a journey through some of the plan's steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenario {
    /// Unique within the test; its steps are named `name/step` (empty for the implicit one).
    pub name: String,
    /// Relative weight, at least 1: a scenario of weight 8 runs four times as often as one
    /// of weight 2.
    pub weight: u32,
    /// Its steps: a range of [`super::TestPlan::steps`], in order, never empty.
    pub steps: Range<usize>,
}

/// The test's scenarios and how often each runs.
#[derive(Debug, Clone)]
pub struct Scenarios {
    list: Vec<Scenario>,
    /// True when written as `[[scenario]]`s (then results count tests per scenario).
    explicit: bool,
    /// Running sums of the weights: scenario `i` is picked for draws below `cumulative[i]`.
    cumulative: Vec<u64>,
}

impl Scenarios {
    /// The top-level steps (`0..steps`) as one scenario of weight 1.
    pub fn implicit(steps: usize) -> Scenarios {
        Scenarios {
            list: vec![Scenario {
                name: String::new(),
                weight: 1,
                steps: 0..steps,
            }],
            explicit: false,
            cumulative: vec![1],
        }
    }

    /// Scenarios as written; `list` is not empty.
    pub fn explicit(list: Vec<Scenario>) -> Scenarios {
        let cumulative = list
            .iter()
            .scan(0u64, |sum, s| {
                *sum += u64::from(s.weight);
                Some(*sum)
            })
            .collect();
        Scenarios {
            list,
            explicit: true,
            cumulative,
        }
    }

    /// Every scenario, the implicit one included.
    pub fn all(&self) -> &[Scenario] {
        &self.list
    }

    /// The scenarios results count apart: those written as `[[scenario]]`, none for a test
    /// of top-level steps.
    pub fn recorded(&self) -> &[Scenario] {
        if self.explicit {
            &self.list
        } else {
            &[]
        }
    }

    /// The scenario of one test execution, drawn by weight; a lone scenario draws nothing.
    #[inline]
    pub fn pick(&self, rng: &mut impl Rng) -> usize {
        if self.list.len() == 1 {
            return 0;
        }
        let total = *self.cumulative.last().expect("at least one scenario");
        let draw = rng.gen_range(0..total);
        self.cumulative.partition_point(|c| *c <= draw)
    }
}

/// Validates and compiles the `[[scenario]]`s, appending their steps (named `scenario/step`)
/// to `steps`.
pub(crate) fn scenarios(
    src: &Source<'_>,
    raw: Spanned<Vec<Spanned<RawScenario>>>,
    steps: &mut Vec<Step>,
    data: &HashSet<String>,
    defaults: StepDefaults,
) -> Result<Scenarios, TestDefError> {
    if raw.get_ref().is_empty() {
        return Err(src.error(raw.span(), "scenario", "the list of scenarios is empty"));
    }
    let mut list: Vec<Scenario> = Vec::new();
    for (i, raw) in raw.into_inner().into_iter().enumerate() {
        let span = raw.span();
        let raw = raw.into_inner();
        let at = format!("[[scenario]] #{}", i + 1);
        let name = raw.name.get_ref().trim().to_string();
        if name.is_empty() || name.contains('/') {
            return Err(src.error(
                raw.name.span(),
                &format!("{at} name"),
                "give a name without `/` (its steps are named scenario/step)",
            ));
        }
        if let Some(first) = list.iter().position(|s| s.name == name) {
            return Err(src.error(
                raw.name.span(),
                &format!("{at} name"),
                format!("{name:?} is already the name of scenario #{}", first + 1),
            ));
        }
        let weight = match &raw.weight {
            None => 1,
            Some(w) => u32::try_from(*w.get_ref())
                .ok()
                .filter(|w| *w > 0)
                .ok_or_else(|| {
                    src.error(
                        w.span(),
                        &format!("{at} weight"),
                        format!(
                            "{} is not a weight: give a whole number, at least 1",
                            w.get_ref()
                        ),
                    )
                })?,
        };
        let Some(raw_steps) = raw.step.filter(|s| !s.get_ref().is_empty()) else {
            return Err(src.error(
                span,
                &at,
                format!("scenario {name:?} has no steps: add [[scenario.step]] tables after it"),
            ));
        };
        let first = steps.len();
        let section = format!("{at} {name:?} [[scenario.step]]");
        compile_steps(src, &section, raw_steps.into_inner(), steps, data, defaults)?;
        for s in &mut steps[first..] {
            s.name = format!("{name}/{}", s.name);
        }
        list.push(Scenario {
            name,
            weight,
            steps: first..steps.len(),
        });
    }
    Ok(Scenarios::explicit(list))
}

/// Compiles a list of steps (`[[step]]` or one scenario's) onto `steps`: names unique within
/// the list, captures seen by the steps after them.
pub(crate) fn compile_steps(
    src: &Source<'_>,
    section: &str,
    raw: Vec<Spanned<RawStep>>,
    steps: &mut Vec<Step>,
    data: &HashSet<String>,
    defaults: StepDefaults,
) -> Result<(), TestDefError> {
    let first = steps.len();
    let mut captured: HashSet<String> = data.clone();
    for (i, raw_step) in raw.into_iter().enumerate() {
        let span = raw_step.span();
        let step = step(
            src,
            section,
            i,
            span.clone(),
            raw_step.into_inner(),
            &captured,
            defaults,
        )?;
        if let Some(earlier) = steps[first..].iter().position(|s| s.name == step.name) {
            return Err(src.error(
                span,
                &format!("{section} #{}", i + 1),
                format!(
                    "step name {:?} is already used by step #{}; give each step its own name",
                    step.name,
                    earlier + 1
                ),
            ));
        }
        captured.extend(step.captures.iter().map(|c| c.name.clone()));
        steps.push(step);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    fn mix(weights: &[u32]) -> Scenarios {
        Scenarios::explicit(
            weights
                .iter()
                .enumerate()
                .map(|(i, w)| Scenario {
                    name: format!("s{i}"),
                    weight: *w,
                    steps: i..i + 1,
                })
                .collect(),
        )
    }

    #[test]
    fn picks_follow_the_weights() {
        let s = mix(&[8, 2, 10]);
        let mut rng = SmallRng::seed_from_u64(7);
        let mut counts = [0u32; 3];
        for _ in 0..100_000 {
            counts[s.pick(&mut rng)] += 1;
        }
        for (c, w) in counts.iter().zip([0.4, 0.1, 0.5]) {
            assert!((f64::from(*c) / 100_000.0 - w).abs() < 0.01, "{counts:?}");
        }
    }

    #[test]
    fn a_lone_scenario_draws_nothing() {
        let s = Scenarios::implicit(3);
        let mut rng = SmallRng::seed_from_u64(1);
        let before = rng.clone().gen::<u64>();
        assert_eq!(s.pick(&mut rng), 0);
        assert_eq!(rng.gen::<u64>(), before);
        assert!(s.recorded().is_empty());
    }
}
