use std::time::Duration;

use tokio::net::TcpListener;

use super::tcp_connect;

/// Nagle on an upstream socket holds the second segment of a request until the upstream's
/// delayed ACK of the first: about 40 ms on every keep-alive request through the router.
#[tokio::test]
async fn upstream_connections_have_nagle_off() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stream = tcp_connect(listener.local_addr().unwrap(), Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        stream.nodelay().unwrap(),
        "TCP_NODELAY is set on upstream sockets"
    );
}
