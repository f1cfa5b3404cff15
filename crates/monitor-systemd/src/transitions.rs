//! From observed unit states to the running/not-running changes to report, with the crashes
//! that systemd's signal coalescing hides put back in.
//!
//! systemd queues a unit for a `PropertiesChanged` signal and sends it later with the values of
//! that moment, so a `Restart=always` service that dies and is back within ~100 ms can show
//! only `active` → `active`. Its `NRestarts` counter still grows by one per automatic restart,
//! and every automatic restart follows a stop. So each restart that was not matched by an
//! observed change to not-running stands for a down and an up we did not see.

/// More restarts than this in one observation (after a long disconnection, say) are reported
/// as this many down/up pairs: enough for any flapping threshold, not a flood.
pub(crate) const MAX_SYNTHESIZED_RESTARTS: u32 = 1000;

/// Per unit: what was last reported and how many restarts have been accounted for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RunningTracker {
    /// The last `running` reported; `None` before the first observation.
    reported: Option<bool>,
    /// `NRestarts` at the last observation.
    restarts_accounted: u32,
    /// Changes to not-running reported since the unit was last up that no restart has been
    /// matched to yet (the restart after a crash is counted after the crash is seen).
    unmatched_downs: u32,
}

impl RunningTracker {
    /// Takes the unit's current `running` and `NRestarts` and returns the `running` values to
    /// report, in order. `force` reports the current value even when it did not change (first
    /// read after a reconnect). The very first observation is always reported.
    pub(crate) fn observe(&mut self, running: bool, n_restarts: u32, force: bool) -> Vec<bool> {
        let Some(reported) = self.reported else {
            self.reported = Some(running);
            self.restarts_accounted = n_restarts;
            // A unit found down may be about to be restarted: that restart is this down's.
            self.unmatched_downs = u32::from(!running);
            return vec![running];
        };
        // NRestarts only shrinks when a start by hand flushed it to 0; what it shows now was
        // counted since then.
        let restarts = if n_restarts >= self.restarts_accounted {
            n_restarts - self.restarts_accounted
        } else {
            n_restarts
        };
        if reported && !running {
            self.unmatched_downs += 1;
        }
        let matched = self.unmatched_downs.min(restarts);
        self.unmatched_downs -= matched;
        let missed = (restarts - matched).min(MAX_SYNTHESIZED_RESTARTS);
        if restarts - matched > MAX_SYNTHESIZED_RESTARTS {
            tracing::warn!(
                restarts = restarts - matched,
                reported = MAX_SYNTHESIZED_RESTARTS,
                "more unseen restarts than are reported one by one"
            );
        }

        let mut changes = Vec::with_capacity(2 * missed as usize + 1);
        for _ in 0..missed {
            // Each unseen restart left the unit where it was before: the other state and back.
            changes.push(!reported);
            changes.push(reported);
        }
        if running != reported || force {
            changes.push(running);
        }
        if running {
            // Downs not followed by a restart were stops or final crashes, not restarts.
            self.unmatched_downs = 0;
        }
        self.reported = Some(running);
        self.restarts_accounted = n_restarts;
        changes
    }

    /// The last `running` reported.
    pub(crate) fn reported(&self) -> Option<bool> {
        self.reported
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_observation_is_reported_whatever_it_is() {
        assert_eq!(RunningTracker::default().observe(true, 5, false), [true]);
        assert_eq!(RunningTracker::default().observe(false, 0, false), [false]);
    }

    #[test]
    fn only_changes_are_reported_unless_forced() {
        let mut tracker = RunningTracker::default();
        tracker.observe(true, 0, false);
        assert_eq!(tracker.observe(true, 0, false), Vec::<bool>::new());
        assert_eq!(tracker.observe(true, 0, true), [true]);
        assert_eq!(tracker.observe(false, 0, false), [false]);
        assert_eq!(tracker.observe(false, 0, false), Vec::<bool>::new());
        assert_eq!(tracker.observe(true, 0, false), [true]);
        assert_eq!(tracker.reported(), Some(true));
    }

    #[test]
    fn a_fully_observed_restart_is_one_down_and_one_up() {
        let mut tracker = RunningTracker::default();
        tracker.observe(true, 0, false);
        // failed, then NRestarts grows with the restart job, then active again.
        assert_eq!(tracker.observe(false, 0, false), [false]);
        assert_eq!(tracker.observe(false, 1, false), Vec::<bool>::new());
        assert_eq!(tracker.observe(true, 1, false), [true]);
    }

    #[test]
    fn a_crash_seen_together_with_its_restart_is_one_down() {
        let mut tracker = RunningTracker::default();
        tracker.observe(true, 0, false);
        assert_eq!(tracker.observe(false, 1, false), [false]);
        assert_eq!(tracker.observe(true, 1, false), [true]);
    }

    #[test]
    fn a_restart_hidden_by_coalescing_is_a_down_and_an_up() {
        let mut tracker = RunningTracker::default();
        tracker.observe(true, 0, false);
        assert_eq!(tracker.observe(true, 1, false), [false, true]);
        assert_eq!(
            tracker.observe(true, 4, false),
            [false, true, false, true, false, true]
        );
    }

    #[test]
    fn hidden_restarts_before_a_seen_crash_come_first() {
        let mut tracker = RunningTracker::default();
        tracker.observe(true, 0, false);
        assert_eq!(tracker.observe(false, 2, false), [false, true, false]);
        assert_eq!(tracker.observe(true, 2, false), [true]);
    }

    #[test]
    fn hidden_ups_while_down_are_an_up_and_a_down() {
        let mut tracker = RunningTracker::default();
        tracker.observe(true, 0, false);
        assert_eq!(tracker.observe(false, 0, false), [false]);
        // Restart 1 matches the seen crash; restart 2 hides an up and a crash.
        assert_eq!(tracker.observe(false, 2, false), [true, false]);
        assert_eq!(tracker.observe(true, 2, false), [true]);
    }

    #[test]
    fn a_unit_found_down_owns_its_next_restart() {
        let mut tracker = RunningTracker::default();
        assert_eq!(tracker.observe(false, 3, false), [false]);
        assert_eq!(tracker.observe(true, 4, false), [true]);
    }

    #[test]
    fn a_stop_and_a_start_by_hand_flush_the_counter_without_inventing_crashes() {
        let mut tracker = RunningTracker::default();
        tracker.observe(true, 7, false);
        assert_eq!(tracker.observe(false, 7, false), [false]);
        assert_eq!(tracker.observe(true, 0, false), [true]);
        // A later crash loop counts from the flushed counter.
        assert_eq!(tracker.observe(true, 2, false), [false, true, false, true]);
    }

    #[test]
    fn a_stop_is_not_matched_to_a_later_restart() {
        let mut tracker = RunningTracker::default();
        tracker.observe(true, 0, false);
        assert_eq!(tracker.observe(false, 0, false), [false]);
        assert_eq!(tracker.observe(true, 0, false), [true]);
        assert_eq!(tracker.observe(true, 1, false), [false, true]);
    }

    #[test]
    fn restarts_during_a_disconnection_are_reported_on_the_forced_reread() {
        let mut tracker = RunningTracker::default();
        tracker.observe(true, 1, false);
        assert_eq!(
            tracker.observe(true, 3, true),
            [false, true, false, true, true]
        );
    }

    #[test]
    fn a_huge_restart_count_is_capped() {
        let mut tracker = RunningTracker::default();
        tracker.observe(true, 0, false);
        let changes = tracker.observe(true, 1_000_000, false);
        assert_eq!(changes.len(), 2 * MAX_SYNTHESIZED_RESTARTS as usize);
    }

    #[test]
    fn every_down_matches_a_restart_in_any_crash_loop_interleaving() {
        // A crash loop observed through any subset of its states: the downs reported equal the
        // restarts once the unit is seen up again.
        let states: Vec<(bool, u32)> = (0..6u32)
            .flat_map(|restart| [(false, restart), (false, restart + 1), (true, restart + 1)])
            .collect();
        for mask in 0u32..(1 << states.len()) {
            let mut tracker = RunningTracker::default();
            let mut downs = 0;
            let mut ups = 0;
            for change in tracker.observe(true, 0, false) {
                if change {
                    ups += 1
                } else {
                    downs += 1
                }
            }
            let seen = states
                .iter()
                .enumerate()
                .filter(|(index, _)| mask & (1 << index) != 0 || *index == states.len() - 1);
            for (_, &(running, n_restarts)) in seen {
                for change in tracker.observe(running, n_restarts, false) {
                    if change {
                        ups += 1
                    } else {
                        downs += 1
                    }
                }
            }
            assert_eq!(downs, 6, "mask {mask:b}");
            assert_eq!(ups, 7, "mask {mask:b}");
        }
    }
}
