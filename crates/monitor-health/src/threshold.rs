//! Whether a check's condition holds, sample after sample: a threshold with hysteresis
//! (raise at `raise`, clear only past `clear`) and a debounce (`for`: that many
//! consecutive samples beyond the line before the condition changes), so a value hovering
//! at the line does not flap. Pure: no clock, no I/O; the caller feeds it samples.

use crate::Reading;

/// Which side of the line is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// High values are bad (disk use, temperature).
    Above,
    /// Low values are bad (free bytes, available memory).
    Below,
}

/// Where a value starts and stops being bad. For [`Direction::Above`], `clear <= raise`;
/// for [`Direction::Below`], `clear >= raise` (the caller validates it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Threshold {
    pub raise: f64,
    pub clear: f64,
    pub direction: Direction,
}

impl Threshold {
    /// The value reached or passed `raise`.
    pub fn reached(&self, value: f64) -> bool {
        match self.direction {
            Direction::Above => value >= self.raise,
            Direction::Below => value <= self.raise,
        }
    }

    /// The value is past `clear`, on the good side (`clear` itself is not past it).
    pub fn cleared(&self, value: f64) -> bool {
        match self.direction {
            Direction::Above => value < self.clear,
            Direction::Below => value > self.clear,
        }
    }
}

/// One check's state across samples.
#[derive(Debug, Clone, PartialEq)]
pub struct Hysteresis {
    threshold: Option<Threshold>,
    /// Consecutive samples beyond the line that change the state (at least 1).
    samples: u32,
    holds: bool,
    /// Consecutive samples so far that point to the other state.
    streak: u32,
}

impl Hysteresis {
    /// `threshold`: for [`Reading::Value`]s (`None`: a value never makes the condition
    /// hold); `samples`: the `for` debounce as a count of samples (0 counts as 1).
    pub fn new(threshold: Option<Threshold>, samples: u32) -> Self {
        Hysteresis {
            threshold,
            samples: samples.max(1),
            holds: false,
            streak: 0,
        }
    }

    /// Whether the condition holds after this sample; `None` for [`Reading::Unavailable`]
    /// (nothing is known; the streak starts over, as the samples are not consecutive).
    pub fn feed(&mut self, reading: &Reading) -> Option<bool> {
        let towards_other_state = match reading {
            Reading::Unavailable(_) => {
                self.streak = 0;
                return None;
            }
            Reading::Verdict { bad, .. } => *bad != self.holds,
            Reading::Value { value, .. } => match &self.threshold {
                None => self.holds,
                Some(threshold) if self.holds => threshold.cleared(*value),
                Some(threshold) => threshold.reached(*value),
            },
        };
        if towards_other_state {
            self.streak += 1;
            if self.streak >= self.samples {
                self.holds = !self.holds;
                self.streak = 0;
            }
        } else {
            self.streak = 0;
        }
        Some(self.holds)
    }

    /// Whether the condition held after the last sample (false before the first).
    pub fn holds(&self) -> bool {
        self.holds
    }

    pub fn threshold(&self) -> Option<&Threshold> {
        self.threshold.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Unit;

    fn value(value: f64) -> Reading {
        Reading::Value {
            value,
            unit: Unit::Percent,
            what: "Disk / {value} used".into(),
        }
    }

    fn feed_all(hysteresis: &mut Hysteresis, values: &[f64]) -> Vec<bool> {
        values
            .iter()
            .map(|&v| hysteresis.feed(&value(v)).unwrap())
            .collect()
    }

    const ABOVE_90_CLEAR_85: Threshold = Threshold {
        raise: 90.0,
        clear: 85.0,
        direction: Direction::Above,
    };

    #[test]
    fn raises_at_the_threshold_and_clears_only_past_the_clear_threshold() {
        let mut hysteresis = Hysteresis::new(Some(ABOVE_90_CLEAR_85), 1);
        assert_eq!(
            feed_all(&mut hysteresis, &[50.0, 89.9, 90.0, 87.0, 85.0, 84.9, 89.0]),
            [false, false, true, true, true, false, false]
        );
    }

    #[test]
    fn a_value_hovering_at_the_line_does_not_flap() {
        let mut hysteresis = Hysteresis::new(Some(ABOVE_90_CLEAR_85), 1);
        let hovering = [89.0, 90.0, 89.0, 91.0, 89.5, 90.0, 88.0, 90.5, 86.0];
        let states = feed_all(&mut hysteresis, &hovering);
        let changes = states.windows(2).filter(|pair| pair[0] != pair[1]).count();
        assert_eq!(changes, 1, "{states:?}");
        assert!(states.last().copied().unwrap());
    }

    #[test]
    fn without_a_clear_band_the_debounce_keeps_it_from_flapping() {
        let line = Threshold {
            raise: 90.0,
            clear: 90.0,
            direction: Direction::Above,
        };
        let mut hysteresis = Hysteresis::new(Some(line), 3);
        // Never three in a row on one side: never changes.
        let states = feed_all(&mut hysteresis, &[91.0, 92.0, 89.0, 91.0, 91.0, 80.0]);
        assert!(states.iter().all(|holds| !holds), "{states:?}");
        // Three in a row: raised at the third, cleared at the third below.
        assert_eq!(
            feed_all(
                &mut hysteresis,
                &[91.0, 91.0, 91.0, 89.0, 89.0, 91.0, 89.0, 89.0, 89.0]
            ),
            [false, false, true, true, true, true, true, true, false]
        );
    }

    #[test]
    fn below_thresholds_raise_low_values() {
        let free = Threshold {
            raise: 1000.0,
            clear: 2000.0,
            direction: Direction::Below,
        };
        let mut hysteresis = Hysteresis::new(Some(free), 1);
        assert_eq!(
            feed_all(&mut hysteresis, &[5000.0, 1000.0, 1500.0, 2000.0, 2001.0]),
            [false, true, true, true, false]
        );
    }

    #[test]
    fn verdicts_debounce_and_unavailable_samples_break_the_streak() {
        let bad = |bad| Reading::Verdict {
            bad,
            text: String::new(),
        };
        let mut hysteresis = Hysteresis::new(None, 2);
        assert_eq!(hysteresis.feed(&bad(true)), Some(false));
        assert_eq!(hysteresis.feed(&Reading::Unavailable("gone".into())), None);
        assert_eq!(hysteresis.feed(&bad(true)), Some(false));
        assert_eq!(hysteresis.feed(&bad(true)), Some(true));
        assert_eq!(hysteresis.feed(&bad(false)), Some(true));
        assert_eq!(hysteresis.feed(&bad(false)), Some(false));
        // A value with no threshold never holds.
        assert_eq!(hysteresis.feed(&value(100.0)), Some(false));
    }
}
