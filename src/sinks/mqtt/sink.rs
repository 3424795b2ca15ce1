//! The MQTT sink's task: records from the fan-out become messages in the [`Outbox`]; link
//! reports move it along; reloads and model changes redo the discovery; the end flushes the
//! queue, says `offline` and disconnects. Commands on `set` are parsed here, handed to the
//! daemon, and answered on `set/result` once it applied or refused them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::QoS;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{info, warn};

use super::command::{self, Request, Requests};
use super::discovery::{self, Config, Device};
use super::link::{self, Link, LinkEvent};
use super::outbox::{Msg, Outbox, Pushed};
use super::topics::{self, LevelStats, Listened, Topics};
use super::{MqttSection, MqttSettings};
use crate::record::Record;
use crate::sinks::{RunningModel, SinkContext, SinkHealth};
use crate::validate::{Invalid, Problems};

/// How long the end waits for the queue to reach the broker.
const FLUSH: Duration = Duration::from_secs(4);

pub(super) struct MqttSink {
    section: MqttSection,
    model: Arc<RunningModel>,
    health: Arc<SinkHealth>,
    link: Option<Link>,
    topics: Topics,
    names: Vec<Listened>,
    /// Discovery configs now on the broker (to clear what a reload removes).
    discovered: Vec<Config>,
    /// ON / OFF by slug.
    states: BTreeMap<String, &'static str>,
    last: Option<String>,
    level: LevelStats,
    outbox: Outbox,
    birth_at: Option<Instant>,
    /// Whether this outage already logged a full queue.
    drop_logged: bool,
    /// Where commands go, and their answers on the way back (with each command's id).
    requests: Requests,
    replies: JoinSet<(Option<Value>, Result<(), Problems>)>,
}

pub(super) async fn run(mut ctx: SinkContext<MqttSection>, requests: Requests) {
    let section = ctx.settings.borrow_and_update().clone();
    let model = ctx.model.borrow_and_update().clone();
    let mut sink = MqttSink::new(section, model, ctx.health().clone(), requests);
    sink.connect();
    let mut ticker = level_ticker(&sink.section.mqtt);
    loop {
        tokio::select! {
            rec = ctx.records.next() => match rec {
                Some(rec) => sink.on_record(&rec),
                None => break,
            },
            Ok(()) = ctx.settings.changed() => {
                let new = ctx.settings.borrow_and_update().clone();
                if new.mqtt.level_interval != sink.section.mqtt.level_interval {
                    ticker = level_ticker(&new.mqtt);
                }
                sink.reload(new).await;
            }
            Ok(()) = ctx.model.changed() => {
                let model = ctx.model.borrow_and_update().clone();
                sink.model = model;
                sink.rediscover();
            }
            Some(ev) = next_event(&mut sink.link) => sink.on_link(ev),
            Some(Ok((id, result))) = sink.replies.join_next() => sink.reply(id.as_ref(), &result),
            _ = ticker.tick() => sink.publish_level(),
            () = birth(sink.birth_at) => {
                sink.birth_at = None;
                sink.announce(false);
            }
        }
        sink.pump();
    }
    // The last, partial interval's level.
    sink.publish_level();
    sink.close().await;
}

fn level_ticker(s: &MqttSettings) -> tokio::time::Interval {
    let every = Duration::from_secs_f64(s.level_interval.max(0.5));
    let mut t = tokio::time::interval_at(Instant::now() + every, every);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

async fn next_event(link: &mut Option<Link>) -> Option<LinkEvent> {
    match link {
        Some(l) => l.events.recv().await,
        None => std::future::pending().await,
    }
}

async fn birth(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A short random delay, so that a house of harks does not answer Home Assistant's birth
/// message all at once.
fn birth_delay() -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    Duration::from_millis(200 + u64::from(nanos % 1000))
}

impl MqttSink {
    fn new(
        section: MqttSection,
        model: Arc<RunningModel>,
        health: Arc<SinkHealth>,
        requests: Requests,
    ) -> MqttSink {
        let topics = Topics::new(&section.mqtt.topic_prefix, &section.mqtt.node());
        let names = topics::listened(&section.listen, &model.labels, &model.groups);
        let outbox = Outbox::new(section.mqtt.queue);
        MqttSink {
            section,
            model,
            health,
            link: None,
            topics,
            names,
            discovered: Vec::new(),
            states: BTreeMap::new(),
            last: None,
            level: LevelStats::default(),
            outbox,
            birth_at: None,
            drop_logged: false,
            requests,
            replies: JoinSet::new(),
        }
    }

    fn qos(&self) -> QoS {
        match self.section.mqtt.qos {
            0 => QoS::AtMostOnce,
            _ => QoS::AtLeastOnce,
        }
    }

    fn connect(&mut self) {
        let s = &self.section.mqtt;
        if !s.enabled {
            return;
        }
        match link::open(s, &self.topics) {
            Ok(l) => {
                info!(url = %s.url, node = %self.topics.node, "MQTT sink started");
                self.link = Some(l);
            }
            Err(e) => warn!(error = %e, "MQTT cannot start; events are not published to MQTT"),
        }
    }

    fn msg(&self, topic: String, payload: String, retain: bool, durable: bool) -> Msg {
        Msg::new(topic, payload, self.qos(), retain, durable)
    }

    fn push(&mut self, m: Msg) {
        if self.link.is_none() {
            return;
        }
        if self.outbox.push(m) == Pushed::Dropped {
            self.health.add("dropped", 1);
            if !self.drop_logged {
                warn!(
                    queue = self.section.mqtt.queue,
                    "MQTT queue full; events dropped until the broker is back (counted in status)"
                );
                self.drop_logged = true;
            }
        }
    }

    fn on_record(&mut self, rec: &Record) {
        match rec {
            Record::Prediction { level_db, .. } => self.level.add(*level_db),
            Record::EventStart { .. } | Record::EventEnd { .. } => self.on_event(rec),
            Record::Status {
                overruns,
                inference_ms,
                ..
            } => {
                let node = self.topics.node.clone();
                let status = topics::event_payload(rec, &node);
                let m = self.msg(self.topics.status(), status, false, false);
                self.push(m);
                let m = self.msg(
                    self.topics.status_field("overruns"),
                    overruns.to_string(),
                    true,
                    false,
                );
                self.push(m);
                let ms = format!("{:.2}", inference_ms);
                let m = self.msg(self.topics.status_field("inference_ms"), ms, true, false);
                self.push(m);
            }
        }
    }

    fn on_event(&mut self, rec: &Record) {
        let node = self.topics.node.clone();
        let m = self.msg(
            self.topics.event(),
            topics::event_payload(rec, &node),
            false,
            true,
        );
        self.push(m);
        let name = rec.event_name().unwrap_or_default().to_owned();
        let slug = self.slug_of(&name);
        let on = matches!(rec, Record::EventStart { .. });
        if let Some(detected) = topics::detected_payload(rec, &node) {
            let m = self.msg(self.topics.detected(), detected.clone(), false, true);
            self.push(m);
            let m = self.msg(self.topics.last(), detected.clone(), true, false);
            self.push(m);
            self.last = Some(detected);
        }
        let state = if on { "ON" } else { "OFF" };
        self.states.insert(slug.clone(), state);
        let m = self.msg(self.topics.state(&slug), state.into(), true, false);
        self.push(m);
    }

    fn slug_of(&self, name: &str) -> String {
        self.names
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.slug.clone())
            .unwrap_or_else(|| topics::slug(name))
    }

    fn publish_level(&mut self) {
        if let Some(level) = self.level.take() {
            let m = self.msg(self.topics.level(), level, false, false);
            self.push(m);
        }
    }

    fn on_link(&mut self, ev: LinkEvent) {
        match ev {
            LinkEvent::Connected => {
                self.outbox.connected = true;
                self.health.set("connected", 1);
                if self.drop_logged {
                    info!(dropped = self.health.get("dropped"), "MQTT broker back");
                    self.drop_logged = false;
                }
                self.subscribe();
                self.announce(true);
            }
            LinkEvent::Down => {
                self.health.set("connected", 0);
                let lost = self.outbox.link_down();
                self.health.add("dropped", lost as u64);
            }
            LinkEvent::Sent(pkid) => {
                if self.outbox.written(pkid) {
                    self.health.add("published", 1);
                }
            }
            LinkEvent::Acked(pkid) => {
                if self.outbox.acked(pkid) {
                    self.health.add("published", 1);
                }
            }
            LinkEvent::Birth => {
                if self.section.mqtt.homeassistant.discovery {
                    self.birth_at = Some(Instant::now() + birth_delay());
                }
            }
            LinkEvent::Command(payload) => self.on_command(&payload),
            LinkEvent::Closed => {}
        }
    }

    /// A payload on `set`: refused here if it is not a command, else handed to the daemon;
    /// either way answered on `set/result`.
    fn on_command(&mut self, payload: &[u8]) {
        if !self.section.mqtt.commands {
            return;
        }
        let (id, change) = command::parse(payload);
        let change = match change {
            Ok(c) => c,
            Err(e) => {
                info!(error = %e, "MQTT command refused");
                return self.reply(id.as_ref(), &Err(e));
            }
        };
        let (reply, answer) = oneshot::channel();
        match self.requests.try_send(Request { change, reply }) {
            Ok(()) => {
                self.replies.spawn(async move {
                    let stopping = || Invalid::new("set", "-", "hark is stopping").into();
                    (id, answer.await.unwrap_or_else(|_| Err(stopping())))
                });
            }
            Err(_) => {
                let busy = Invalid::new("set", "-", "too many commands at once")
                    .allowed("one at a time, after the answer to the last");
                self.reply(id.as_ref(), &Err(busy.into()));
            }
        }
    }

    fn reply(&mut self, id: Option<&Value>, result: &Result<(), Problems>) {
        let payload = command::result_payload(id, result);
        let m = self.msg(self.topics.set_result(), payload, false, false);
        self.push(m);
    }

    fn subscribe(&self) {
        let Some(l) = &self.link else {
            return;
        };
        let ha = &self.section.mqtt.homeassistant;
        if ha.discovery {
            let _ = l
                .client
                .try_subscribe(format!("{}/status", ha.prefix), QoS::AtLeastOnce);
        }
        if self.section.mqtt.commands {
            let _ = l.client.try_subscribe(self.topics.set(), QoS::AtLeastOnce);
        }
    }

    /// Availability, discovery, the states and the last event: at the front of the queue on
    /// a new connection (before queued events), else at the back.
    fn announce(&mut self, front: bool) {
        let mut msgs = vec![self.msg(self.topics.availability(), "online".into(), true, false)];
        let configs = self.configs();
        if self.section.mqtt.homeassistant.discovery {
            for c in &configs {
                msgs.push(self.msg(c.topic.clone(), c.payload.clone(), true, false));
            }
        }
        for l in &self.names {
            let state = self.states.get(&l.slug).copied().unwrap_or("OFF");
            msgs.push(self.msg(self.topics.state(&l.slug), state.into(), true, false));
            if self.section.mqtt.commands {
                let muted = topics::is_muted(&l.name, &self.section.mute, &self.model.groups);
                let state = if muted { "ON" } else { "OFF" };
                msgs.push(self.msg(self.topics.mute(&l.slug), state.into(), true, false));
            }
        }
        if let Some(last) = &self.last {
            msgs.push(self.msg(self.topics.last(), last.clone(), true, false));
        }
        self.discovered = configs;
        if front {
            self.outbox.push_front(msgs);
        } else {
            for m in msgs {
                self.push(m);
            }
        }
    }

    fn configs(&self) -> Vec<Config> {
        if !self.section.mqtt.homeassistant.discovery {
            return Vec::new();
        }
        let device = Device {
            prefix: &self.section.mqtt.homeassistant.prefix,
            model: &self.model.name,
            commands: self.section.mqtt.commands,
        };
        discovery::configs(&self.topics, &device, &self.names)
    }

    /// The listened names or the discovery settings changed: publish the new configs and
    /// clear the ones that are gone.
    fn rediscover(&mut self) {
        self.names = topics::listened(&self.section.listen, &self.model.labels, &self.model.groups);
        if !self.outbox.connected {
            return;
        }
        let new = self.configs();
        for gone in discovery::removed(&self.discovered, &new) {
            let m = self.msg(gone, String::new(), true, false);
            self.push(m);
        }
        self.announce(false);
    }

    async fn reload(&mut self, new: MqttSection) {
        let old = std::mem::replace(&mut self.section, new);
        self.outbox.set_cap(self.section.mqtt.queue);
        if reconnects(&old.mqtt, &self.section.mqtt) {
            info!("[mqtt] changed; reconnecting");
            // Clear what the old settings announced where the new ones will not.
            if old.mqtt.homeassistant != self.section.mqtt.homeassistant {
                self.clear_discovery();
            }
            self.close().await;
            self.topics = Topics::new(&self.section.mqtt.topic_prefix, &self.section.mqtt.node());
            self.names =
                topics::listened(&self.section.listen, &self.model.labels, &self.model.groups);
            self.connect();
        } else {
            if !self.section.mqtt.homeassistant.discovery {
                self.clear_discovery();
            }
            self.rediscover();
        }
    }

    fn clear_discovery(&mut self) {
        for c in std::mem::take(&mut self.discovered) {
            let m = self.msg(c.topic, String::new(), true, false);
            self.push(m);
        }
    }

    fn pump(&mut self) {
        if let Some(l) = &self.link {
            self.outbox.pump(&l.client);
        }
        self.health.set("queued", self.outbox.pending() as u64);
    }

    /// Flush what is queued (for a while), publish `offline`, disconnect.
    async fn close(&mut self) {
        let Some(mut link) = self.link.take() else {
            return;
        };
        let deadline = Instant::now() + FLUSH;
        while !(self.outbox.connected && self.outbox.is_idle()) {
            self.outbox.pump(&link.client);
            match tokio::time::timeout_at(deadline, link.events.recv()).await {
                Ok(Some(ev)) => {
                    self.link_event_while_closing(ev);
                }
                _ => break,
            }
        }
        if self.outbox.connected {
            let m = self.msg(self.topics.availability(), "offline".into(), true, false);
            let _ = link.client.try_publish(m.topic, m.qos, true, m.payload);
            let _ = link.client.try_disconnect();
            let end = Instant::now() + Duration::from_secs(1);
            while let Ok(Some(ev)) = tokio::time::timeout_at(end, link.events.recv()).await {
                if ev == LinkEvent::Closed {
                    break;
                }
            }
        }
        let lost = self.outbox.pending();
        if lost > 0 {
            warn!(lost, "MQTT: events not delivered before hark stopped");
        }
        self.outbox.link_down();
        self.outbox = Outbox::new(self.section.mqtt.queue);
        self.health.set("connected", 0);
        link.task.abort();
    }

    fn link_event_while_closing(&mut self, ev: LinkEvent) {
        // A new connection while closing still needs its availability before the queue.
        self.on_link(ev);
    }
}

/// Whether going from `a` to `b` needs a new connection.
fn reconnects(a: &MqttSettings, b: &MqttSettings) -> bool {
    let conn = |s: &MqttSettings| {
        (
            s.enabled,
            s.url.clone(),
            s.username.clone(),
            s.password.clone(),
            s.password_file.clone(),
            s.client_id.clone(),
            s.node.clone(),
            s.topic_prefix.clone(),
            s.keepalive.to_bits(),
            (s.ca_file.clone(), s.cert_file.clone(), s.key_file.clone()),
            s.homeassistant.clone(),
            s.commands,
        )
    };
    conn(a) != conn(b)
}
