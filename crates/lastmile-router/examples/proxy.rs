//! `proxy --listen ADDR --to http://ADDR`: the static proxy on one thread, for benchmarks.

use std::net::SocketAddr;

fn usage() -> ! {
    eprintln!("usage: proxy --listen ADDR --to http://ADDR");
    std::process::exit(2);
}

fn main() -> std::io::Result<()> {
    let mut listen: Option<SocketAddr> = None;
    let mut to: Option<SocketAddr> = None;
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
            _ => usage(),
        }
    }
    let (Some(listen), Some(to)) = (listen, to) else {
        usage()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(lastmile_router::run_static_proxy(listen, to, async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }))
}
