//! Transports other than plain TCP: TLS and WebSocket.

pub mod tls;
pub mod ws;
