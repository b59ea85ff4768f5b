//! A small blocking HTTP client for JSON POSTs to a plain `http://HOST:PORT` endpoint (etcd's
//! gateway): HTTP/1.0 with `Content-Length`, one connection per request, read to the end, so
//! no chunked replies or connection reuse to handle. TLS is not supported.

use super::KvError;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct HttpEndpoint {
    /// `HOST:PORT` as given.
    authority: String,
}

impl HttpEndpoint {
    /// Accepts `http://HOST:PORT` with an optional trailing `/`.
    pub fn parse(url: &str) -> Result<HttpEndpoint, KvError> {
        let bad = |why| KvError::BadEndpoint {
            url: url.to_string(),
            why,
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("only http:// URLs are supported"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = authority
            .rsplit_once(':')
            .ok_or_else(|| bad("expected http://HOST:PORT"))?;
        if host.is_empty() || port.parse::<u16>().is_err() || authority.contains('/') {
            return Err(bad("expected http://HOST:PORT"));
        }
        Ok(HttpEndpoint {
            authority: authority.to_string(),
        })
    }

    pub fn name(&self) -> String {
        format!("http://{}", self.authority)
    }

    fn io(&self, source: std::io::Error) -> KvError {
        KvError::Io {
            endpoint: self.name(),
            source,
        }
    }

    /// POSTs `body` to `path` and returns the decoded JSON reply of a 200 answer.
    pub fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, KvError> {
        let addr = self
            .authority
            .to_socket_addrs()
            .map_err(|e| self.io(e))?
            .next()
            .ok_or_else(|| self.io(std::io::ErrorKind::NotFound.into()))?;
        let mut s = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).map_err(|e| self.io(e))?;
        s.set_read_timeout(Some(IO_TIMEOUT))
            .and_then(|_| s.set_write_timeout(Some(IO_TIMEOUT)))
            .map_err(|e| self.io(e))?;
        let body = body.to_string();
        let req = format!(
            "POST {path} HTTP/1.0\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.authority,
            body.len()
        );
        s.write_all(req.as_bytes()).map_err(|e| self.io(e))?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).map_err(|e| self.io(e))?;
        let reply = |why: String| KvError::Reply {
            endpoint: self.name(),
            path: path.to_string(),
            why,
        };
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| reply("no end of headers".into()))?;
        let head = String::from_utf8_lossy(&raw[..split]);
        let payload = &raw[split + 4..];
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| reply(format!("bad status line {:?}", head.lines().next())))?;
        if status != 200 {
            return Err(KvError::Status {
                endpoint: self.name(),
                path: path.to_string(),
                status,
                body: String::from_utf8_lossy(payload).trim().to_string(),
            });
        }
        serde_json::from_slice(payload).map_err(|e| reply(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::HttpEndpoint;

    #[test]
    fn endpoints() {
        assert_eq!(
            HttpEndpoint::parse("http://127.0.0.1:2379/")
                .unwrap()
                .name(),
            "http://127.0.0.1:2379"
        );
        for bad in [
            "https://a:1",
            "http://a",
            "http://:1",
            "http://a:x",
            "http://a:1/v3",
        ] {
            assert!(HttpEndpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
