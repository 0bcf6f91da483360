//! When the points of an outstation turn Bad and when they are read again,
//! sans-IO.
//!
//! A lost connection, a failed connection attempt or a request the
//! outstation did not answer (timeout, malformed answer) marks every point
//! Bad once (one batch, stamped with the time of the failure),
//! not at every retry. The next successful read clears that; if it was not
//! the startup integrity poll the stack makes after every reconnect, the
//! driver asks for an integrity poll at once, so the points do not stay
//! Bad until the next periodic one.

use crate::handlers::LinkEvent;

/// What the driver does after a [`LinkEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HealthAction {
    Nothing,
    /// Send a Bad sample for every point, stamped `at_ms`.
    MarkBad {
        at_ms: i64,
    },
    /// Read classes 1, 2, 3 and 0 now.
    IntegrityPoll,
}

#[derive(Debug, Default)]
pub(crate) struct Health {
    marked_bad: bool,
}

impl Health {
    pub(crate) fn on_event(&mut self, event: LinkEvent) -> HealthAction {
        match event {
            LinkEvent::Connected => HealthAction::Nothing,
            LinkEvent::Lost { at_ms } | LinkEvent::NoAnswer { at_ms } => {
                if self.marked_bad {
                    HealthAction::Nothing
                } else {
                    self.marked_bad = true;
                    HealthAction::MarkBad { at_ms }
                }
            }
            LinkEvent::ReadOk { startup_integrity } => {
                let was_bad = std::mem::take(&mut self.marked_bad);
                if was_bad && !startup_integrity {
                    HealthAction::IntegrityPoll
                } else {
                    HealthAction::Nothing
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_once_per_outage_then_recovered() {
        let mut h = Health::default();
        assert_eq!(
            h.on_event(LinkEvent::Lost { at_ms: 5 }),
            HealthAction::MarkBad { at_ms: 5 }
        );
        assert_eq!(
            h.on_event(LinkEvent::Lost { at_ms: 9 }),
            HealthAction::Nothing
        );
        assert_eq!(h.on_event(LinkEvent::Connected), HealthAction::Nothing);
        assert_eq!(
            h.on_event(LinkEvent::ReadOk {
                startup_integrity: true
            }),
            HealthAction::Nothing
        );
        assert_eq!(
            h.on_event(LinkEvent::ReadOk {
                startup_integrity: false
            }),
            HealthAction::Nothing
        );
        // A timed-out poll on a live connection: Bad, then re-read all.
        assert_eq!(
            h.on_event(LinkEvent::NoAnswer { at_ms: 20 }),
            HealthAction::MarkBad { at_ms: 20 }
        );
        assert_eq!(
            h.on_event(LinkEvent::ReadOk {
                startup_integrity: false
            }),
            HealthAction::IntegrityPoll
        );
        assert_eq!(
            h.on_event(LinkEvent::ReadOk {
                startup_integrity: false
            }),
            HealthAction::Nothing
        );
    }
}
