//! HTTPS end to end: `lastmile up` terminating TLS with a certificate from
//! files and with one issued and renewed by a real ACME server (Let's
//! Encrypt's pebble), under continuous HTTPS and wss load, across a deploy
//! and a restart of lastmile itself.

use super::*;

use lastmile_acme::pebble::{Pebble, PebbleOptions};
use lastmile_loadgen::TlsTarget;
use rustls::pki_types::CertificateDer;

/// The name every test certificate is for; pebble's test DNS resolves it
/// (and any other name) to 127.0.0.1.
const HOST: &str = "hello.lastmile.test";

/// Replaces the spec's plain route with an HTTPS one on the same port;
/// `tls` is the YAML of `route.tls` (flow style).
fn use_tls(app: &App, redirect_port: u16, tls: &str) {
    let path = app.dir.path().join("lastmile.yaml");
    let plain = format!("route: {{ listen: \"127.0.0.1:{}\" }}", app.port);
    let spec = std::fs::read_to_string(&path).unwrap();
    assert!(spec.contains(&plain), "{spec}");
    let https = format!(
        "route:\n      listen: \"127.0.0.1:{}\"\n      host: {HOST}\n      tls: {{ redirect_from: \"127.0.0.1:{redirect_port}\", hsts: true, {tls} }}",
        app.port
    );
    std::fs::write(&path, spec.replace(&plain, &https)).unwrap();
}

/// A test CA and a certificate for [`HOST`] signed by it, written as
/// cert.pem and key.pem in the app directory; returns the CA.
fn certificate_files(app: &App) -> CertificateDer<'static> {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "lastmile test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![HOST.to_string()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    std::fs::write(app.dir.path().join("cert.pem"), leaf.pem()).unwrap();
    std::fs::write(app.dir.path().join("key.pem"), leaf_key.serialize_pem()).unwrap();
    ca_cert.der().clone()
}

/// HTTPS and wss load on `app` that trusts only `root`.
fn https_load(app: &App, root: CertificateDer<'static>) -> Load {
    Load::start_with(LoadConfig {
        target: app.addr(),
        rate: 200,
        connections: 8,
        websockets: 2,
        tls: Some(TlsTarget::new(HOST, vec![root])),
        ..LoadConfig::default()
    })
}

/// The status entry of the certificate for [`HOST`].
fn certificate(app: &App) -> serde_json::Value {
    let status = app.status().unwrap();
    status["certificates"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|certificate| certificate["hosts"][0] == HOST)
        .cloned()
        .unwrap_or_else(|| panic!("no certificate for {HOST} in the status: {status}"))
}

/// A plain request to the redirect listener: its status line and Location.
fn redirect(port: u16, path: &str) -> (String, String) {
    let answer = exchange(
        ("127.0.0.1", port),
        &format!("GET {path} HTTP/1.1\r\nhost: {HOST}\r\nconnection: close\r\n\r\n"),
    );
    let status = answer.lines().next().unwrap_or_default().to_string();
    let location = answer
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("location")
                .then(|| value.trim().to_string())
        })
        .unwrap_or_default();
    (status, location)
}

#[test]
fn https_from_certificate_files_survives_a_deploy_and_a_restart_under_load() {
    let app = App::new("{ type: rolling, batch: 1, max_surge: 1 }", 2, "v1");
    let redirect_port = free_port();
    let ca = certificate_files(&app);
    use_tls(&app, redirect_port, "cert: cert.pem, key: key.pem");
    let up = app.up();

    let served = certificate(&app);
    assert_eq!(served["source"], "files", "{served}");
    assert_eq!(served["state"], "valid", "{served}");
    assert!(served["not_after"].is_string(), "{served}");
    let (status, location) = redirect(redirect_port, "/a/b?c=d");
    assert!(status.contains(" 308 "), "{status}");
    assert_eq!(location, format!("https://{HOST}:{}/a/b?c=d", app.port));
    let text = app.lastmile(&["status"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("https://127.0.0.1:{}", app.port)),
        "{text}"
    );
    assert!(text.contains(HOST) && text.contains("files"), "{text}");

    let load = https_load(&app, ca);
    wait_for("HTTPS answers", || load.report().ok >= 50);

    app.write_spec("{ type: rolling, batch: 1, max_surge: 1 }", 2, "v2", "");
    use_tls(&app, redirect_port, "cert: cert.pem, key: key.pem");
    let outcome = app.must(&["deploy", "production", "--in-place", "--json"]);
    assert_eq!(outcome["status"], "succeeded", "{outcome}");
    let after_deploy = load.report().ok;
    wait_for("HTTPS answers after the deploy", || {
        load.report().ok >= after_deploy + 50
    });

    let before = up.serving_pid();
    app.must(&["restart", "--json"]);
    wait_for("the new process to serve", || up.serving_pid() != before);
    let after_restart = load.report().ok;
    wait_for("HTTPS answers after the restart", || {
        load.report().ok >= after_restart + 50
    });
    let report = load.stop();
    assert_clean(&report, "HTTPS through a deploy and a restart");
    assert_eq!(report.tls_failed, 0, "{report:#?}");
}

#[test]
fn a_certificate_file_that_does_not_exist_fails_the_deploy_and_says_which() {
    let app = App::new("rolling", 1, "v1");
    use_tls(&app, free_port(), "cert: missing.pem, key: key.pem");
    let output = app.lastmile(&["up", "--in-place"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("route.tls.cert") && stderr.contains("missing.pem"),
        "{stderr}"
    );
}

#[test]
fn acme_certificates_are_issued_renewed_under_load_and_reused_after_a_restart() {
    let redirect_port = free_port();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // Short-lived certificates, so that renewal (at two thirds of the
    // lifetime) happens within the test.
    let mut pebble = runtime.block_on(Pebble::start(PebbleOptions {
        validity_seconds: Some(45),
        ..PebbleOptions::validating_on(redirect_port)
    }));
    let app = App::new("rolling", 1, "v1");
    std::fs::write(
        app.dir.path().join("pebble-listener-ca.pem"),
        pebble.listener_ca_pem(),
    )
    .unwrap();
    use_tls(
        &app,
        redirect_port,
        &format!(
            "acme: {{ email: ops@lastmile.test, directory: \"{}\", ca: pebble-listener-ca.pem }}",
            pebble.directory()
        ),
    );
    let up = app.up();
    wait_for("the certificate to be issued", || {
        certificate(&app)["state"] == "valid"
    });
    let first = certificate(&app);
    assert_eq!(first["source"], "acme", "{first}");

    let load = https_load(&app, pebble.root());
    wait_for("the certificate to be renewed", || {
        certificate(&app)["serial"] != first["serial"]
    });
    let renewed = certificate(&app);
    assert_eq!(renewed["state"], "valid", "{renewed}");
    let after_renewal = load.report().ok;
    wait_for("HTTPS answers with the renewed certificate", || {
        load.report().ok >= after_renewal + 50
    });

    // With the CA gone, a restarted lastmile can only serve what it stored.
    pebble.stop();
    let before = up.serving_pid();
    app.must(&["restart", "--json"]);
    wait_for("the new process to serve", || up.serving_pid() != before);
    assert_eq!(certificate(&app)["serial"], renewed["serial"]);
    let after_restart = load.report().ok;
    wait_for("HTTPS answers after the restart", || {
        load.report().ok >= after_restart + 50
    });
    let report = load.stop();
    assert_clean(&report, "HTTPS through a renewal and a restart");
    assert_eq!(report.tls_failed, 0, "{report:#?}");
    drop(up);
    drop(runtime);
}

#[test]
fn route_limits_in_the_spec_reach_the_router() {
    let app = App::new("rolling", 1, "v1");
    let path = app.dir.path().join("lastmile.yaml");
    let plain = format!("route: {{ listen: \"127.0.0.1:{}\" }}", app.port);
    let spec = std::fs::read_to_string(&path).unwrap().replace(
        &plain,
        &format!(
            "route: {{ listen: \"127.0.0.1:{}\", limits: {{ max_body: 1KiB, max_headers: 20 }} }}",
            app.port
        ),
    );
    std::fs::write(&path, spec).unwrap();
    let _up = app.up();

    let body = "x".repeat(1024);
    let answer = exchange(
        app.addr(),
        &format!(
            "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1024\r\nconnection: close\r\n\r\n{body}"
        ),
    );
    // Forwarded: hello itself refuses POST.
    assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
    let answer = exchange(
        app.addr(),
        &format!(
            "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1025\r\nconnection: close\r\n\r\n{body}x"
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");

    let headers: String = (0..19).map(|i| format!("x-h{i}: 1\r\n")).collect();
    let answer = exchange(
        app.addr(),
        &format!("GET / HTTP/1.1\r\nhost: x\r\n{headers}connection: close\r\n\r\n"),
    );
    assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    let headers: String = (0..18).map(|i| format!("x-h{i}: 1\r\n")).collect();
    let answer = exchange(
        app.addr(),
        &format!("GET / HTTP/1.1\r\nhost: x\r\n{headers}connection: close\r\n\r\n"),
    );
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}
