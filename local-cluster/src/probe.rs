//! Asking a process's metrics port how it is: `GET /readyz` and `GET /metrics` over
//! plain HTTP/1.0 on loopback. Twenty lines of socket code instead of an HTTP client
//! dependency; every call has a timeout so a hung process cannot hang the launcher.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one probe may take, connect included.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// An HTTP answer: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// The status code.
    pub status: u16,
    /// The body, lossily decoded.
    pub body: String,
}

/// `GET path` at `addr`; the error says what went wrong, for "not ready" messages.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<HttpAnswer, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = match tokio::time::timeout(PROBE_TIMEOUT, exchange).await {
        Ok(Ok(raw)) => raw,
        Ok(Err(e)) => return Err(format!("{addr}: {e}")),
        Err(_) => return Err(format!("{addr}: no answer within {PROBE_TIMEOUT:?}")),
    };
    parse_response(&String::from_utf8_lossy(&raw))
        .ok_or_else(|| format!("{addr}: not an HTTP answer"))
}

fn parse_response(text: &str) -> Option<HttpAnswer> {
    let status = text
        .strip_prefix("HTTP/")?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    Some(HttpAnswer {
        status,
        body: body.to_owned(),
    })
}

/// `Ok` when `/readyz` answers 200; else the answer or error, trimmed, as the reason.
pub async fn readyz(metrics: SocketAddr) -> Result<(), String> {
    match http_get(metrics, "/readyz").await {
        Ok(HttpAnswer { status: 200, .. }) => Ok(()),
        Ok(answer) => Err(format!("{} {}", answer.status, answer.body.trim())),
        Err(e) => Err(e),
    }
}

/// The `/metrics` text (Prometheus 0.0.4 format), if the process answers 200.
pub async fn metrics_text(metrics: SocketAddr) -> Option<String> {
    match http_get(metrics, "/metrics").await {
        Ok(HttpAnswer { status: 200, body }) => Some(body),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_body() {
        let a = parse_response(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 9\r\n\r\nnot ready",
        )
        .unwrap();
        assert_eq!(a.status, 503);
        assert_eq!(a.body, "not ready");
        assert_eq!(parse_response("garbage"), None);
    }

    #[tokio::test]
    async fn a_closed_port_is_an_error_naming_the_address() {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let err = readyz(addr).await.unwrap_err();
        assert!(err.starts_with(&addr.to_string()), "{err}");
    }

    #[tokio::test]
    async fn reads_a_served_answer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 200 OK\r\n\r\nready\n")
                .await
                .unwrap();
        });
        assert_eq!(readyz(addr).await, Ok(()));
    }
}
