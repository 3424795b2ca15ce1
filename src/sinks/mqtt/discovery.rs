//! Home Assistant MQTT discovery: one retained config per entity on
//! `<prefix>/<component>/<node>/<object>/config`, all on one device per hark, each with the
//! availability topic and a state topic of its own (never one topic filtered by templates).
//!
//! Entities: a `binary_sensor` per listened sound (`smoke` device class for smoke and fire
//! alarms, `sound` otherwise), an `event` entity whose `event_types` are the listened names,
//! a level `sensor` (dBFS, no device class: Home Assistant's `sound_pressure` allows only
//! dB/dBA), a last-heard `sensor` with the event as attributes, and diagnostic sensors for
//! overruns and inference time.

use serde_json::{json, Value};

use super::topics::{Listened, Topics};

/// One retained discovery message.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub topic: String,
    pub payload: String,
}

/// What discovery needs to know besides the topics.
pub struct Device<'a> {
    pub prefix: &'a str,
    pub model: &'a str,
    /// `mqtt.commands`: offer the mute switches.
    pub commands: bool,
}

/// The discovery topic of `object` (a binary sensor's slug, or a fixed entity name).
pub fn topic(prefix: &str, component: &str, node: &str, object: &str) -> String {
    format!("{prefix}/{component}/{node}/{object}/config")
}

/// Every config for `names`, in a stable order. One piece: it is the list of entities, one
/// `push` per entity with that entity's keys, read best as one table.
pub fn configs(topics: &Topics, device: &Device, names: &[Listened]) -> Vec<Config> {
    let node = &topics.node;
    let base = |name: &str, object: &str| -> Value {
        json!({
            "name": name,
            "unique_id": format!("hark_{node}_{object}"),
            "availability_topic": topics.availability(),
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": {
                "identifiers": [format!("hark_{node}")],
                "name": format!("hark {node}"),
                "manufacturer": "hark",
                "model": device.model,
                "sw_version": env!("CARGO_PKG_VERSION"),
            },
            "origin": {
                "name": "hark",
                "sw_version": env!("CARGO_PKG_VERSION"),
            },
        })
    };
    let mut out = Vec::new();
    let mut push = |component: &str, object: &str, name: &str, extra: Value| {
        let mut v = base(name, object);
        merge(&mut v, extra);
        out.push(Config {
            topic: topic(device.prefix, component, node, object),
            payload: v.to_string(),
        });
    };
    for l in names {
        push(
            "binary_sensor",
            &l.slug,
            &l.name,
            json!({
                "state_topic": topics.state(&l.slug),
                "payload_on": "ON",
                "payload_off": "OFF",
                "device_class": if l.smoke { "smoke" } else { "sound" },
            }),
        );
    }
    for l in names.iter().filter(|_| device.commands) {
        push(
            "switch",
            &format!("mute_{}", l.slug),
            &format!("Mute {}", l.name),
            json!({
                "command_topic": topics.set(),
                "payload_on": json!({ "mute": [l.name] }).to_string(),
                "payload_off": json!({ "unmute": [l.name] }).to_string(),
                "state_topic": topics.mute(&l.slug),
                "state_on": "ON",
                "state_off": "OFF",
                "entity_category": "config",
                "icon": "mdi:volume-off",
            }),
        );
    }
    let types: Vec<&str> = names.iter().map(|l| l.name.as_str()).collect();
    push(
        "event",
        "sound",
        "Sound",
        json!({ "state_topic": topics.detected(), "event_types": types }),
    );
    push(
        "sensor",
        "level",
        "Level",
        json!({
            "state_topic": topics.level(),
            "value_template": "{{ value_json.mean }}",
            "json_attributes_topic": topics.level(),
            "unit_of_measurement": "dBFS",
            "state_class": "measurement",
            "suggested_display_precision": 1,
        }),
    );
    push(
        "sensor",
        "last_heard",
        "Last heard",
        json!({
            "state_topic": topics.last(),
            "value_template": "{{ value_json.name }}",
            "json_attributes_topic": topics.last(),
            "icon": "mdi:ear-hearing",
        }),
    );
    push(
        "sensor",
        "overruns",
        "Overruns",
        json!({
            "state_topic": topics.status_field("overruns"),
            "state_class": "total_increasing",
            "entity_category": "diagnostic",
        }),
    );
    push(
        "sensor",
        "inference_ms",
        "Inference time",
        json!({
            "state_topic": topics.status_field("inference_ms"),
            "unit_of_measurement": "ms",
            "state_class": "measurement",
            "entity_category": "diagnostic",
        }),
    );
    out
}

fn merge(into: &mut Value, extra: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, extra) {
        a.extend(b);
    }
}

/// The topics of `old` that `new` no longer has: clearing them (an empty retained message)
/// removes the entity from Home Assistant.
pub fn removed(old: &[Config], new: &[Config]) -> Vec<String> {
    old.iter()
        .filter(|o| !new.iter().any(|n| n.topic == o.topic))
        .map(|o| o.topic.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::topics::listened;
    use super::*;

    #[test]
    fn every_config_has_its_platforms_keys_unique_ids_and_availability() {
        let topics = Topics::new("hark", "pi");
        let names = listened(
            &["Smoke detector, smoke alarm".into(), "Knock".into()],
            &[],
            &Default::default(),
        );
        let mut device = Device {
            prefix: "homeassistant",
            model: "ced-tiny",
            commands: true,
        };
        let switches = configs(&topics, &device, &names);
        assert_eq!(switches.len(), 2 + 2 + 5, "a mute switch per sound");
        let mute: Value = serde_json::from_str(&switches[2].payload).unwrap();
        assert_eq!(
            switches[2].topic,
            "homeassistant/switch/pi/mute_smoke_detector_smoke_alarm/config"
        );
        assert_eq!(mute["command_topic"], "hark/pi/set");
        assert_eq!(
            mute["payload_on"],
            r#"{"mute":["Smoke detector, smoke alarm"]}"#
        );
        assert_eq!(
            mute["state_topic"],
            "hark/pi/mute/smoke_detector_smoke_alarm"
        );
        device.commands = false;
        let all = configs(&topics, &device, &names);
        assert_eq!(all.len(), 2 + 5);
        let mut ids = std::collections::HashSet::new();
        for c in &all {
            let v: Value = serde_json::from_str(&c.payload).unwrap();
            assert!(ids.insert(v["unique_id"].as_str().unwrap().to_owned()));
            assert_eq!(v["availability_topic"], "hark/pi/availability");
            assert!(v["state_topic"].is_string(), "{}", c.topic);
            assert!(c.topic.starts_with("homeassistant/") && c.topic.ends_with("/config"));
        }
        let smoke: Value = serde_json::from_str(&all[0].payload).unwrap();
        assert_eq!(smoke["device_class"], "smoke");
        assert_eq!(
            all[0].topic,
            "homeassistant/binary_sensor/pi/smoke_detector_smoke_alarm/config"
        );
        let event: Value = serde_json::from_str(&all[2].payload).unwrap();
        assert_eq!(event["event_types"][1], "Knock");
        let fewer = configs(&topics, &device, &names[1..]);
        assert_eq!(removed(&all, &fewer), [all[0].topic.clone()]);
    }
}
