//! One client connection, from CONNECT to close.
//!
//! [`serve`] runs the handshake (`connect.rs`), then the [`Client`] event loop: one
//! `select!` over the next bytes from the socket, new deliveries for the session,
//! takeover, shutdown and the keep-alive deadline. Inbound packets are handled in
//! `inbound.rs`; deliveries are written in `outbound.rs`. Wire packets become domain
//! types here, so v3/v5 differences stop at this module.

mod acks;
mod close;
mod connect;
mod inbound;
mod io;
mod outbound;

pub use close::Close;
pub(crate) use connect::{install_transferred, journal_session};
pub use io::Io;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use mqtt_codec::{ByteString, Disconnect, DisconnectProperties, Packet, ProtocolVersion, QoS};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::broker::Broker;
use crate::config::ListenerProtocol;
use crate::fanout::Fanout;
use crate::message::Will;
use crate::metrics::ConnectionMetrics;
use crate::session::{Kick, Session};
use crate::sys::SysStats;

/// What a connection knows about the listener that accepted it.
#[derive(Debug, Clone)]
pub struct ListenerContext {
    pub protocol: ListenerProtocol,
    pub anonymous_allowed: bool,
}

/// Serves one accepted stream until it closes.
pub async fn serve<S>(
    broker: Arc<Broker>,
    stream: S,
    peer: SocketAddr,
    listener: Arc<ListenerContext>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    let io = Io::new(
        reader,
        writer,
        broker.config.limits.max_packet_size as usize,
    );
    broker.metrics.connection_opened(listener.protocol);
    let close = match connect::handshake(&broker, io, peer, &listener).await {
        Ok(client) => client.run().await,
        Err(close) => close,
    };
    if let Close::Protocol { reason, detail } = &close {
        tracing::info!(%peer, reason = %reason, detail, "connection closed for a protocol error");
    }
    broker.metrics.connection_closed(close.label());
}

/// A connected client: the session it owns and the per-connection protocol state.
pub(crate) struct Client<R, W> {
    broker: Arc<Broker>,
    io: Io<R, W>,
    conn_id: u64,
    version: ProtocolVersion,
    client_id: ByteString,
    username: Option<ByteString>,
    session: Arc<Session>,
    /// This connection's generation on the session (delayed wills check it).
    generation: u64,
    /// Fires when another connection takes the session over.
    kick: oneshot::Receiver<Kick>,
    will: Option<Will>,
    /// 1.5 × the negotiated keep alive; `None` when keep alive is off.
    keep_alive: Option<Duration>,
    last_read: Instant,
    /// Fires at the keep-alive deadline as it stood when last armed; the loop re-arms it
    /// from `last_read` when it fires, instead of resetting a timer on every read.
    keep_alive_timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Resolves when the broker shuts down. Registered once for the connection's life:
    /// a fresh `cancelled()` every loop turn takes the token's broker-wide locks twice.
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Session expiry interval in force (MQTT 5 DISCONNECT may change it).
    session_expiry: u32,
    /// CONNECT asked for expiry 0; DISCONNECT may then not raise it (§3.14.2.2.2).
    connect_expiry_was_zero: bool,
    /// QoS 1/2 deliveries allowed in flight: min(client Receive Maximum, our limit).
    send_window: usize,
    /// Packet ids left in flight by the previous connection, still to be resent (in id
    /// order); they go out within the send window like new deliveries (MQTT 5 §4.9).
    resend: VecDeque<u16>,
    /// The client's Maximum Packet Size.
    client_max_packet: usize,
    /// The client's Topic Alias Maximum (aliases we may send).
    client_alias_max: u16,
    /// Topic aliases the client set up (alias → topic).
    alias_in: HashMap<u16, ByteString>,
    /// Topic aliases we set up (topic → alias).
    alias_out: HashMap<ByteString, u16>,
    metrics: ConnectionMetrics,
    /// Reused by every publish to collect routing targets without allocating; holds the
    /// subscribers' wake-ups until the input waiting on the socket is handled
    /// (`crate::fanout`).
    fanout: Fanout,
    /// Reused to hold QoS 0 deliveries taken off the session queue while they are
    /// written (`outbound.rs`); allocated on the first.
    outbox: Vec<crate::message::Delivery>,
    /// PUBLISH packets written (by QoS) since the delivery counters were last updated.
    written: [u64; 3],
    max_qos: QoS,
    /// Acknowledgements of QoS 1/2 PUBLISHes waiting until the message is durable, in
    /// the order they were received (MQTT 4.6): a PUBACK never overtakes an earlier one.
    acks: acks::AckQueue,
}

/// Acknowledgements waiting at most per connection; beyond it the connection stops
/// reading until the journal catches up.
const MAX_PENDING_ACKS: usize = 1024;

impl<R, W> Client<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    /// Runs the connection to its end, then publishes the will and releases the session.
    async fn run(mut self) -> Close {
        SysStats::add(&self.broker.stats.clients_connected, 1);
        let close = self.event_loop().await;
        self.broker
            .stats
            .clients_connected
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        if self.version.is_v5() {
            if let Some(reason_code) = close.disconnect_reason() {
                self.send(Packet::Disconnect(Disconnect {
                    reason_code,
                    properties: DisconnectProperties::default(),
                }));
            }
        }
        // Best effort: the peer may be gone or not reading.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.flush_raw()).await;
        if close.publishes_will() {
            if let Some(will) = self.will.take() {
                self.broker.publish_will(
                    will,
                    self.session.clone(),
                    self.generation,
                    self.session_expiry,
                );
            }
        }
        self.broker
            .release_session(&self.session, self.conn_id, self.session_expiry);
        tracing::debug!(client_id = %self.client_id, reason = close.label(), "client disconnected");
        close
    }

    async fn event_loop(&mut self) -> Close {
        loop {
            let more = self.drain();
            if let Err(close) = self.flush().await {
                return close;
            }
            // Biased: the branches are polled in this order and the first ready one
            // wins, so the busy ones come first and the rare ones (takeover, shutdown,
            // keep alive) are only polled when the connection would otherwise sleep. A
            // client that floods us still sees shutdown: tokio's cooperative budget makes
            // the read pending after a few hundred ready polls.
            tokio::select! {
                biased;
                ack = std::future::poll_fn(|cx| self.acks.poll_next(cx)), if !self.acks.is_empty() => {
                    if let Err(close) = self.acknowledge(ack) {
                        return close;
                    }
                    // The others that are ready go out in the same write: one peer's
                    // answer or one journal append often releases many at once.
                    while let Some(ack) = self.acks.next_ready() {
                        if let Err(close) = self.acknowledge(ack) {
                            return close;
                        }
                    }
                }
                read = tokio::io::AsyncReadExt::read_buf(&mut self.io.reader, &mut self.io.read_buf), if self.acks.len() < MAX_PENDING_ACKS => {
                    match read {
                        Ok(0) => return Close::PeerClosed,
                        Ok(n) => {
                            self.received(n);
                            if let Err(close) = self.process_input().await {
                                return close;
                            }
                        }
                        Err(_) => return Close::Io,
                    }
                }
                _ = self.session.wake.notified(), if !more => {}
                _ = std::future::ready(()), if more => {}
                _ = &mut self.kick => return Close::TakenOver,
                _ = self.shutdown.as_mut() => return Close::Shutdown,
                _ = expired(&mut self.keep_alive_timer) => {
                    if let Some(ka) = self.keep_alive {
                        let deadline = self.last_read + ka;
                        if deadline <= Instant::now() {
                            return Close::KeepAliveTimeout;
                        }
                        if let Some(timer) = &mut self.keep_alive_timer {
                            timer.as_mut().reset(deadline);
                        }
                    }
                }
            }
        }
    }

    /// Handles every whole packet in the read buffer, and what else is already waiting
    /// on the socket, then wakes the connections of the sessions it queued messages for
    /// (`crate::fanout`).
    async fn process_input(&mut self) -> Result<(), Close> {
        let handled = self.handle_input().await;
        self.fanout.wake();
        handled
    }

    async fn handle_input(&mut self) -> Result<(), Close> {
        use futures::FutureExt;
        loop {
            self.handle_packets().await?;
            if self.fanout.held() == 0 || self.acks.len() >= MAX_PENDING_ACKS {
                return Ok(());
            }
            // Only what is there now: a read that would wait ends the batch. It costs no
            // extra system call: the one that finds the socket empty is made here
            // instead of in the event loop's next read.
            let read =
                tokio::io::AsyncReadExt::read_buf(&mut self.io.reader, &mut self.io.read_buf)
                    .now_or_never();
            match read {
                None => return Ok(()),
                Some(Ok(0)) => return Err(Close::PeerClosed),
                Some(Ok(n)) => self.received(n),
                Some(Err(_)) => return Err(Close::Io),
            }
        }
    }

    /// Accounts for `n` bytes read from the client.
    fn received(&mut self, n: usize) {
        self.last_read = Instant::now();
        self.metrics.bytes_received.inc_by(n as u64);
        SysStats::add(&self.broker.stats.bytes_received, n as u64);
    }

    async fn handle_packets(&mut self) -> Result<(), Close> {
        loop {
            match self.io.next_packet(Some(self.version)) {
                Ok(Some(packet)) => self.handle(packet).await?,
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.broker.metrics.packet_error(e.kind());
                    return Err(Close::protocol(e.reason_code(), "undecodable packet"));
                }
            }
        }
    }

    /// Encodes a packet into the write buffer and counts it.
    fn send(&mut self, packet: Packet) {
        self.metrics.packet_sent(packet.kind());
        self.io.encode(&packet, self.version);
    }

    /// Writes out the write buffer, giving up when the broker shuts down meanwhile (a
    /// client that stops reading must not hold the shutdown up).
    async fn flush(&mut self) -> Result<(), Close> {
        if self.io.write_buf.is_empty() {
            return Ok(());
        }
        let written = tokio::select! {
            biased;
            written = self.io.flush() => written.map_err(|_| Close::Io)?,
            _ = self.shutdown.as_mut() => return Err(Close::Shutdown),
        };
        self.count_sent(written);
        Ok(())
    }

    async fn flush_raw(&mut self) -> std::io::Result<()> {
        let n = self.io.flush().await?;
        self.count_sent(n);
        Ok(())
    }

    fn count_sent(&self, n: usize) {
        if n > 0 {
            self.metrics.bytes_sent.inc_by(n as u64);
            SysStats::add(&self.broker.stats.bytes_sent, n as u64);
        }
    }
}

/// Resolves when the keep-alive timer fires; never when keep alive is off.
async fn expired(timer: &mut Option<Pin<Box<tokio::time::Sleep>>>) {
    match timer {
        Some(timer) => timer.as_mut().await,
        None => std::future::pending().await,
    }
}
