use std::time::Duration;

use super::*;

#[test]
fn durations_accept_every_documented_form() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
    assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
    assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
    assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
    assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
}

#[test]
fn durations_refuse_bare_numbers_unknown_units_and_junk() {
    assert!(
        parse_duration("10")
            .expect_err("no unit")
            .contains("write \"10s\"")
    );
    assert!(parse_duration("10 parsecs").is_err());
    assert!(
        parse_duration("10y")
            .expect_err("unknown unit")
            .contains("unknown unit `y`")
    );
    assert!(parse_duration("s").is_err());
    assert!(parse_duration("").is_err());
    assert!(parse_duration("1..2s").is_err());
    assert!(parse_duration("99999999999999999999999h").is_err());
}

#[test]
fn percentages_are_above_zero_and_at_most_one_hundred() {
    assert_eq!(parse_percent("5"), Ok(5.0));
    assert_eq!(parse_percent("5%"), Ok(5.0));
    assert_eq!(parse_percent("2.5%"), Ok(2.5));
    assert_eq!(parse_percent("100"), Ok(100.0));
    assert!(parse_percent("0").is_err());
    assert!(parse_percent("100.1").is_err());
    assert!(parse_percent("five").is_err());
    assert!(parse_percent("NaN").is_err());
}

#[test]
fn addresses_take_host_port_bare_port_and_bracketed_ipv6() {
    assert_eq!(
        parse_address("127.0.0.1:8080"),
        Ok("127.0.0.1:8080".parse().expect("addr"))
    );
    assert_eq!(
        parse_address(":8080"),
        Ok("0.0.0.0:8080".parse().expect("addr"))
    );
    assert_eq!(
        parse_address("[::1]:9000"),
        Ok("[::1]:9000".parse().expect("addr"))
    );
    assert_eq!(
        parse_address("localhost:80"),
        Ok("127.0.0.1:80".parse().expect("addr"))
    );
    assert!(matches!(
        parse_address("127.0.0.1"),
        Err(AddressError::Address(_))
    ));
    assert!(matches!(
        parse_address("127.0.0.1:0"),
        Err(AddressError::Port(_))
    ));
    assert!(matches!(
        parse_address(":70000"),
        Err(AddressError::Port(_))
    ));
    assert!(matches!(
        parse_address("example.com:80"),
        Err(AddressError::Address(_))
    ));
    assert!(matches!(
        parse_address("::1:80"),
        Err(AddressError::Address(_))
    ));
}

#[test]
fn names_follow_their_patterns() {
    assert!(is_app_name("hello-2"));
    assert!(!is_app_name("Hello"));
    assert!(!is_app_name("2hello"));
    assert!(!is_app_name(&"a".repeat(64)));
    assert!(is_app_name(&"a".repeat(63)));
    assert!(is_step_name("build.release_x-1"));
    assert!(!is_step_name("build step"));
    assert!(is_env_name("_PORT2"));
    assert!(!is_env_name("2PORT"));
    assert!(!is_env_name("MY-VAR"));
}

#[test]
fn suggestions_find_typos_but_not_strangers() {
    assert_eq!(
        did_you_mean("nedds", ["name", "run", "needs"]),
        Some("needs")
    );
    assert_eq!(did_you_mean("rn", ["name", "run", "needs"]), Some("run"));
    assert_eq!(did_you_mean("zebra", ["name", "run", "needs"]), None);
}

#[test]
fn sizes_take_decimal_and_binary_units() {
    assert_eq!(parse_size("512B"), Ok(512));
    assert_eq!(parse_size("10KB"), Ok(10_000));
    assert_eq!(parse_size("10KiB"), Ok(10_240));
    assert_eq!(parse_size("10MiB"), Ok(10 * 1024 * 1024));
    assert_eq!(parse_size("2 MB"), Ok(2_000_000));
    assert_eq!(parse_size("1.5GiB"), Ok(1_610_612_736));
    assert_eq!(parse_size("1TiB"), Ok(1 << 40));
    assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
}

#[test]
fn sizes_refuse_bare_numbers_guessed_units_and_junk() {
    assert!(
        parse_size("1024")
            .expect_err("no unit")
            .contains("has no unit")
    );
    assert!(
        parse_size("10mb")
            .expect_err("case")
            .contains("unknown unit `mb`")
    );
    assert!(parse_size("10M").expect_err("no B").contains("KiB"));
    assert!(parse_size("").is_err());
    assert!(parse_size("MiB").is_err());
    assert!(parse_size("1..2MiB").is_err());
    assert!(parse_size("-1MiB").is_err());
    assert!(parse_size("99999999999999999999TiB").is_err());
}

#[test]
fn sizes_format_in_the_largest_binary_unit_that_divides_them() {
    assert_eq!(format_size(10 * 1024 * 1024), "10MiB");
    assert_eq!(format_size(1536), "1536B");
    assert_eq!(format_size(1 << 40), "1TiB");
    assert_eq!(format_size(0), "0B");
}

#[test]
fn dns_names_and_emails_follow_their_patterns() {
    assert!(is_dns_name("hello.example.com"));
    assert!(is_dns_name("localhost"));
    assert!(is_dns_name("xn--bcher-kva.example"));
    assert!(!is_dns_name("*.example.com"));
    assert!(!is_dns_name("example.com."));
    assert!(!is_dns_name("-bad.example.com"));
    assert!(!is_dns_name("under_score.example.com"));
    assert!(!is_dns_name("example.com:443"));
    assert!(!is_dns_name(&format!("{}.com", "a".repeat(64))));
    assert!(is_email("ops@example.com"));
    assert!(is_email("ops+certs@mail.example.co.uk"));
    assert!(!is_email("ops"));
    assert!(!is_email("ops@localhost"));
    assert!(!is_email("@example.com"));
    assert!(!is_email("ops@@example.com"));
    assert!(!is_email("ops team@example.com"));
    assert!(!is_email("mailto:ops@example.com"));
}

#[test]
fn durations_format_in_the_largest_unit_that_divides_them() {
    assert_eq!(format_duration(Duration::ZERO), "0s");
    assert_eq!(format_duration(Duration::from_millis(100)), "100ms");
    assert_eq!(format_duration(Duration::from_secs(90)), "90s");
    assert_eq!(format_duration(Duration::from_secs(60)), "1m");
    assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
    assert_eq!(format_duration(Duration::from_secs(365 * 86_400)), "365d");
}

#[test]
fn urls_need_a_host() {
    assert!(is_http_url("http://127.0.0.1:9090/metrics"));
    assert!(is_http_url("https://user@prometheus.internal/api"));
    assert!(is_http_url("http://[::1]:9090"));
    assert!(!is_http_url("http://:9090/metrics"));
    assert!(!is_http_url("http://user@:9090"));
    assert!(!is_http_url("http://[]:9090"));
    assert!(!is_http_url("http://?query"));
    assert!(!is_http_url("https://"));
}
