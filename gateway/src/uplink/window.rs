//! Send window of the uplink, sans-IO: which blocks are in flight, which
//! must be sent again, and how the live stream and the backlog share the
//! window after a reconnect.
//!
//! Blocks appended after the connection came up are "live" and always go
//! first; older un-acknowledged blocks are the "backlog", sent oldest first
//! in the slots live traffic leaves free. Nothing here deletes data: the
//! ring buffer deletes a block only when the hub's ack arrives.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Live,
    Backlog,
}

#[derive(Debug, Clone)]
pub struct SendWindow {
    max_in_flight: usize,
    resend_after_ms: i64,
    /// seq -> time it was last sent.
    in_flight: BTreeMap<u64, i64>,
    /// First seq of the live lane (next_seq when the link came up).
    live_from: u64,
    /// Highest seq handed out per lane.
    live_sent_through: u64,
    backlog_sent_through: u64,
    backlog_done: bool,
}

/// What the IO shell should do next.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// In-flight blocks whose ack is overdue: send again.
    pub resend: Vec<u64>,
    /// Free slots in the window.
    pub free: usize,
}

impl SendWindow {
    pub fn new(max_in_flight: usize, resend_after_ms: u64) -> SendWindow {
        SendWindow {
            max_in_flight: max_in_flight.max(1),
            resend_after_ms: resend_after_ms as i64,
            in_flight: BTreeMap::new(),
            live_from: 1,
            live_sent_through: 0,
            backlog_sent_through: 0,
            backlog_done: true,
        }
    }

    /// The link came (back) up. Everything un-acked is backlog again, sent
    /// from the oldest; blocks from `next_seq` on are live.
    pub fn on_connected(&mut self, next_seq: u64) {
        self.in_flight.clear();
        self.live_from = next_seq;
        self.live_sent_through = next_seq.saturating_sub(1);
        self.backlog_sent_through = 0;
        self.backlog_done = false;
    }

    pub fn plan(&mut self, now_ms: i64) -> Plan {
        let resend: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, sent)| now_ms - **sent >= self.resend_after_ms)
            .map(|(seq, _)| *seq)
            .collect();
        Plan {
            resend,
            free: self.max_in_flight.saturating_sub(self.in_flight.len()),
        }
    }

    /// Cursor after which the lane's next blocks are read.
    pub fn cursor(&self, lane: Lane) -> u64 {
        match lane {
            Lane::Live => self.live_sent_through,
            Lane::Backlog => self.backlog_sent_through,
        }
    }

    /// Whether a block read after the backlog cursor still belongs to it.
    pub fn in_backlog(&self, seq: u64) -> bool {
        seq < self.live_from
    }

    pub fn backlog_pending(&self) -> bool {
        !self.backlog_done
    }

    /// The backlog has no block left below the live lane.
    pub fn backlog_finished(&mut self) {
        self.backlog_done = true;
        self.backlog_sent_through = self.live_from.saturating_sub(1);
    }

    pub fn mark_sent(&mut self, seq: u64, lane: Lane, now_ms: i64) {
        self.in_flight.insert(seq, now_ms);
        match lane {
            Lane::Live => self.live_sent_through = self.live_sent_through.max(seq),
            Lane::Backlog => self.backlog_sent_through = self.backlog_sent_through.max(seq),
        }
    }

    /// An overdue block went out again.
    pub fn mark_resent(&mut self, seq: u64, now_ms: i64) {
        if let Some(sent) = self.in_flight.get_mut(&seq) {
            *sent = now_ms;
        }
    }

    /// A block vanished from the buffer (dropped by policy) while in flight.
    pub fn forget(&mut self, seq: u64) {
        self.in_flight.remove(&seq);
    }

    /// Applies acknowledged (committed or refused) ranges; returns how many
    /// in-flight blocks they settled.
    pub fn on_ack(&mut self, ranges: &[(u64, u64)]) -> usize {
        let mut n = 0;
        for (lo, hi) in ranges {
            if lo > hi {
                continue;
            }
            let settled: Vec<u64> = self.in_flight.range(*lo..=*hi).map(|(s, _)| *s).collect();
            for s in settled {
                self.in_flight.remove(&s);
                n += 1;
            }
        }
        n
    }

    /// Everything in flight must go again at once (the hub lacked the
    /// catalog for it, say).
    pub fn resend_all_now(&mut self) {
        for sent in self.in_flight.values_mut() {
            *sent = i64::MIN / 2;
        }
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_and_backlog_share_the_window() {
        let mut w = SendWindow::new(4, 1000);
        w.on_connected(100);
        assert_eq!(w.cursor(Lane::Live), 99);
        assert_eq!(w.cursor(Lane::Backlog), 0);
        assert!(w.in_backlog(99) && !w.in_backlog(100));
        w.mark_sent(100, Lane::Live, 0);
        w.mark_sent(5, Lane::Backlog, 0);
        w.mark_sent(6, Lane::Backlog, 0);
        assert_eq!(w.plan(10).free, 1);
        assert_eq!(w.cursor(Lane::Backlog), 6);
        assert_eq!(w.on_ack(&[(5, 6)]), 2);
        assert_eq!(w.plan(10).free, 3);
        w.backlog_finished();
        assert!(!w.backlog_pending());
        assert_eq!(w.cursor(Lane::Backlog), 99);
    }

    #[test]
    fn overdue_blocks_are_resent_and_reconnect_resets() {
        let mut w = SendWindow::new(8, 1000);
        w.on_connected(1);
        w.mark_sent(1, Lane::Live, 0);
        w.mark_sent(2, Lane::Live, 500);
        assert_eq!(w.plan(999).resend, Vec::<u64>::new());
        assert_eq!(w.plan(1000).resend, vec![1]);
        w.resend_all_now();
        assert_eq!(w.plan(600).resend, vec![1, 2]);
        w.on_connected(3);
        assert_eq!(w.in_flight(), 0);
        assert_eq!(w.cursor(Lane::Backlog), 0);
        assert!(w.backlog_pending());
    }

    #[test]
    fn acks_for_unknown_or_inverted_ranges_are_harmless() {
        let mut w = SendWindow::new(2, 1000);
        w.on_connected(1);
        w.mark_sent(1, Lane::Live, 0);
        assert_eq!(w.on_ack(&[(5, 3), (7, 9)]), 0);
        assert_eq!(w.in_flight(), 1);
    }
}
