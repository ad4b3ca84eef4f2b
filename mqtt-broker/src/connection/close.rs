//! Why a connection ended, and what that means: the metric label, the MQTT 5
//! DISCONNECT reason the server sends, and whether the will is published.

use mqtt_codec::ReasonCode;

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Close {
    /// The client sent DISCONNECT.
    ClientDisconnect { publish_will: bool },
    /// The peer closed the stream without DISCONNECT.
    PeerClosed,
    /// The stream failed.
    Io,
    /// The client broke the protocol; MQTT 5 clients get a DISCONNECT with `reason`.
    Protocol {
        reason: ReasonCode,
        detail: &'static str,
    },
    /// No CONNECT within the connect timeout.
    ConnectTimeout,
    /// The CONNECT was refused with a CONNACK reason code.
    Refused(ReasonCode),
    /// Nothing received for 1.5 × keep alive.
    KeepAliveTimeout,
    /// Another connection took over the session.
    TakenOver,
    /// The broker is shutting down.
    Shutdown,
    /// A QoS 1/2 message of an MQTT 3 client could not be made durable: closing without
    /// its acknowledgement makes the client send it again (MQTT 5 clients get a PUBACK or
    /// PUBREC with an error reason instead).
    NotDurable,
}

impl Close {
    /// A protocol violation with its reason code.
    pub fn protocol(reason: ReasonCode, detail: &'static str) -> Self {
        Self::Protocol { reason, detail }
    }

    /// Metric label for `robustmq_connections_closed_total{reason}`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::ClientDisconnect { .. } => "client_disconnect",
            Self::PeerClosed => "peer_closed",
            Self::Io => "io_error",
            Self::Protocol { .. } => "protocol_error",
            Self::ConnectTimeout => "connect_timeout",
            Self::Refused(_) => "connect_refused",
            Self::KeepAliveTimeout => "keep_alive_timeout",
            Self::TakenOver => "session_taken_over",
            Self::Shutdown => "server_shutdown",
            Self::NotDurable => "not_durable",
        }
    }

    /// The reason an MQTT 5 server-side DISCONNECT carries, when the server closes.
    pub fn disconnect_reason(&self) -> Option<ReasonCode> {
        match self {
            Self::Protocol { reason, .. } => Some(*reason),
            Self::KeepAliveTimeout => Some(ReasonCode::KEEP_ALIVE_TIMEOUT),
            Self::TakenOver => Some(ReasonCode::SESSION_TAKEN_OVER),
            Self::Shutdown => Some(ReasonCode::SERVER_SHUTTING_DOWN),
            _ => None,
        }
    }

    /// Whether the will message is published (everything but a normal DISCONNECT).
    pub fn publishes_will(&self) -> bool {
        !matches!(
            self,
            Self::ClientDisconnect {
                publish_will: false
            }
        )
    }
}
