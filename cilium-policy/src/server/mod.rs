//! The agent's HTTP server (`cilium-policy agent`): the REST API (seed §8) over the `agent`
//! library on a unix socket and, with a token, on loopback TCP. Routes, the status of each
//! [`agent::AgentError`] kind and the transport's own checks live here and nowhere below.
//! See Documentation/agent.md.

mod error;
mod metrics;
mod monitor;
mod routes;
mod socket;
mod tcp_auth;

use agent::config::AgentConfig;
use agent::state::Agent;
use agent::{cni_gc, lock, watch, AgentError, Handle};
use std::sync::Arc;

#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ServeError {
    #[error("starting the agent: {0}")]
    Start(String),
    #[error("starting the agent: {0}")]
    Agent(#[from] AgentError),
    #[error("{path}: {source}")]
    Socket {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} exists and is not a socket; refusing to replace it")]
    NotASocket { path: String },
    #[error("{path}: another agent is serving on this socket; refusing to start")]
    LiveSocket { path: String },
    #[error(transparent)]
    Lock(#[from] lock::LockError),
    #[error("--api-token-file {path}: {reason}")]
    TokenFile { path: String, reason: String },
}

/// Runs the agent until SIGINT or SIGTERM.
pub fn run(cfg: AgentConfig, set_debug: Box<dyn Fn(bool) + Send>) -> Result<(), ServeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| ServeError::Start(e.to_string()))?;
    rt.block_on(serve(cfg, set_debug))
}

async fn serve(cfg: AgentConfig, set_debug: Box<dyn Fn(bool) + Send>) -> Result<(), ServeError> {
    // Claimed before anything else: a second agent on this socket stops here, untouched.
    let mut socket = socket::ApiSocket::claim(&cfg.api_socket)?;
    let agent = tokio::task::spawn_blocking({
        let cfg = cfg.clone();
        move || Agent::start(cfg, set_debug)
    })
    .await
    .map_err(|e| ServeError::Start(e.to_string()))??;
    let mut agent = agent;
    let events = agent.events_pin().map(|_| agent::monitor::channel());
    // No client yet: endpoints restored from before a restart stop emitting events.
    agent.set_listening(false);
    let l7 = agent.l7_shared();
    let shared = Handle::spawn(agent, events.clone())?;
    // The proxy serves the datapath's L7 redirects: only with a datapath.
    let shared = if cfg.datapath {
        shared.start_proxy(l7, cfg.node.clone())?
    } else {
        shared
    };
    if let Some(tx) = events.as_ref() {
        agent::monitor::spawn_reader(tx.clone(), shared.clone(), cfg.node.clone());
    }
    // Held while the agent serves: the exporter also records the proxy's requests.
    let mut _export_l7 = None;
    if let (Some(export), Some(tx)) = (cfg.flow_export.clone(), events.as_ref()) {
        let stats = agent::flows::export::spawn(export, tx.subscribe(), cfg.node.clone())
            .map_err(|e| ServeError::Start(e.to_string()))?;
        let _ = shared.metrics().export.set(stats);
        // A listener from now on: the endpoints and the proxy emit events.
        shared.update_listening().await;
        _export_l7 = shared.listen_l7();
    }
    if let Some(addr) = cfg.metrics_listen {
        let tcp = bind_tcp(addr).await?;
        let app = metrics::router(shared.clone());
        tokio::spawn(async move { axum::serve(tcp, app).await });
        tracing::info!(%addr, "metrics listening");
    }
    if let Some(sync) = &cfg.ipcache_sync {
        sync.watch(shared.clone());
    }
    let listener = socket.bind()?;
    if cfg.datapath {
        cni_gc::spawn(shared.clone());
    }
    if let Some(dir) = cfg.policy_dir.clone() {
        tokio::spawn(watch::watch(dir, shared.clone()));
    }
    let app = routes::router(shared.clone());
    if let Some(tcp) = &cfg.tcp {
        let addr = tcp.addr;
        let auth = Arc::new(tcp_auth::TcpAuth::new(addr, &tcp.token_file)?);
        let tcp = bind_tcp(addr).await?;
        let app = app
            .clone()
            .layer(axum::middleware::from_fn_with_state(auth, tcp_auth::check));
        tokio::spawn(async move { axum::serve(tcp, app).await });
    }
    tracing::info!(socket = %cfg.api_socket.display(), "API listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| ServeError::Socket {
            path: cfg.api_socket.display().to_string(),
            source: e,
        })?;
    socket.remove();
    tracing::info!("agent stopped; the datapath keeps enforcing from pinned state");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// A TCP listener on `addr`; failing names the address.
async fn bind_tcp(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Socket {
            path: addr.to_string(),
            source,
        })
}
