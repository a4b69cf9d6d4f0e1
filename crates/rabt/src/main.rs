//! The `rabt` command: serve, work, migrate, describe.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rabt::{
    app::{self, Application, ServeOptions},
    config::Settings,
    db, telemetry,
};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "rabt", version, about = "The rabt backend")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (and run background jobs, unless --no-workers).
    Serve {
        /// API only; run `rabt worker` elsewhere for the jobs.
        #[arg(long)]
        no_workers: bool,
        /// Do not apply pending migrations at start.
        #[arg(long)]
        no_migrate: bool,
    },
    /// Run background jobs only.
    Worker,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// Operator commands.
    Admin {
        #[command(subcommand)]
        action: AdminCommand,
    },
    /// The demo accounts of `scripts/dev`.
    Demo {
        #[command(subcommand)]
        action: DemoCommand,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
    },
    /// Email templates and product news.
    Email {
        #[command(subcommand)]
        action: EmailCommand,
    },
    /// Encryption keys.
    Keys {
        #[command(subcommand)]
        action: KeysCommand,
    },
    /// The settings.
    Config {
        #[command(subcommand)]
        action: ConfigCommand,
    },
    /// Ask this machine's server whether it is ready (`/health/ready`): exit
    /// status 0 when it answers 200, 1 otherwise. For container health
    /// checks: the image has no shell or curl.
    Healthcheck {
        /// The address to ask; by default the loopback address on the port
        /// of RABT_BIND (https when RABT_TLS_CERT is set).
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the settings exactly as `serve` loads them, without starting
    /// or connecting to anything, and print every setting's effective value
    /// (secrets redacted). Exit status 2 when `serve` would refuse them.
    Check,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Re-encrypt every sealed value under RABT_ENCRYPTION_KEY; values under a
    /// key in RABT_ENCRYPTION_OLD_KEYS are read with it. Safe to run again.
    Rotate,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain and report the first altered or missing entry
    /// (exit status 1).
    Verify,
}

#[derive(Subcommand)]
enum EmailCommand {
    /// Render a template (or `all`) with sample data into a folder, as
    /// NAME.html, NAME.txt and NAME.subject.txt, for designers. Needs no
    /// database.
    Preview {
        name: String,
        #[arg(long, default_value = "email-preview")]
        out: std::path::PathBuf,
    },
    /// Queue product news to every user who opted in (`product_news`).
    News {
        /// One line, up to 120 characters.
        #[arg(long)]
        headline: String,
        /// A paragraph of the body; repeat for more.
        #[arg(long = "paragraph")]
        paragraphs: Vec<String>,
        /// The path on the web app the email links to, e.g. /changelog.
        #[arg(long)]
        link: String,
    },
}

#[derive(Subcommand)]
enum DemoCommand {
    /// Give every demo account (@demo.rabt.dev) the demo password and a
    /// verified address (development only).
    SignIn,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Grant a role (e.g. `admin`) to the user with this email.
    Grant { email: String, role: String },
    /// Take a role away from the user with this email.
    Revoke { email: String, role: String },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Openapi = cli.command {
        return match app::openapi_document().to_pretty_json() {
            Ok(json) => {
                #[allow(clippy::print_stdout)]
                {
                    println!("{json}");
                }
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("rabt: {err}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Email {
        action: EmailCommand::Preview { name, out },
    } = &cli.command
    {
        return match preview(name, out) {
            Ok(written) => {
                #[allow(clippy::print_stdout)]
                {
                    println!("wrote {written} file(s) to {}", out.display());
                }
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("rabt: {err:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Command::Config {
        action: ConfigCommand::Check,
    } = &cli.command
    {
        return config_check();
    }
    if let Command::Healthcheck { url } = &cli.command {
        return healthcheck(url.as_deref());
    }
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(err) => {
            eprintln!("rabt: {err}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging(settings.log_format);
    for name in &settings.unknown_settings {
        tracing::warn!(variable = %name, "environment variable names no rabt setting; ignored");
    }
    for name in &settings.generated_secrets {
        tracing::warn!(
            setting = name,
            "not set: using a throwaway value for this run only"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("rabt: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "rabt stopped with an error");
            eprintln!("rabt: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            app::shutdown_signal().await;
            shutdown.cancel();
        }
    });
    match command {
        Command::Serve {
            no_workers,
            no_migrate,
        } => {
            let app = Application::build(
                settings,
                ServeOptions {
                    workers: !no_workers,
                    migrate: !no_migrate,
                },
            )
            .await?;
            tracing::info!(address = %app.local_addr(), "rabt listening");
            app.run_until_stopped(shutdown).await
        }
        Command::Worker => {
            let grace = settings.shutdown_timeout;
            let jobs = settings.jobs.clone();
            let metrics = match settings.metrics_bind {
                Some(address) => Some(rabt::ops::bind_metrics(address).await?),
                None => None,
            };
            let state = app::build_state(std::sync::Arc::new(settings)).await?;
            if let Some(listener) = metrics {
                tracing::info!(address = ?listener.local_addr().ok(), "serving /metrics");
                tokio::spawn(rabt::ops::serve_metrics(
                    listener,
                    state.clone(),
                    shutdown.clone(),
                ));
            }
            let registry = app::job_registry(&state.settings)?;
            let worker = rabt::jobs::Worker::new(state.db.clone(), registry, jobs);
            worker.run_until_stopped(shutdown, grace).await;
            state.db.close().await;
            Ok(())
        }
        Command::Migrate => {
            db::migrate(&settings).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Openapi
        | Command::Config { .. }
        | Command::Healthcheck { .. }
        | Command::Email {
            action: EmailCommand::Preview { .. },
        } => Ok(()),
        Command::Email {
            action:
                EmailCommand::News {
                    headline,
                    paragraphs,
                    link,
                },
        } => {
            let db = rabt::db::Db::connect_lazy(&settings)?;
            let news = rabt::email::news::News {
                headline,
                paragraphs,
                path: link,
                after: None,
            };
            let queued = rabt::email::news::queue(&db, &news).await;
            db.close().await;
            let job = queued?;
            #[allow(clippy::print_stdout)]
            {
                println!("product news queued (job {job}); the workers send it");
            }
            Ok(())
        }
        Command::Audit {
            action: AuditCommand::Verify,
        } => {
            let db = rabt::db::Db::connect_lazy(&settings)?;
            let verdict = rabt::audit::verify(&db).await;
            db.close().await;
            match verdict? {
                rabt::audit::Verdict::Intact { entries } => {
                    #[allow(clippy::print_stdout)]
                    {
                        println!("audit log intact: {entries} entries verified");
                    }
                    Ok(())
                }
                rabt::audit::Verdict::Broken { seq, problem } => {
                    anyhow::bail!("audit log broken at entry {seq}: {problem}")
                }
            }
        }
        Command::Keys {
            action: KeysCommand::Rotate,
        } => {
            let db = rabt::db::Db::connect_lazy(&settings)?;
            let keyring = rabt::crypto::Keyring::from_settings(&settings);
            let rotation = rabt::crypto::rotate(&db, &keyring).await;
            db.close().await;
            let rotation = rotation?;
            #[allow(clippy::print_stdout)]
            {
                println!(
                    "re-encrypted {} value(s) under key {}",
                    rotation.resealed,
                    keyring.current_id()
                );
            }
            if rotation.unreadable > 0 {
                anyhow::bail!(
                    "{} value(s) are under a key that is not configured; add it to \
                     RABT_ENCRYPTION_OLD_KEYS and run again",
                    rotation.unreadable
                );
            }
            Ok(())
        }
        Command::Demo {
            action: DemoCommand::SignIn,
        } => {
            let db = rabt::db::Db::connect_lazy(&settings)?;
            let emails = rabt::auth::demo::enable_sign_in(&db, settings.env).await;
            db.close().await;
            let emails = emails?;
            #[allow(clippy::print_stdout)]
            {
                println!(
                    "demo sign-in: password {:?} for {}",
                    rabt::auth::demo::PASSWORD,
                    if emails.is_empty() {
                        "no account (load scripts/demo-data.sql first)".to_owned()
                    } else {
                        emails.join(", ")
                    }
                );
            }
            Ok(())
        }
        Command::Admin { action } => {
            let db = rabt::db::Db::connect_lazy(&settings)?;
            let result = match &action {
                AdminCommand::Grant { email, role } => {
                    rabt::roles::grant_by_email(&db, email, role)
                        .await
                        .map(|changed| {
                            if changed {
                                format!("granted {role} to {email}")
                            } else {
                                format!("{email} already has {role}")
                            }
                        })
                }
                AdminCommand::Revoke { email, role } => {
                    rabt::roles::revoke_by_email(&db, email, role)
                        .await
                        .map(|changed| {
                            if changed {
                                format!("revoked {role} from {email}")
                            } else {
                                format!("{email} did not have {role}")
                            }
                        })
                }
            };
            db.close().await;
            let message = result?;
            #[allow(clippy::print_stdout)]
            {
                println!("{message}");
            }
            Ok(())
        }
    }
}

/// Writes the rendered sample of `name` (or of every template) into `out`.
fn preview(name: &str, out: &std::path::Path) -> anyhow::Result<usize> {
    use rabt::email::{Template, Templates};
    let templates = Templates::load()?;
    let chosen: Vec<Template> = if name == "all" {
        Template::ALL.to_vec()
    } else {
        vec![Template::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = Template::ALL.iter().map(|t| t.name()).collect();
            anyhow::anyhow!("no template {name:?}; one of: all, {}", names.join(", "))
        })?]
    };
    std::fs::create_dir_all(out)?;
    for template in &chosen {
        let rendered = templates.preview(*template)?;
        let name = template.name();
        std::fs::write(out.join(format!("{name}.html")), rendered.html)?;
        std::fs::write(out.join(format!("{name}.txt")), rendered.text)?;
        std::fs::write(out.join(format!("{name}.subject.txt")), rendered.subject)?;
    }
    Ok(chosen.len() * 3)
}

/// `rabt config check`: the verdict on stderr, the effective settings on
/// stdout (one `NAME=value` line each, sorted).
#[allow(clippy::print_stdout)]
fn config_check() -> ExitCode {
    match Settings::effective() {
        Ok((settings, mut values)) => {
            values.sort();
            for (name, value) in values {
                println!("{name}={value}");
            }
            for name in &settings.unknown_settings {
                eprintln!("rabt: warning: {name} names no rabt setting; ignored");
            }
            for name in &settings.generated_secrets {
                eprintln!("rabt: warning: {name} is not set: a throwaway value would be used");
            }
            eprintln!(
                "rabt: configuration valid for RABT_ENV={}",
                format!("{:?}", settings.env).to_lowercase()
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("rabt: {err}");
            ExitCode::from(2)
        }
    }
}

/// `rabt healthcheck`: one request to `/health/ready`, bounded to 3 s.
fn healthcheck(url: Option<&str>) -> ExitCode {
    let url = match url {
        Some(url) => url.to_owned(),
        None => match Settings::load() {
            Ok(settings) => {
                let scheme = if settings.tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                let host = match settings.bind.ip() {
                    ip if ip.is_unspecified() && ip.is_ipv6() => "[::1]".to_owned(),
                    ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
                    std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                    std::net::IpAddr::V4(ip) => ip.to_string(),
                };
                format!("{scheme}://{host}:{}/health/ready", settings.bind.port())
            }
            Err(err) => {
                eprintln!("rabt: {err}");
                return ExitCode::FAILURE;
            }
        },
    };
    let ask = async {
        // Its own server on loopback, whose certificate names its public
        // host: the certificate is not what this checks.
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(3))
            .danger_accept_invalid_certs(true)
            .build()?;
        client.get(&url).send().await.map(|r| r.status())
    };
    let status = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| runtime.block_on(ask).map_err(|e| e.to_string()));
    match status {
        Ok(status) if status == reqwest::StatusCode::OK => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("rabt: {url} answered {status}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("rabt: {url}: {err}");
            ExitCode::FAILURE
        }
    }
}
