//! `lastmile server`, `lastmile token …`, `lastmile secret …`.

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use lastmile_server::server::{Server, ServerConfig};
use lastmile_store::{Role, SecretBox, SqliteStore, Store};
use serde_json::{Value, json};

use crate::actor::actor;
use crate::cli::{AdminTarget, SecretCommand, ServerArgs, TokenCommand};
use crate::commands::run::runtime;
use crate::commands::up::Printer;
use crate::control::Control;
use crate::output::outln;

pub(crate) fn server(args: &ServerArgs) -> anyhow::Result<ExitCode> {
    let config = ServerConfig::load(&args.config)?;
    let runtime = runtime()?;
    runtime.block_on(async move {
        // Before the listener: a stop asked for as soon as it answers is
        // still a clean stop.
        let stop = lastmile_server::up::stop_requested();
        let listen = config.listen;
        let server = Server::open(config, Arc::new(Printer))?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} for the API; change `listen` in {}", args.config.display()))?;
        let bound = listener.local_addr()?;
        let tls = match &server.config().tls {
            Some(files) => Some(lastmile_server::web::tls_server_config(files)?),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        write_server_file(server.config(), bound, scheme)?;
        outln!("lastmile server: API and dashboard on {scheme}://{bound} (every call needs a token)");
        if tls.is_none() && !bound.ip().is_loopback() {
            eprintln!(
                "{} {bound} is not loopback and `tls` is not set: tokens and secrets would cross the network in clear; set `tls: {{ cert: FILE, key: FILE }}` in {} or put a TLS proxy in front",
                crate::output::warn("warning:"),
                args.config.display()
            );
        }
        outln!("  webhooks: POST {scheme}://{bound}/api/v1/webhooks/APP (GitHub, Gitea, GitLab; signed with the app's secret)");
        for app in server.apps().values() {
            let config = app.config();
            let hook = match &config.webhook_secret_env {
                Some(var) if std::env::var(var).is_ok_and(|v| !v.is_empty()) => "webhooks on".to_owned(),
                Some(var) => format!("webhooks refused until {var} is set"),
                None => "no webhook secret (set webhook_secret_env to take webhooks)".to_owned(),
            };
            outln!(
                "  {}: {} [{}], polled every {:?}, {hook}{}",
                config.name,
                config.shown_repo(),
                config.branches.join(", "),
                config.poll_interval,
                if config.self_heal { ", self-heal on" } else { "" }
            );
        }
        if server.store().list_tokens().map(|tokens| tokens.iter().all(|t| t.revoked_at.is_some())).unwrap_or(true) {
            outln!(
                "  no API token yet: create one with `lastmile token create --config {} --role admin --name you`",
                args.config.display()
            );
        }
        let shutdown = async {
            stop.await;
            outln!("stopping: draining connections and instances");
        };
        match tls {
            Some(tls) => {
                lastmile_server::web::serve_tls(server.clone(), listener, tls, shutdown).await?;
            }
            None => lastmile_server::web::serve(server.clone(), listener, shutdown).await?,
        }
        let _ = std::fs::remove_file(server.config().state_dir.join("server.json"));
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn write_server_file(
    config: &ServerConfig,
    bound: std::net::SocketAddr,
    scheme: &str,
) -> anyhow::Result<()> {
    let path = config.state_dir.join("server.json");
    let temp = config
        .state_dir
        .join(format!("server.json.{}", std::process::id()));
    let body =
        json!({ "pid": std::process::id(), "listen": bound, "url": format!("{scheme}://{bound}") });
    std::fs::write(&temp, serde_json::to_vec_pretty(&body)?)
        .with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Where an admin command acts.
enum Target {
    /// The state of a server on this machine.
    Local(Box<ServerConfig>, SqliteStore),
    /// A running server's API.
    Remote(Control),
}

fn target(args: &AdminTarget) -> anyhow::Result<Target> {
    if let Some(config) = &args.config {
        let config = ServerConfig::load(config)?;
        std::fs::create_dir_all(&config.state_dir)
            .with_context(|| format!("cannot create {}", config.state_dir.display()))?;
        let (store, _) = SqliteStore::open(&config.state_dir)
            .with_context(|| format!("cannot open the state in {}", config.state_dir.display()))?;
        return Ok(Target::Local(Box::new(config), store));
    }
    if let Some(remote) = crate::control::remote() {
        return Ok(Target::Remote(Control::server(&remote.url)?));
    }
    bail!(
        "name the server: --config server.yaml (its state on this machine) or --server URL with an admin LASTMILE_TOKEN"
    )
}

pub(crate) fn token(command: &TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Create {
            role,
            name,
            target: args,
        } => {
            let parsed: Role = role
                .parse()
                .map_err(|error: lastmile_store::UnknownRole| anyhow::anyhow!("{error}"))?;
            let answer = match target(args)? {
                Target::Local(_, store) => {
                    let name = match name {
                        Some(name) => name.clone(),
                        None => format!("{parsed}-{}", store.list_tokens()?.len() + 1),
                    };
                    let (record, token) =
                        lastmile_server::tokens::create(&store, &name, parsed, &actor())
                            .map_err(|error| anyhow::anyhow!(error))?;
                    json!({ "token": token, "record": record })
                }
                Target::Remote(control) => {
                    let name = name
                        .clone()
                        .unwrap_or_else(|| format!("{parsed}-{}", std::process::id()));
                    control.post(
                        "/api/v1/tokens",
                        &json!({ "name": name, "role": role }),
                        std::time::Duration::from_secs(10),
                    )?
                }
            };
            let name = answer["record"]["name"].as_str().unwrap_or_default();
            let shown = if args.json {
                outln!("{}", serde_json::to_string_pretty(&answer)?)
            } else {
                eprintln!(
                    "token `{name}` ({}) created; it is shown once, below: keep it in a secret store",
                    answer["record"]["role"].as_str().unwrap_or_default()
                );
                outln!("{}", answer["token"].as_str().unwrap_or_default())
            };
            // The token exists only in what was printed: unseen, it is useless.
            if !shown {
                bail!(
                    "token `{name}` was created but stdout is closed, so nobody saw it; \
                     revoke it with `lastmile token revoke {name}` and create another"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::List { target: args } => {
            let tokens: Value = match target(args)? {
                Target::Local(_, store) => json!(store.list_tokens()?),
                Target::Remote(control) => control.get("/api/v1/tokens")?["tokens"].clone(),
            };
            if args.json {
                outln!("{}", serde_json::to_string_pretty(&tokens)?);
            } else {
                for token in tokens.as_array().into_iter().flatten() {
                    outln!(
                        "{:<24} {:<9} {}",
                        token["name"].as_str().unwrap_or_default(),
                        token["role"].as_str().unwrap_or_default(),
                        if token["revoked_at"].is_null() {
                            "active"
                        } else {
                            "revoked"
                        }
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Revoke { name, target: args } => {
            let revoked = match target(args)? {
                Target::Local(_, store) => store.revoke_token(name, &actor())?,
                Target::Remote(control) => {
                    control.delete(&format!("/api/v1/tokens/{name}")).is_ok()
                }
            };
            if !revoked {
                bail!("no active token named `{name}`; `lastmile token list` shows them");
            }
            eprintln!("token `{name}` revoked");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) fn secret(command: &SecretCommand) -> anyhow::Result<ExitCode> {
    match command {
        SecretCommand::Set {
            app,
            name,
            target: args,
        } => {
            let mut value = String::new();
            std::io::stdin()
                .read_to_string(&mut value)
                .context("cannot read the secret's value from stdin")?;
            if value.ends_with('\n') {
                value.pop();
                if value.ends_with('\r') {
                    value.pop();
                }
            }
            if value.is_empty() {
                bail!(
                    "the value is empty: pipe it in, e.g. `printf %s \"$VALUE\" | lastmile secret set {app} {name}`"
                );
            }
            match target(args)? {
                Target::Local(config, store) => {
                    if !config.apps.iter().any(|a| &a.name == app) {
                        bail!("server.yaml has no app `{app}`");
                    }
                    if !valid_secret_name(name) {
                        bail!(
                            "secret name `{name}` must be an environment variable name: A-Z, 0-9 and _, not starting with a digit"
                        );
                    }
                    let secret_box =
                        SecretBox::open_or_create(&config.state_dir.join("secret.key"))?;
                    let (nonce, ciphertext) =
                        secret_box.seal(&format!("{app}/{name}"), value.as_bytes());
                    store.put_secret(app, name, &nonce, &ciphertext, &actor())?;
                }
                Target::Remote(control) => {
                    control.put(
                        &format!("/api/v1/apps/{app}/secrets/{name}"),
                        &json!({ "value": value }),
                    )?;
                }
            }
            eprintln!(
                "secret {name} of {app} stored (encrypted); instances get it at their next deployment"
            );
            Ok(ExitCode::SUCCESS)
        }
        SecretCommand::List { app, target: args } => {
            let secrets: Value = match target(args)? {
                Target::Local(_, store) => json!(store.list_secrets(app)?),
                Target::Remote(control) => {
                    control.get(&format!("/api/v1/apps/{app}/secrets"))?["secrets"].clone()
                }
            };
            if args.json {
                outln!("{}", serde_json::to_string_pretty(&secrets)?);
            } else {
                for secret in secrets.as_array().into_iter().flatten() {
                    outln!(
                        "{:<32} set by {}",
                        secret["name"].as_str().unwrap_or_default(),
                        secret["updated_by"].as_str().unwrap_or_default()
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        SecretCommand::Delete {
            app,
            name,
            target: args,
        } => {
            let deleted = match target(args)? {
                Target::Local(_, store) => store.delete_secret(app, name, &actor())?,
                Target::Remote(control) => control
                    .delete(&format!("/api/v1/apps/{app}/secrets/{name}"))?["deleted"]
                    .as_bool()
                    .unwrap_or(false),
            };
            if !deleted {
                bail!("app `{app}` has no secret `{name}`");
            }
            eprintln!("secret {name} of {app} deleted");
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn valid_secret_name(name: &str) -> bool {
    !name.is_empty()
        && !name.as_bytes()[0].is_ascii_digit()
        && name
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
}
