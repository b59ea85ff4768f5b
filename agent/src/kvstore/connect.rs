//! From `--kvstore-endpoint` and the TLS files to a client: the URL is checked, the files are
//! read, and one request is made, so that a TLS or authentication failure stops the agent at
//! start with its reason. An etcd that does not answer yet is only logged (the agent enforces
//! what it has and takes identities from etcd once it answers).

use super::etcd::{causes, describe, Etcd};
use super::{EtcdConfig, KvError};
use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};
use std::path::Path;
use std::time::Duration;

/// Time to set up a connection (TCP and TLS).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Time for one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether the endpoint uses TLS, after checking it is `http(s)://HOST:PORT[/]`.
fn parse_endpoint(url: &str) -> Result<(bool, String), KvError> {
    let bad = |why: &str| KvError::BadEndpoint {
        url: url.to_string(),
        why: why.to_string(),
    };
    let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(bad("expected http://HOST:PORT or https://HOST:PORT"));
    };
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = authority
        .rsplit_once(':')
        .ok_or_else(|| bad("expected a port: http(s)://HOST:PORT"))?;
    if host.is_empty() || port.parse::<u16>().is_err() || authority.contains('/') {
        return Err(bad("expected http(s)://HOST:PORT"));
    }
    let scheme = if tls { "https" } else { "http" };
    Ok((tls, format!("{scheme}://{authority}")))
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, KvError> {
    std::fs::read(path).map_err(|error| KvError::File {
        what,
        path: path.to_path_buf(),
        error,
    })
}

/// The TLS options of `cfg` (`None` for `http://`).
fn tls_options(cfg: &EtcdConfig, tls: bool) -> Result<Option<TlsOptions>, KvError> {
    let bad = |why: &str| KvError::BadEndpoint {
        url: cfg.endpoint.clone(),
        why: why.to_string(),
    };
    if !tls {
        if cfg.ca.is_some() || cfg.cert.is_some() || cfg.key.is_some() {
            return Err(bad(
                "--kvstore-ca, --kvstore-cert and --kvstore-key need an https:// endpoint",
            ));
        }
        return Ok(None);
    }
    let ca = cfg
        .ca
        .as_deref()
        .ok_or_else(|| bad("an https:// endpoint needs --kvstore-ca"))?;
    let mut opts = TlsOptions::new().ca_certificate(Certificate::from_pem(read("CA", ca)?));
    match (&cfg.cert, &cfg.key) {
        (Some(cert), Some(key)) => {
            opts = opts.identity(Identity::from_pem(
                read("client certificate", cert)?,
                read("client key", key)?,
            ));
        }
        (None, None) => {}
        _ => return Err(bad("--kvstore-cert and --kvstore-key go together")),
    }
    Ok(Some(opts))
}

/// A thread running the kvstore's runtime for the rest of the process.
fn runtime(endpoint: &str) -> Result<tokio::runtime::Handle, KvError> {
    let fail = |why: String| KvError::Call {
        endpoint: endpoint.to_string(),
        op: "starting the client",
        why,
    };
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("kvstore".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => {
                    let _ = tx.send(Ok(rt.handle().clone()));
                    rt.block_on(std::future::pending::<()>());
                }
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                }
            }
        })
        .map_err(|e| fail(e.to_string()))?;
    rx.recv().map_err(|e| fail(e.to_string()))?.map_err(fail)
}

/// Is `e` etcd not answering (nothing listens, or no route), rather than a refusal?
fn unreachable(e: &etcd_client::Error) -> bool {
    use std::io::ErrorKind::*;
    causes(e).any(|s| {
        s.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                ConnectionRefused | TimedOut | HostUnreachable | NetworkUnreachable
            )
        }) || s
            .downcast_ref::<tonic::Status>()
            .is_some_and(|st| st.code() == tonic::Code::DeadlineExceeded)
    })
}

/// The client of `cfg`, after one request to check that etcd accepts it (see the module).
pub fn connect(cfg: &EtcdConfig) -> Result<Etcd, KvError> {
    let (tls, endpoint) = parse_endpoint(&cfg.endpoint)?;
    let mut options = ConnectOptions::new()
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_timeout(REQUEST_TIMEOUT)
        .with_keep_alive(Duration::from_secs(5), CONNECT_TIMEOUT);
    if let Some(t) = tls_options(cfg, tls)? {
        options = options.with_tls(t);
    }
    let rt = runtime(&endpoint)?;
    let refused = |why: String| KvError::Refused {
        endpoint: endpoint.clone(),
        why,
    };
    let url = endpoint.clone();
    let client = {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(etcd_client::Client::connect([url], Some(options)).await);
        });
        rx.recv()
            .map_err(|e| refused(e.to_string()))?
            .map_err(|e| refused(describe(&e)))?
    };
    let etcd = Etcd::new(client, endpoint.clone(), rt);
    let probe = etcd.client();
    let prefix = cfg.prefix.clone();
    let checked = etcd.block_on(async move {
        let mut kv = probe.kv_client();
        Ok(kv
            .get(
                prefix,
                Some(etcd_client::GetOptions::new().with_count_only()),
            )
            .await)
    })?;
    match checked {
        Ok(_) => {}
        Err(e) if unreachable(&e) => {
            tracing::warn!(endpoint, error = %describe(&e),
                "the kvstore does not answer yet; identities new to this node wait for it");
        }
        Err(e) => {
            let mut why = describe(&e);
            if tls && cfg.cert.is_none() {
                // With TLS 1.3 the server's refusal of a missing client certificate may arrive
                // as a closed stream rather than as its alert: say what is missing.
                why += "; no client certificate was given (--kvstore-cert, --kvstore-key), \
                        which an etcd started with --client-cert-auth requires";
            }
            return Err(refused(why));
        }
    }
    Ok(etcd)
}

#[cfg(test)]
mod tests {
    use super::parse_endpoint;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("http://127.0.0.1:2379/").unwrap(),
            (false, "http://127.0.0.1:2379".to_string())
        );
        assert_eq!(
            parse_endpoint("https://etcd:2379").unwrap(),
            (true, "https://etcd:2379".to_string())
        );
        for bad in [
            "ftp://a:1",
            "http://a",
            "http://:1",
            "http://a:x",
            "https://a:1/v3",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
    }
}
