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
