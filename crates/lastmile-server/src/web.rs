//! The HTTP surface of `lastmile server` and of `lastmile up`'s API: the
//! API and the dashboard over a [`Server`], plain or over TLS.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::server::{Server, config};

/// The whole HTTP surface of a server: API, webhooks, OpenAPI, dashboard.
pub fn router(server: Arc<Server>) -> axum::Router {
    crate::api::routes(server.clone())
        .merge(crate::dashboard::routes(server))
        .fallback(crate::api::no_route)
}

/// The TLS settings of `tls:`: the certificate chain and key, read now.
pub fn tls_server_config(files: &config::TlsFiles) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .with_context(|| format!("cannot read the certificate {}", files.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", files.cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no certificate", files.cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("cannot read a PEM private key from {}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS settings")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "{} and {} do not make a usable certificate and key",
                files.cert.display(),
                files.key.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `server` over TLS on `listener` until `shutdown` completes, then
/// stops every app.
pub async fn serve_tls(
    server: Arc<Server>,
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tasks = server.start().await;
    let app = router(server.clone());
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    let result = loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of descriptors and the like: wait, go on.
                        eprintln!("lastmile: accepting an API connection failed: {error}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let app = app
                    .clone()
                    .layer(axum::Extension(axum::extract::ConnectInfo(peer)));
                connections.spawn(async move {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break Ok(()),
        }
    };
    connections.abort_all();
    for task in tasks {
        task.abort();
    }
    server.shut_down().await;
    result
}

/// The API (without what `lastmile up`'s control API serves itself) and
/// the dashboard, for `lastmile up`.
pub(crate) fn local_routes(server: Arc<Server>) -> axum::Router {
    crate::api::routes_with(server.clone(), false)
        .merge(crate::dashboard::routes(server))
        .fallback(crate::api::no_route)
}

/// Serves `server` on `listener` until `shutdown` completes, then stops
/// every app (instances drained and stopped, routers closed).
pub async fn serve(
    server: Arc<Server>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tasks = server.start().await;
    let app = router(server.clone());
    let result = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    for task in tasks {
        task.abort();
    }
    server.shut_down().await;
    result.context("the API server failed")
}
