//! Raw HTTP/1.1 over TCP, for requests no HTTP client would send, and the answers as they come
//! off the wire.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The headers SPEC promises on every public answer.
pub const SECURITY_HEADERS: [&str; 5] = [
    "cache-control",
    "referrer-policy",
    "x-content-type-options",
    "x-frame-options",
    "content-security-policy",
];

/// An answer as it came off the wire.
#[derive(Debug)]
pub struct RawAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Is this a page with every security header?
    pub fn is_page(&self) -> bool {
        self.header("content-type")
            .is_some_and(|t| t.starts_with("text/html"))
            && SECURITY_HEADERS.iter().all(|h| self.header(h).is_some())
    }

    pub fn is_problem(&self) -> bool {
        self.header("content-type") == Some("application/problem+json")
    }
}

/// Sends `request` on a fresh connection and reads until the service closes it (or 15 s pass).
/// `None` when the service closed without answering.
pub async fn send_raw(address: SocketAddr, request: &[u8]) -> Option<RawAnswer> {
    let mut stream = TcpStream::connect(address).await.unwrap();
    // The service may answer and close before reading everything: a failed write is no failure.
    let _ = stream.write_all(request).await;
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 16 * 1024];
    let read = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), read)
        .await
        .expect("the service answers or closes within 15 s");
    parse(&received)
}

fn parse(received: &[u8]) -> Option<RawAnswer> {
    let head_end = received.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&received[..head_end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Some(RawAnswer {
        status,
        headers,
        body: received[head_end + 4..].to_vec(),
    })
}
