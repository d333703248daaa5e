//! Who is at the keyboard, for the event log: `local:<login name>`.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;

/// The actor recorded for commands run on this machine (`local:alice`).
///
/// The name comes from `$USER`, else `$LOGNAME`, else the entry for this process's uid in
/// `/etc/passwd`, else the bare uid (`local:uid:1000`): containers and cron jobs often run
/// with neither variable set, and `local:unknown` tells an auditor nothing.
pub(crate) fn actor() -> String {
    let environment: HashMap<String, String> = ["USER", "LOGNAME"]
        .into_iter()
        .filter_map(|name| Some((name.to_owned(), std::env::var(name).ok()?)))
        .collect();
    // The owner of `/proc/self` is this process's uid; std has no getuid without unsafe code.
    let uid = std::fs::metadata("/proc/self")
        .map(|metadata| metadata.uid())
        .ok();
    let passwd = std::fs::read_to_string("/etc/passwd").ok();
    actor_from(&environment, uid, passwd.as_deref())
}

/// [`actor`] with its inputs explicit: the environment, the uid (when known) and the text of
/// `/etc/passwd` (when readable).
fn actor_from(
    environment: &HashMap<String, String>,
    uid: Option<u32>,
    passwd: Option<&str>,
) -> String {
    let from_environment = ["USER", "LOGNAME"]
        .into_iter()
        .filter_map(|name| environment.get(name))
        .map(|value| value.trim())
        .find(|value| !value.is_empty());
    if let Some(name) = from_environment {
        return format!("local:{name}");
    }
    match uid {
        Some(uid) => match passwd.and_then(|passwd| login_name(passwd, uid)) {
            Some(name) => format!("local:{name}"),
            None => format!("local:uid:{uid}"),
        },
        None => "local:unknown".to_owned(),
    }
}

/// The login name of `uid` in the text of `/etc/passwd` (`name:password:uid:gid:…`).
fn login_name(passwd: &str, uid: u32) -> Option<&str> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let entry_uid: u32 = fields.nth(1)?.parse().ok()?;
        (entry_uid == uid && !name.is_empty()).then_some(name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
                          # a comment line\n\
                          broken\n\
                          alice:x:1000:1000:Alice:/home/alice:/bin/sh\n";

    fn environment(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn user_comes_first_then_logname() {
        let both = environment(&[("USER", "bob"), ("LOGNAME", "carol")]);
        assert_eq!(actor_from(&both, Some(1000), Some(PASSWD)), "local:bob");
        let logname = environment(&[("LOGNAME", "carol")]);
        assert_eq!(
            actor_from(&logname, Some(1000), Some(PASSWD)),
            "local:carol"
        );
        // An empty variable is as good as unset.
        let empty_user = environment(&[("USER", ""), ("LOGNAME", "carol")]);
        assert_eq!(
            actor_from(&empty_user, Some(1000), Some(PASSWD)),
            "local:carol"
        );
    }

    #[test]
    fn without_variables_the_uid_is_looked_up_in_etc_passwd() {
        let none = environment(&[]);
        assert_eq!(actor_from(&none, Some(1000), Some(PASSWD)), "local:alice");
        assert_eq!(actor_from(&none, Some(0), Some(PASSWD)), "local:root");
    }

    #[test]
    fn an_unlisted_uid_is_recorded_as_a_number() {
        let none = environment(&[]);
        assert_eq!(
            actor_from(&none, Some(4242), Some(PASSWD)),
            "local:uid:4242"
        );
        assert_eq!(actor_from(&none, Some(1000), None), "local:uid:1000");
        assert_eq!(actor_from(&none, None, Some(PASSWD)), "local:unknown");
    }
}
