//! The rise/fall state machine of one address, without I/O: check results in, a new
//! verdict out when one is reached.

use super::Health;

/// Consecutive check results of one address and the verdict they led to.
///
/// An address becomes [`Health::Up`] after `rise` consecutive successes and
/// [`Health::Down`] after `fall` consecutive failures; until either happens it stays
/// [`Health::Unchecked`]. A result against the current streak starts a new streak, so
/// one odd result never flips a verdict (unless `rise` or `fall` is 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hysteresis {
    health: Health,
    successes: u32,
    failures: u32,
}

impl Default for Hysteresis {
    fn default() -> Self {
        Hysteresis {
            health: Health::Unchecked,
            successes: 0,
            failures: 0,
        }
    }
}

impl Hysteresis {
    /// The verdict so far: `Unchecked`, `Up` or `Down` (never `Drained`).
    pub fn health(&self) -> Health {
        self.health
    }

    /// Records one check result; returns the new verdict if it changed.
    pub fn observe(&mut self, ok: bool, rise: u32, fall: u32) -> Option<Health> {
        if ok {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
        }
        let next = if self.health != Health::Up && self.successes >= rise {
            Health::Up
        } else if self.health != Health::Down && self.failures >= fall {
            Health::Down
        } else {
            return None;
        };
        self.health = next;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Health::{Down, Unchecked, Up};

    /// Replays `results` ('+' success, '-' failure) and returns the verdict after each.
    fn run(rise: u32, fall: u32, results: &str) -> Vec<Health> {
        let mut h = Hysteresis::default();
        results
            .chars()
            .map(|c| {
                let before = h.health();
                let changed = h.observe(c == '+', rise, fall);
                // `observe` reports exactly the changes.
                assert_eq!(changed.is_some(), h.health() != before, "{results}");
                h.health()
            })
            .collect()
    }

    #[test]
    fn rise_and_fall() {
        let table: &[(u32, u32, &str, &[Health])] = &[
            // First verdict needs a full streak either way.
            (2, 3, "+", &[Unchecked]),
            (2, 3, "++", &[Unchecked, Up]),
            (2, 3, "--", &[Unchecked, Unchecked]),
            (2, 3, "---", &[Unchecked, Unchecked, Down]),
            // A mixed start never reaches a verdict.
            (2, 3, "+-+-+-", &[Unchecked; 6]),
            (2, 3, "--+--+", &[Unchecked; 6]),
            // Up falls only after `fall` failures in a row.
            (2, 3, "++--+---", &[Unchecked, Up, Up, Up, Up, Up, Up, Down]),
            // Down rises only after `rise` successes in a row.
            (
                2,
                3,
                "---+-++",
                &[Unchecked, Unchecked, Down, Down, Down, Down, Up],
            ),
            // rise = fall = 1: every result is a verdict.
            (1, 1, "+-+", &[Up, Down, Up]),
            // Long streaks stay put.
            (1, 1, "++++", &[Up; 4]),
            (3, 1, "-----", &[Down; 5]),
        ];
        for &(rise, fall, results, expected) in table {
            assert_eq!(
                run(rise, fall, results),
                expected,
                "rise {rise} fall {fall} results {results}"
            );
        }
    }

    #[test]
    fn streaks_saturate() {
        let mut h = Hysteresis {
            health: Up,
            successes: u32::MAX,
            failures: 0,
        };
        assert_eq!(h.observe(true, 2, 2), None);
        assert_eq!(h.observe(false, 2, 2), None);
        assert_eq!(h.observe(false, 2, 2), Some(Down));
    }
}
