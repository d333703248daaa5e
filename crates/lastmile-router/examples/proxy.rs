//! `proxy --listen ADDR --to http://ADDR [--tls-cert PEM --tls-key PEM]`: the static proxy on
//! one thread, for benchmarks (`bench/proxy`, and `bench/tls` with a certificate).

use std::net::SocketAddr;

fn usage() -> ! {
    eprintln!("usage: proxy --listen ADDR --to http://ADDR [--tls-cert PEM --tls-key PEM]");
    std::process::exit(2);
}

fn main() -> std::io::Result<()> {
    let mut listen: Option<SocketAddr> = None;
    let mut to: Option<SocketAddr> = None;
    let mut cert: Option<String> = None;
    let mut key: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--listen" => listen = Some(v.parse().unwrap_or_else(|_| usage())),
            "--to" => {
                let v = v
                    .strip_prefix("http://")
                    .unwrap_or(&v)
                    .trim_end_matches('/');
                to = Some(v.parse().unwrap_or_else(|_| usage()));
            }
            "--tls-cert" => cert = Some(v),
            "--tls-key" => key = Some(v),
            _ => usage(),
        }
    }
    let (Some(listen), Some(to)) = (listen, to) else {
        usage()
    };
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => {
            let certs = lastmile_router::CertStore::new();
            let chain = std::fs::read_to_string(&cert)?;
            let key = std::fs::read_to_string(&key)?;
            certs
                .set_default(chain.as_bytes(), key.as_bytes())
                .map_err(|error| std::io::Error::other(error.to_string()))?;
            Some(lastmile_router::TlsSettings::new(certs))
        }
        (None, None) => None,
        _ => usage(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let config = lastmile_router::ListenerConfig {
        tls,
        ..lastmile_router::ListenerConfig::default()
    };
    rt.block_on(lastmile_router::run_static_proxy(
        std::net::TcpListener::bind(listen)?,
        to,
        config,
        async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return std::future::pending().await,
                };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        },
    ))
}
