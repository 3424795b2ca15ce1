//! The sink's own bounded queue: what waits for the broker, in order, and what is in flight.
//!
//! rumqttc forgets what it had not delivered when a broker starts a new session, so the sink
//! keeps every event until the broker acknowledged it: queued (waiting), sent (handed to the
//! client), unacked (written, QoS 1, no PUBACK yet). When the link breaks, sent and unacked
//! events go back to the front of the queue in their order. Messages that are rebuilt at
//! each connection (availability, discovery, states, level, status) are "volatile": they are
//! never queued while the broker is away.

use std::collections::VecDeque;

use rumqttc::{AsyncClient, QoS};

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    pub topic: String,
    pub payload: String,
    pub qos: QoS,
    pub retain: bool,
    /// Kept across a broken link (events); false for messages rebuilt at each connection.
    pub durable: bool,
    seq: u64,
}

impl Msg {
    pub fn new(topic: String, payload: String, qos: QoS, retain: bool, durable: bool) -> Msg {
        Msg {
            topic,
            payload,
            qos,
            retain,
            durable,
            seq: 0,
        }
    }
}

/// What one push did.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    Queued,
    /// A volatile message while the broker is away: not needed, rebuilt on connection.
    Skipped,
    /// The queue was full: the message is lost.
    Dropped,
}

#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<Msg>,
    sent: VecDeque<Msg>,
    unacked: Vec<(u16, Msg)>,
    cap: usize,
    next_seq: u64,
    pub connected: bool,
}

impl Outbox {
    pub fn new(cap: usize) -> Outbox {
        Outbox {
            queue: VecDeque::new(),
            sent: VecDeque::new(),
            unacked: Vec::new(),
            cap,
            next_seq: 0,
            connected: false,
        }
    }

    pub fn set_cap(&mut self, cap: usize) {
        self.cap = cap;
    }

    /// Durable messages waiting or in flight.
    pub fn pending(&self) -> usize {
        self.queue.len() + self.sent.len() + self.unacked.len()
    }

    pub fn is_idle(&self) -> bool {
        self.pending() == 0
    }

    fn stamp(&mut self, mut m: Msg) -> Msg {
        m.seq = self.next_seq;
        self.next_seq += 1;
        m
    }

    /// At the back of the queue.
    pub fn push(&mut self, m: Msg) -> Pushed {
        if !self.connected && !m.durable {
            return Pushed::Skipped;
        }
        if m.durable && self.queue.iter().filter(|q| q.durable).count() >= self.cap {
            return Pushed::Dropped;
        }
        let m = self.stamp(m);
        self.queue.push_back(m);
        Pushed::Queued
    }

    /// Ahead of everything queued (the announcements of a new connection), in their order.
    pub fn push_front(&mut self, msgs: Vec<Msg>) {
        let stamped: Vec<Msg> = msgs.into_iter().map(|m| self.stamp(m)).collect();
        for m in stamped.into_iter().rev() {
            self.queue.push_front(m);
        }
    }

    /// Hand queued messages to the client while it has room and the link is up.
    pub fn pump(&mut self, client: &AsyncClient) {
        while self.connected && self.sent.len() < super::link::CLIENT_WINDOW {
            let Some(m) = self.queue.pop_front() else {
                return;
            };
            match client.try_publish(m.topic.clone(), m.qos, m.retain, m.payload.clone()) {
                Ok(()) => self.sent.push_back(m),
                Err(_) => {
                    self.queue.push_front(m);
                    return;
                }
            }
        }
    }

    /// The client wrote the oldest sent message with `pkid`; true when that completes it
    /// (QoS 0: written is all there is).
    pub fn written(&mut self, pkid: u16) -> bool {
        let Some(m) = self.sent.pop_front() else {
            return false;
        };
        if m.qos == QoS::AtMostOnce || pkid == 0 {
            true
        } else {
            self.unacked.push((pkid, m));
            false
        }
    }

    /// The broker acknowledged `pkid`; true when it was one of ours.
    pub fn acked(&mut self, pkid: u16) -> bool {
        match self.unacked.iter().position(|(p, _)| *p == pkid) {
            Some(i) => {
                self.unacked.remove(i);
                true
            }
            None => false,
        }
    }

    /// The link broke: durable messages in flight go back to the front, in order; volatile
    /// ones are forgotten (rebuilt at the next connection). Returns how many were dropped
    /// because the queue is over its bound.
    pub fn link_down(&mut self) -> usize {
        self.connected = false;
        let mut back: Vec<Msg> = self.unacked.drain(..).map(|(_, m)| m).collect();
        back.extend(self.sent.drain(..));
        back.extend(self.queue.drain(..));
        back.retain(|m| m.durable);
        back.sort_by_key(|m| m.seq);
        let over = back.len().saturating_sub(self.cap);
        // The newest beyond the bound are lost, so what is kept stays in order.
        back.truncate(self.cap);
        self.queue = back.into();
        over
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u32) -> Msg {
        Msg::new("t".into(), n.to_string(), QoS::AtLeastOnce, false, true)
    }

    #[test]
    fn events_wait_in_order_within_the_bound_and_volatile_ones_are_skipped() {
        let mut o = Outbox::new(2);
        let state = Msg::new("s".into(), "ON".into(), QoS::AtLeastOnce, true, false);
        assert_eq!(o.push(state), Pushed::Skipped);
        assert_eq!(o.push(event(1)), Pushed::Queued);
        assert_eq!(o.push(event(2)), Pushed::Queued);
        assert_eq!(o.push(event(3)), Pushed::Dropped);
        assert_eq!(o.pending(), 2);
    }

    #[test]
    fn a_broken_link_puts_unacknowledged_events_back_in_front_in_order() {
        let mut o = Outbox::new(10);
        o.connected = true;
        for n in 1..=3 {
            o.push(event(n));
        }
        // As if the client took two: one written and unacked, one only sent.
        let first = o.queue.pop_front().unwrap();
        let second = o.queue.pop_front().unwrap();
        o.sent.push_back(first);
        o.sent.push_back(second);
        assert!(!o.written(7));
        assert!(!o.acked(9));
        assert_eq!(o.link_down(), 0);
        let order: Vec<_> = o.queue.iter().map(|m| m.payload.as_str()).collect();
        assert_eq!(order, ["1", "2", "3"]);
        o.connected = true;
        o.push_front(vec![Msg::new(
            "a".into(),
            "online".into(),
            QoS::AtLeastOnce,
            true,
            false,
        )]);
        assert_eq!(o.queue.front().unwrap().payload, "online");
    }
}
