//! The connection: rumqttc's options built from `[mqtt]` (Last Will, credentials, TLS through
//! rustls), and the task that drives rumqttc's event loop on its own, reconnecting with a
//! capped backoff and telling the sink what happened ([`LinkEvent`]).
//!
//! The event loop runs in a task of its own because a connection attempt (TCP, TLS, CONNECT)
//! must not be cancelled each time a record arrives. A cause of failure is logged once, not
//! at every retry: again only when it changes or after the link was up.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, LastWill, MqttOptions,
    Outgoing, Packet, QoS, TlsConfiguration, Transport,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::settings::{Broker, MqttSettings};
use super::topics::Topics;

/// First wait after a failed connection; doubled after each failure up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(500);
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// Requests rumqttc's channel holds; the sink keeps the rest in its own queue.
pub const CLIENT_WINDOW: usize = 64;

/// What a connection cannot be set up with (read at start and at each reload).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("mqtt.password_file {}: {source}", path.display())]
    Password {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{key} {}: {problem}", path.display())]
    Pem {
        key: &'static str,
        path: PathBuf,
        problem: String,
    },
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    #[error(transparent)]
    Url(#[from] crate::validate::Invalid),
}

/// What the event loop reports to the sink.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// CONNACK: the session is up (a new one: nothing of the last one is kept).
    Connected,
    /// The connection failed or broke; the loop retries after a backoff.
    Down,
    /// A PUBLISH was written, with its packet id (0 for QoS 0).
    Sent(u16),
    /// The broker acknowledged the QoS 1 PUBLISH with this id.
    Acked(u16),
    /// Home Assistant said `online` on its status topic.
    Birth,
    /// A payload on `<node>/set` (not a retained one: a command is applied when it is sent,
    /// not again at each connection).
    Command(Vec<u8>),
    /// DISCONNECT was sent: the loop has ended.
    Closed,
}

/// A running connection: the client to publish through and the loop's reports.
pub struct Link {
    pub client: AsyncClient,
    pub events: mpsc::UnboundedReceiver<LinkEvent>,
    pub task: JoinHandle<()>,
}

/// Start the connection for `s` (on the current tokio runtime). Fails only on what cannot
/// work at all (a password file or PEM file that cannot be read); a broker that cannot be
/// reached is retried.
pub fn open(s: &MqttSettings, topics: &Topics) -> Result<Link, SetupError> {
    let broker = Broker::parse(&s.url)?;
    let opts = options(s, &broker, topics)?;
    let (client, eventloop) = AsyncClient::new(opts, CLIENT_WINDOW);
    let (tx, events) = mpsc::unbounded_channel();
    let listen = Incoming {
        ha_status: format!("{}/status", s.homeassistant.prefix),
        set: s.commands.then(|| topics.set()),
    };
    let place = format!("{}:{}", broker.host, broker.port);
    let task = tokio::spawn(drive(eventloop, tx, listen, place));
    Ok(Link {
        client,
        events,
        task,
    })
}

fn options(s: &MqttSettings, broker: &Broker, topics: &Topics) -> Result<MqttOptions, SetupError> {
    let mut o = MqttOptions::new(s.client_id(), broker.host.clone(), broker.port);
    o.set_keep_alive(Duration::from_secs_f64(s.keepalive));
    o.set_clean_session(true);
    // Discovery of a model with hundreds of labels lists them all in one message.
    o.set_max_packet_size(1 << 20, 1 << 20);
    o.set_last_will(LastWill::new(
        topics.availability(),
        "offline",
        QoS::AtLeastOnce,
        true,
    ));
    if let Some(user) = &s.username {
        let password = s.password().map_err(|source| SetupError::Password {
            path: s.password_file.clone().unwrap_or_default(),
            source,
        })?;
        o.set_credentials(user.clone(), password.unwrap_or_default());
    }
    if broker.tls {
        o.set_transport(Transport::Tls(TlsConfiguration::Rustls(Arc::new(tls(s)?))));
    }
    Ok(o)
}

/// rustls with the ring provider: `ca_file` or the system's roots, and a client certificate
/// when one is given (also `hark subscribe --mqtt`'s).
pub fn tls(s: &MqttSettings) -> Result<rustls::ClientConfig, SetupError> {
    let mut roots = rustls::RootCertStore::empty();
    match &s.ca_file {
        Some(ca) => {
            for cert in pem_certs("mqtt.ca_file", ca)? {
                roots
                    .add(cert)
                    .map_err(|e| pem_error("mqtt.ca_file", ca, e))?;
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    Ok(match (&s.cert_file, &s.key_file) {
        (Some(cert), Some(key)) => {
            let certs = pem_certs("mqtt.cert_file", cert)?;
            let mut r = BufReader::new(open_pem("mqtt.key_file", key)?);
            let key_der = rustls_pemfile::private_key(&mut r)
                .map_err(|e| pem_error("mqtt.key_file", key, e))?
                .ok_or_else(|| pem_error("mqtt.key_file", key, "no private key in it"))?;
            builder.with_client_auth_cert(certs, key_der)?
        }
        _ => builder.with_no_client_auth(),
    })
}

fn pem_error(key: &'static str, path: &Path, problem: impl ToString) -> SetupError {
    SetupError::Pem {
        key,
        path: path.to_owned(),
        problem: problem.to_string(),
    }
}

fn open_pem(key: &'static str, path: &Path) -> Result<std::fs::File, SetupError> {
    std::fs::File::open(path).map_err(|e| pem_error(key, path, e))
}

fn pem_certs(
    key: &'static str,
    path: &Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, SetupError> {
    let mut r = BufReader::new(open_pem(key, path)?);
    let certs: Vec<_> = rustls_pemfile::certs(&mut r)
        .collect::<Result<_, _>>()
        .map_err(|e| pem_error(key, path, e))?;
    if certs.is_empty() {
        return Err(pem_error(key, path, "no PEM certificate in it"));
    }
    Ok(certs)
}

/// The topics whose messages the sink acts on.
struct Incoming {
    ha_status: String,
    set: Option<String>,
}

impl Incoming {
    fn event(&self, p: &rumqttc::Publish) -> Option<LinkEvent> {
        if p.topic == self.ha_status && p.payload.as_ref() == b"online" {
            Some(LinkEvent::Birth)
        } else if self.set.as_deref() == Some(p.topic.as_str()) {
            if p.retain {
                info!(topic = %p.topic, "MQTT: a retained command is not applied (commands are applied when sent)");
                return None;
            }
            Some(LinkEvent::Command(p.payload.to_vec()))
        } else {
            None
        }
    }
}

/// Poll the event loop until DISCONNECT is sent or the sink is gone.
async fn drive(
    mut eventloop: EventLoop,
    tx: mpsc::UnboundedSender<LinkEvent>,
    incoming: Incoming,
    place: String,
) {
    let mut backoff = BACKOFF_MIN;
    let mut last_cause: Option<String> = None;
    loop {
        let report = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                info!(broker = %place, "MQTT connected");
                (last_cause, backoff) = (None, BACKOFF_MIN);
                Some(LinkEvent::Connected)
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => Some(LinkEvent::Acked(ack.pkid)),
            Ok(Event::Incoming(Packet::Publish(p))) => incoming.event(&p),
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Some(LinkEvent::Sent(pkid)),
            Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(ConnectionError::RequestsDone) => {
                let _ = tx.send(LinkEvent::Closed);
                return;
            }
            Ok(_) => None,
            Err(e) => {
                let cause = describe(&e);
                if last_cause.as_deref() != Some(cause.as_str()) {
                    warn!(broker = %place, cause = %cause, retry_max_s = BACKOFF_MAX.as_secs(), "MQTT connection failed; retrying with backoff");
                    last_cause = Some(cause);
                }
                if tx.send(LinkEvent::Down).is_err() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                None
            }
        };
        if let Some(ev) = report {
            if tx.send(ev).is_err() {
                return;
            }
        }
    }
}

/// The cause of a failed connection, in words a user can act on.
pub fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => match code {
            ConnectReturnCode::BadUserNamePassword => {
                "the broker refused the login: bad user name or password (mqtt.username, mqtt.password)".into()
            }
            ConnectReturnCode::NotAuthorized => {
                "the broker refused the login: not authorized, or a wrong user name or password (mqtt.username, mqtt.password)".into()
            }
            ConnectReturnCode::BadClientId => {
                "the broker refused the client id (mqtt.client_id)".into()
            }
            other => format!("the broker refused the connection: {other:?}"),
        },
        ConnectionError::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
            "connection refused: no broker listening there (mqtt.url)".into()
        }
        ConnectionError::Tls(t) => format!("TLS: {t} (mqtt.ca_file, mqtt.url's host name)"),
        ConnectionError::NetworkTimeout => "no answer from the broker (mqtt.url)".into(),
        other => other.to_string(),
    }
}
