//! A real Prometheus scrapes `lastmile up`'s `/metrics` every second while a
//! known number of requests goes through the router: what it computes from
//! the counters must be what was sent, and the counters must never reset
//! when traffic stops.

use super::*;

/// Requests sent through the router, in batches with scrapes between them.
const BATCHES: u64 = 3;
const PER_BATCH: u64 = 100;

/// A Prometheus server on a free loopback port, with its data in a temp
/// dir; killed and reaped on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `http://{target}/metrics` every second and
    /// waits until it answers queries.
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{ scrape_interval: 1s, scrape_timeout: 1s }}\n\
                 scrape_configs:\n  \
                 - job_name: lastmile\n    \
                 metrics_path: /metrics\n    \
                 static_configs: [{{ targets: [\"{target}\"] }}]\n"
            ),
        )
        .unwrap();
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let spawned = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(error) => panic!(
                "cannot start prometheus ({error}); this test needs a real Prometheus: \
                 apt-get install prometheus"
            ),
        };
        let prometheus = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !prometheus
            .get("/-/ready")
            .is_some_and(|answer| answer.starts_with("HTTP/1.0 200"))
        {
            assert!(
                Instant::now() < deadline,
                "prometheus did not become ready within 20 s:\n{}",
                prometheus.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        prometheus
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET path` over HTTP/1.0 (no chunked answer); `None` while it does
    /// not listen yet.
    fn get(&self, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.addr).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let request = format!("GET {path} HTTP/1.0\r\nhost: {}\r\n\r\n", self.addr);
        stream.write_all(request.as_bytes()).ok()?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).ok()?;
        Some(answer)
    }

    /// The single value of an instant query (at `time`, Unix seconds, when
    /// given); `None` when the result is empty.
    fn query_at(&self, promql: &str, time: Option<f64>) -> Option<f64> {
        let mut path = format!("/api/v1/query?query={}", percent_encode(promql));
        if let Some(time) = time {
            path.push_str(&format!("&time={time}"));
        }
        let answer = self.get(&path).expect("prometheus answers");
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        let value: serde_json::Value = serde_json::from_str(body)
            .unwrap_or_else(|error| panic!("query {promql}: {error}:\n{answer}"));
        assert_eq!(value["status"], "success", "query {promql}: {value}");
        let result = value["data"]["result"].as_array()?;
        assert!(result.len() <= 1, "query {promql}: {value}");
        let sample = result.first()?;
        Some(sample["value"][1].as_str()?.parse().unwrap())
    }

    fn query(&self, promql: &str) -> Option<f64> {
        self.query_at(promql, None)
    }

    /// Polls `promql` until `ready` holds for its value (bounded); the value.
    fn wait_for(&self, promql: &str, what: &str, ready: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(value) = self.query(promql).filter(|value| ready(*value)) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what} (`{promql}` = {:?}):\n{}",
                self.query(promql),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes everything but ASCII letters and digits.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

/// 300 requests through the router, then silence: Prometheus sees exactly
/// 300 more requests, no counter reset (the old window counts fell to 0 and
/// looked like one reset per scrape), and a latency histogram whose count
/// moved by the same 300.
#[test]
fn a_real_prometheus_counts_the_requests_that_went_through_the_router() {
    let app = App::new("{ type: rolling, batch: 1 }", 1, "v1");
    let up = app.up();
    let prometheus = Prometheus::start(&app.control_addr());

    let requests = "sum(lastmile_router_requests_total)";
    let durations = "sum(lastmile_router_request_duration_seconds_count)";
    let samples = "count_over_time(lastmile_router_requests_total[5m])";
    let before = prometheus.wait_for(requests, "a first scrape with router counters", |_| true);
    let durations_before = prometheus.wait_for(durations, "the duration histogram", |_| true);

    for batch in 1..=BATCHES {
        for _ in 0..PER_BATCH {
            let answer = app.get("/");
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        }
        let sent = (batch * PER_BATCH) as f64;
        prometheus.wait_for(requests, "a scrape after the batch", |seen| {
            seen >= before + sent
        });
    }
    let sent = (BATCHES * PER_BATCH) as f64;

    // Traffic has stopped; let several more scrapes come in.
    let stopped_at = prometheus.query(samples).unwrap();
    prometheus.wait_for(samples, "five scrapes after the traffic", |count| {
        count >= stopped_at + 5.0
    });

    assert_eq!(prometheus.query(requests), Some(before + sent));
    assert_eq!(prometheus.query(durations), Some(durations_before + sent));
    assert_eq!(
        prometheus.query("sum(lastmile_router_request_duration_seconds_bucket{le=\"+Inf\"})"),
        Some(durations_before + sent)
    );
    assert_eq!(
        prometheus.query("sum(resets(lastmile_router_requests_total[5m]))"),
        Some(0.0),
        "the request counter fell between scrapes"
    );
    assert_eq!(
        prometheus.query("sum(resets(lastmile_router_request_duration_seconds_count[5m]))"),
        Some(0.0),
        "the duration histogram fell between scrapes"
    );
    // At the last sample's time nothing is extrapolated past the end; the
    // start is extrapolated by at most half a scrape interval unless the
    // counter began at 0, so allow 5 %.
    let last = prometheus
        .query("max(timestamp(lastmile_router_requests_total))")
        .unwrap();
    let increase = prometheus
        .query_at(
            "sum(increase(lastmile_router_requests_total[5m]))",
            Some(last),
        )
        .unwrap();
    assert!(
        (increase - sent).abs() <= sent * 0.05,
        "increase() over the test is {increase}, {sent} requests were sent"
    );
    drop(prometheus);
    drop(up);
}
