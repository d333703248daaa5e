//! An OFREP server over an in-memory flag set, for `bench/flags`:
//! `cargo run --release -p lastmile-flags --example ofrep_server [ADDR]`.
//!
//! Serves a static flag (`static-flag`) and a 3-rule targeted rollout
//! (`new-checkout`, defined in `support/bench_flags.rs` and shared with
//! `examples/bench.rs`) on ONE thread (a current-thread runtime), so its
//! throughput is per core.
//! ADDR defaults to 127.0.0.1:0; the bound address is printed on stdout.

use std::sync::Arc;

use axum::serve::ListenerExt;

use lastmile_flags::{CanaryLookup, FlagSet, FlagSource, NoCanary, OfrepConfig, ofrep_router};

#[path = "support/bench_flags.rs"]
mod bench_flags;

/// A flag set that never changes.
#[derive(Debug)]
struct Fixed(FlagSet);

impl FlagSource for Fixed {
    fn snapshot(&self) -> (FlagSet, u64) {
        (self.0.clone(), 1)
    }

    fn canary(&self) -> &dyn CanaryLookup {
        &NoCanary
    }
}

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let source = Arc::new(Fixed(bench_flags::bench_flags()));
    let router = ofrep_router(source, OfrepConfig::default());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ofrep_server: cannot start the runtime: {error}");
            std::process::exit(1);
        }
    };
    let served = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("{}", listener.local_addr()?);
        // Answers are small and each waits for its request: send at once.
        let listener = listener.tap_io(|stream| {
            let _ = stream.set_nodelay(true);
        });
        axum::serve(listener, router).await
    });
    if let Err(error) = served {
        eprintln!("ofrep_server: {error}");
        std::process::exit(1);
    }
}
