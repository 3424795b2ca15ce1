//! MQTT: events, states, level and health published to a broker, and Home Assistant's MQTT
//! discovery, so a house of harks reports to one broker (docs/mqtt.md).
//!
//! A sink like the others: one task reads the fan-out and turns records into messages under
//! `<topic_prefix>/<node>/` (`topics`), with Home Assistant's discovery configs
//! (`discovery`), in a bounded queue of its own (`outbox`) that a second task, rumqttc's
//! event loop (`link`), delivers while the broker is reachable. `settings` is the `[mqtt]`
//! section and its validation. With `commands = true`, `<node>/set` payloads are parsed
//! (`command`) and handed to the daemon, which applies them as it applies a SIGHUP and
//! answers; the sink publishes the answer on `set/result`.
//!
//! Must not: hold up the consumer (a broker that is down or slow fills the sink's bounded
//! queue, never the fan-out), lose an event the queue has room for (events leave the queue
//! only once the broker acknowledged them at QoS 1), or log the same connection failure at
//! every retry. Health: `connected` (0/1), `queued` (events waiting or in flight), `dropped`
//! (events the full queue could not take), `published` (messages the broker took).

mod command;
mod discovery;
mod link;
mod outbox;
mod settings;
mod sink;
mod topics;

use tokio::task::JoinHandle;

use crate::pipeline::decision::DecisionSettings;
use crate::sinks::SinkContext;
pub use command::{parse as parse_command, result_payload, Change, Request, Requests, MAX_PAYLOAD};
pub use discovery::Config as DiscoveryConfig;
pub use link::{describe as describe_connection_error, tls as tls_config, BACKOFF_MAX};
pub use settings::{sanitize_node, Broker, HomeAssistantSettings, MqttSettings};
pub use topics::{slug, Topics};

/// The counters this sink reports in `status`.
pub const COUNTERS: &[&str] = &["connected", "queued", "dropped", "published"];

/// What the MQTT sink is given on start and on every reload (or command): its `[mqtt]`
/// section, the listen list (`decision.listen`, fitted to the model), which decides its
/// entities, and what is muted (`decision.mute`), the state of its mute switches.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MqttSection {
    pub mqtt: MqttSettings,
    pub listen: Vec<String>,
    pub mute: Vec<String>,
}

impl MqttSection {
    pub fn new(mqtt: &MqttSettings, decision: &DecisionSettings) -> MqttSection {
        MqttSection {
            mqtt: mqtt.clone(),
            listen: decision.listen.clone(),
            mute: decision.mute.clone(),
        }
    }
}

/// Start the sink on the current tokio runtime. With `[mqtt]` off it only reads records (a
/// reload may turn it on). A broker that cannot be reached is not an error: it is retried
/// with a backoff up to [`BACKOFF_MAX`] while events wait in the queue. Commands go to
/// `requests`.
pub fn start(ctx: SinkContext<MqttSection>, requests: Requests) -> JoinHandle<()> {
    tokio::spawn(sink::run(ctx, requests))
}
