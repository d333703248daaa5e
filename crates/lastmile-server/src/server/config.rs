//! `server.yaml`: what `lastmile server` listens on and which repositories
//! it watches.
//!
//! ```yaml
//! listen: 127.0.0.1:7070          # API, dashboard and webhooks
//! state_dir: /var/lib/lastmile    # default: `.lastmile-server` beside this file
//! poll_interval: 5s               # default for every app
//! max_builds: 2                   # pipelines at once across apps (default: one per CPU)
//! tls: { cert: cert.pem, key: key.pem }   # serve https (needed off loopback: tokens travel in every call)
//! apps:
//!   - name: hello                 # must equal `app:` in the repository's lastmile.yaml
//!     repo: https://git.example.com/acme/hello.git
//!     branches: [main]            # globs; default [main]
//!     path: .                     # directory of lastmile.yaml in the repository
//!     webhook_secret_env: HELLO_WEBHOOK_SECRET
//!     self_heal: true
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The whole file, checked.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where the API, the dashboard and the webhook endpoint listen.
    pub listen: SocketAddr,
    /// Absolute state directory.
    pub state_dir: PathBuf,
    /// Watched repositories, one app each.
    pub apps: Vec<AppConfig>,
    /// Pipelines running at once across apps; more commits wait their turn.
    pub max_builds: usize,
    /// Serve the API and dashboard over TLS with this certificate and key.
    pub tls: Option<TlsFiles>,
}

/// `tls:` PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: String,
    key: String,
}

/// One watched repository.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The app's name; the repository's `lastmile.yaml` must say the same.
    pub name: String,
    /// Clone URL: `file://`, a plain path, `http://` or `https://`.
    pub repo: String,
    /// Branch globs whose new commits are built and deployed.
    pub branches: Vec<String>,
    /// Directory of `lastmile.yaml` inside the repository.
    pub path: PathBuf,
    /// Time between polls.
    pub poll_interval: Duration,
    /// Environment variable holding the webhook secret; webhooks are
    /// refused while it is unset.
    pub webhook_secret_env: Option<String>,
    /// Restore the desired state when the actual one drifts.
    pub self_heal: bool,
}

impl AppConfig {
    /// `repo` as it may be shown (banner, API, dashboard, errors): any password as `***`.
    pub fn shown_repo(&self) -> String {
        lastmile_git::redact(&self.repo)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    state_dir: Option<String>,
    poll_interval: Option<String>,
    max_builds: Option<usize>,
    tls: Option<RawTls>,
    #[serde(default)]
    apps: Vec<RawApp>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: String,
    repo: String,
    branches: Option<Vec<String>>,
    path: Option<String>,
    poll_interval: Option<String>,
    webhook_secret_env: Option<String>,
    #[serde(default)]
    self_heal: bool,
}

/// Default API address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7070";

impl ServerConfig {
    /// Reads and checks `path`; errors name the file, the line and what to
    /// change.
    pub fn load(path: &Path) -> anyhow::Result<ServerConfig> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            anyhow::anyhow!(
                "cannot read {}: {error}; pass the server's configuration with --config FILE",
                path.display()
            )
        })?;
        let base = std::path::absolute(path)
            .ok()
            .and_then(|file| file.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        ServerConfig::parse(&path.display().to_string(), &text, &base)
    }

    /// Parses the text of a `server.yaml`; relative paths are relative to
    /// `base`.
    pub fn parse(file: &str, text: &str, base: &Path) -> anyhow::Result<ServerConfig> {
        let raw: RawConfig =
            serde_saphyr::from_str(text).map_err(|error| anyhow::anyhow!("{file}: {error}"))?;
        let listen = raw.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen: SocketAddr = listen.parse().map_err(|_| {
            anyhow::anyhow!("{file}: `listen: {listen}` is not an address; write it as IP:PORT, e.g. 127.0.0.1:7070")
        })?;
        let state_dir = match raw.state_dir {
            Some(dir) => base.join(dir),
            None => base.join(".lastmile-server"),
        };
        let default_poll = duration(file, "poll_interval", raw.poll_interval.as_deref(), "5s")?;
        let mut apps = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for app in raw.apps {
            if !valid_name(&app.name) {
                anyhow::bail!(
                    "{file}: app name `{}` must be 1-63 lowercase letters, digits or `-` (as `app:` in lastmile.yaml)",
                    app.name
                );
            }
            if !names.insert(app.name.clone()) {
                anyhow::bail!(
                    "{file}: app `{}` is listed twice; give each repository its own name",
                    app.name
                );
            }
            let repo = if app.repo.contains("://") || app.repo.starts_with('/') {
                app.repo
            } else {
                base.join(&app.repo).display().to_string()
            };
            let poll_interval = match app.poll_interval.as_deref() {
                Some(text) => duration(file, "poll_interval", Some(text), "5s")?,
                None => default_poll,
            };
            let path = PathBuf::from(app.path.unwrap_or_else(|| ".".to_owned()));
            if path.is_absolute()
                || path
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
            {
                anyhow::bail!(
                    "{file}: app `{}`: `path: {}` must be a directory inside the repository (relative, no `..`)",
                    app.name,
                    path.display()
                );
            }
            apps.push(AppConfig {
                name: app.name,
                repo,
                branches: app.branches.unwrap_or_else(|| vec!["main".to_owned()]),
                path,
                poll_interval,
                webhook_secret_env: app.webhook_secret_env,
                self_heal: app.self_heal,
            });
        }
        let max_builds = match raw.max_builds {
            Some(0) => anyhow::bail!("{file}: `max_builds: 0` would never build; give at least 1"),
            Some(n) => n,
            None => std::thread::available_parallelism().map_or(1, usize::from),
        };
        let tls = raw.tls.map(|tls| TlsFiles {
            cert: base.join(tls.cert),
            key: base.join(tls.key),
        });
        Ok(ServerConfig {
            listen,
            state_dir,
            apps,
            max_builds,
            tls,
        })
    }
}

fn duration(file: &str, key: &str, text: Option<&str>, default: &str) -> anyhow::Result<Duration> {
    let text = text.unwrap_or(default);
    let value = lastmile_spec::parse_duration(text)
        .map_err(|error| anyhow::anyhow!("{file}: `{key}: {text}`: {error}"))?;
    if value < Duration::from_millis(100) {
        anyhow::bail!("{file}: `{key}: {text}` is too short; poll at most every 100ms");
    }
    Ok(value)
}

fn valid_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses_with_defaults() {
        let config = ServerConfig::parse(
            "server.yaml",
            "apps:\n  - name: hello\n    repo: repos/hello\n    self_heal: true\n",
            Path::new("/srv"),
        )
        .unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.state_dir, Path::new("/srv/.lastmile-server"));
        assert_eq!(config.apps[0].repo, "/srv/repos/hello");
        assert_eq!(config.apps[0].branches, vec!["main".to_owned()]);
        assert_eq!(config.apps[0].poll_interval, Duration::from_secs(5));
        assert!(config.apps[0].self_heal);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_naming_the_file() {
        let unknown = ServerConfig::parse("s.yaml", "apps: []\npoll: 5s\n", Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(
            unknown.contains("s.yaml") && unknown.contains("poll"),
            "{unknown}"
        );
        let listen = ServerConfig::parse("s.yaml", "listen: nowhere\n", Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(listen.contains("IP:PORT"), "{listen}");
        let twice = ServerConfig::parse(
            "s.yaml",
            "apps:\n  - { name: a, repo: /r }\n  - { name: a, repo: /s }\n",
            Path::new("/"),
        )
        .unwrap_err()
        .to_string();
        assert!(twice.contains("twice"), "{twice}");
        let escape = ServerConfig::parse(
            "s.yaml",
            "apps:\n  - { name: a, repo: /r, path: ../x }\n",
            Path::new("/"),
        )
        .unwrap_err()
        .to_string();
        assert!(escape.contains("inside the repository"), "{escape}");
    }
}
