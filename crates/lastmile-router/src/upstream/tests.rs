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

/// An answer is warm-up while either rule holds: fewer answers than the count so far, or too
/// soon after the first; a new rule (a new table) keeps what the instance already answered.
#[test]
fn warm_up_lasts_while_either_rule_holds() {
    use std::sync::Arc;

    use super::UpstreamState;
    use crate::stats::StatsRing;
    use crate::table::WarmupRule;

    let state = UpstreamState::new(
        "app-0".into(),
        "127.0.0.1:9".parse().unwrap(),
        "app".into(),
        Arc::new(StatsRing::new(Duration::from_secs(60))),
    );
    // No rule: nothing is warm-up, but the first answer's time is kept (5 ms).
    assert!(!state.warming_up(5));
    state.set_warmup(&WarmupRule {
        requests: 2,
        duration: Duration::from_millis(1000),
    });
    // (ms since the router's epoch, warm-up?)
    let table = [
        (10, true),    // first counted answer, and 5 ms after the first
        (20, true),    // second
        (30, true),    // the count is done; 25 ms after the first
        (1004, true),  // 999 ms after the first
        (1005, false), // 1000 ms: both rules are over
        (1006, false),
    ];
    for (at, warm_up) in table {
        assert_eq!(state.warming_up(at), warm_up, "answer at {at} ms");
    }
    // Only a longer time rule: still measured from the first answer.
    state.set_warmup(&WarmupRule {
        requests: 0,
        duration: Duration::from_millis(2000),
    });
    assert!(state.warming_up(2004));
    assert!(!state.warming_up(2005));
}
