//! `hark subscribe`: print what a running `hark run` publishes on its socket.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::subscribe::{MqttSubscribeOptions, SubscribeOptions};

#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// Socket path (default: as `hark run` chooses it).
    #[arg(long, short = 's', value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Follow hark(s) through an MQTT broker instead of the socket: mqtt://host[:port] or
    /// mqtts://host[:port] (docs/mqtt.md).
    #[arg(long, value_name = "URL", conflicts_with_all = ["socket", "predictions"])]
    pub mqtt: Option<String>,
    /// With --mqtt: the node to follow; default `+`, every hark on the broker (each line then
    /// starts with [node]).
    #[arg(long, requires = "mqtt")]
    pub node: Option<String>,
    /// With --mqtt: the first topic level (config mqtt.topic_prefix).
    #[arg(long, requires = "mqtt", default_value = "hark")]
    pub topic_prefix: String,
    /// With --mqtt: the broker's user name.
    #[arg(long, requires = "mqtt")]
    pub username: Option<String>,
    /// With --mqtt: a file whose first line is the password.
    #[arg(long, requires = "username", value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// With an mqtts:// URL: CA certificates (PEM) to trust instead of the system's.
    #[arg(long, requires = "mqtt", value_name = "FILE")]
    pub ca_file: Option<PathBuf>,
    /// Also print predictions (one per window; socket only).
    #[arg(long)]
    pub predictions: bool,
    /// Only events with these labels (or groups).
    #[arg(long, short = 'l', num_args = 1..)]
    pub labels: Vec<String>,
    /// Print the raw JSON lines.
    #[arg(long)]
    pub json: bool,
    /// Give up after this many failed connection attempts in a row (default: retry forever).
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<u32>,
}

/// Run the socket client until stdout closes or it gives up connecting.
pub fn run_subscribe(args: SubscribeArgs) -> anyhow::Result<ExitCode> {
    if let Some(url) = args.mqtt {
        crate::subscribe::follow_mqtt(&MqttSubscribeOptions {
            url,
            node: args.node.unwrap_or_else(|| "+".into()),
            topic_prefix: args.topic_prefix,
            username: args.username,
            password_file: args.password_file,
            ca_file: args.ca_file,
            labels: args.labels,
            json: args.json,
            max_attempts: args.max_attempts,
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    crate::subscribe::follow(&SubscribeOptions {
        socket: args.socket.unwrap_or_else(crate::subscribe::default_socket),
        predictions: args.predictions,
        labels: args.labels,
        json: args.json,
        max_attempts: args.max_attempts,
    })?;
    Ok(ExitCode::SUCCESS)
}
