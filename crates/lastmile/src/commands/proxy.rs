//! `lastmile proxy --listen ADDR --to URL [--tls-cert PEM --tls-key PEM]`:
//! the router alone, in front of one backend, in plain HTTP or HTTPS.

use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::cli::ProxyArgs;
use crate::output::outln;

pub(crate) fn proxy(args: &ProxyArgs) -> anyhow::Result<ExitCode> {
    let backend = parse_backend(&args.to)?;
    let config = listener_config(args)?;
    let runtime = if args.workers == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(args.workers))
            .enable_all()
            .build()
    }
    .context("cannot start the async runtime")?;
    let listener = std::net::TcpListener::bind(args.listen).with_context(|| {
        format!(
            "cannot listen on {}: is it in use by another process? pass a free --listen address",
            args.listen
        )
    })?;
    let listen = listener
        .local_addr()
        .context("cannot read the proxy's bound address")?;
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    // Printed once bound (stdout is line-buffered), so whoever started the
    // proxy can read the port it got for --listen …:0.
    outln!(
        "proxy listening on {scheme}://{listen} → {}",
        args.to.trim_end_matches('/')
    );
    runtime.block_on(async move {
        let shutdown = async {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
        };
        lastmile_router::run_static_proxy(listener, backend, config, shutdown)
            .await
            .with_context(|| format!("the proxy on {listen} stopped"))
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Plain HTTP, or HTTPS with the certificate and key files given.
fn listener_config(args: &ProxyArgs) -> anyhow::Result<lastmile_router::ListenerConfig> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(lastmile_router::ListenerConfig::default());
    };
    let chain = std::fs::read_to_string(cert)
        .with_context(|| format!("cannot read the certificate {}", cert.display()))?;
    let key_pem = std::fs::read_to_string(key)
        .with_context(|| format!("cannot read the private key {}", key.display()))?;
    let certs = lastmile_router::CertStore::new();
    certs
        .set_default(chain.as_bytes(), key_pem.as_bytes())
        .with_context(|| {
            format!(
                "cannot serve {} with the key {}",
                cert.display(),
                key.display()
            )
        })?;
    Ok(lastmile_router::ListenerConfig {
        tls: Some(lastmile_router::TlsSettings::new(certs)),
        ..lastmile_router::ListenerConfig::default()
    })
}

/// `http://HOST:PORT[/]` → the backend's socket address.
fn parse_backend(url: &str) -> anyhow::Result<std::net::SocketAddr> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!(
            "--to must be an http:// URL such as http://127.0.0.1:8000 (TLS to backends is not supported yet), got {url:?}"
        );
    };
    let authority = rest.trim_end_matches('/');
    if authority.contains('/') {
        bail!("--to takes no path (requests keep theirs), got {url:?}");
    }
    use std::net::ToSocketAddrs;
    authority
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {authority:?} from --to"))?
        .next()
        .with_context(|| format!("{authority:?} resolves to no address"))
}
