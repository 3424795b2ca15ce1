//! MQTT: events, states, level and health published to a broker, and Home Assistant's MQTT
//! discovery, so a house of harks reports to one broker (docs/mqtt.md).
//!
//! A sink like the others: one task reads the fan-out and turns records into messages under
//! `<topic_prefix>/<node>/` (`topics`), with Home Assistant's discovery configs
//! (`discovery`), in a bounded queue of its own (`outbox`) that a second task, rumqttc's
//! event loop (`link`), delivers while the broker is reachable. `settings` is the `[mqtt]`
//! section and its validation.
//!
//! Must not: hold up the consumer (a broker that is down or slow fills the sink's bounded
//! queue, never the fan-out), lose an event the queue has room for (events leave the queue
//! only once the broker acknowledged them at QoS 1), or log the same connection failure at
//! every retry. Health: `connected` (0/1), `queued` (events waiting or in flight), `dropped`
//! (events the full queue could not take), `published` (messages the broker took).

mod discovery;
mod link;
mod outbox;
mod settings;
mod sink;
mod topics;

use tokio::task::JoinHandle;

use crate::sinks::SinkContext;
pub use discovery::Config as DiscoveryConfig;
pub use link::{describe as describe_connection_error, BACKOFF_MAX};
pub use settings::{sanitize_node, Broker, HomeAssistantSettings, MqttSettings};
pub use topics::{slug, Topics};

/// The counters this sink reports in `status`.
pub const COUNTERS: &[&str] = &["connected", "queued", "dropped", "published"];

/// What the MQTT sink is given on start and on every reload: its `[mqtt]` section and the
/// listen list (`decision.listen`, fitted to the model), which decides its entities.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MqttSection {
    pub mqtt: MqttSettings,
    pub listen: Vec<String>,
}

impl MqttSection {
    pub fn new(mqtt: &MqttSettings, listen: &[String]) -> MqttSection {
        MqttSection {
            mqtt: mqtt.clone(),
            listen: listen.to_vec(),
        }
    }
}

/// Start the sink on the current tokio runtime. With `[mqtt]` off it only reads records (a
/// reload may turn it on). A broker that cannot be reached is not an error: it is retried
/// with a backoff up to [`BACKOFF_MAX`] while events wait in the queue.
pub fn start(ctx: SinkContext<MqttSection>) -> JoinHandle<()> {
    tokio::spawn(sink::run(ctx))
}
