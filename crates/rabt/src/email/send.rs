//! The `email.send` job: suppression, tracking, rendering, DKIM, pacing per
//! recipient domain, delivery, and the record of every attempt.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context as _;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{
        Mailbox, MultiPart,
        dkim::{
            DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
            DkimSigningKey,
        },
        header::{HeaderName, HeaderValue},
    },
};
use secrecy::ExposeSecret as _;
use serde_json::Value;
use sqlx::PgConnection;
use tokio::time::Instant;
use url::Url;
use uuid::Uuid;

use super::{
    EMAIL_ATTEMPTS, SendEmail,
    store::{self, Mark},
    templates::{Class, Frame, Template, Templates},
    tokens,
};
use crate::{
    config::Settings,
    db::Actor,
    jobs::{JobContext, JobError, JobRegistry},
};

/// SMTP replies that say the mailbox does not exist or will never take mail:
/// the address is suppressed. Other permanent failures (a policy, our own
/// configuration) fail the message without blaming the address.
const MAILBOX_GONE: &[&str] = &["550", "551", "553"];

/// Delivers messages: SMTP or a folder.
#[derive(Clone)]
pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Folder(PathBuf),
}

/// Why a delivery failed.
#[derive(Debug)]
pub enum Refusal {
    /// Worth trying again: the server was away, busy or said 4xx.
    Transient(String),
    /// The server refused for good (5xx); `mailbox` when it names the address.
    Permanent { reply: String, mailbox: bool },
}

impl Mailer {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        match &settings.email.smtp_url {
            Some(url) => Ok(Self::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .context("RABT_SMTP_URL is not a valid SMTP URL")?
                    .timeout(Some(Duration::from_secs(20)))
                    .build(),
            )),
            None => Ok(Self::Folder(settings.email.mail_dir.clone())),
        }
    }

    /// Hands `message` over; `Ok` carries the server's reply.
    pub async fn deliver(&self, message: Message, message_id: &str) -> Result<String, Refusal> {
        match self {
            Self::Smtp(transport) => match transport.send(message).await {
                Ok(response) => Ok(format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                )),
                Err(err) if err.is_permanent() => {
                    let code = err.status().map(|code| code.to_string());
                    Err(Refusal::Permanent {
                        reply: err.to_string(),
                        mailbox: code.is_some_and(|code| MAILBOX_GONE.contains(&code.as_str())),
                    })
                }
                Err(err) => Err(Refusal::Transient(err.to_string())),
            },
            Self::Folder(dir) => {
                let written = async {
                    tokio::fs::create_dir_all(dir)
                        .await
                        .with_context(|| format!("creating {}", dir.display()))?;
                    let file: String = message_id
                        .chars()
                        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '@'))
                        .collect();
                    let path = dir.join(format!("{file}.eml"));
                    tokio::fs::write(&path, message.formatted())
                        .await
                        .with_context(|| format!("writing {}", path.display()))?;
                    tracing::info!(path = %path.display(), "email written to the mail folder");
                    anyhow::Ok(path)
                };
                written
                    .await
                    .map(|path| format!("written to {}", path.display()))
                    .map_err(|err| Refusal::Transient(format!("{err:#}")))
            }
        }
    }
}

/// DKIM signers: one for mail with unsubscribe headers (they are signed
/// too), one for mail without.
struct Dkim {
    with_list: DkimConfig,
    without_list: DkimConfig,
}

impl Dkim {
    fn from_settings(settings: &Settings) -> anyhow::Result<Option<Self>> {
        let Some(dkim) = &settings.email.dkim else {
            return Ok(None);
        };
        let config = |extra: &[&'static str]| -> anyhow::Result<DkimConfig> {
            let key = DkimSigningKey::new(
                dkim.private_key_pem.expose_secret(),
                DkimSigningAlgorithm::Rsa,
            )
            .map_err(|_| anyhow::anyhow!("RABT_DKIM_PRIVATE_KEY is not a usable RSA key"))?;
            let headers = [
                "From",
                "To",
                "Subject",
                "Date",
                "Message-ID",
                "MIME-Version",
            ]
            .iter()
            .chain(extra)
            .map(|name| HeaderName::new_from_ascii_str(name))
            .collect();
            Ok(DkimConfig::new(
                dkim.selector.clone(),
                dkim.domain.clone(),
                key,
                headers,
                DkimCanonicalization {
                    header: DkimCanonicalizationType::Relaxed,
                    body: DkimCanonicalizationType::Relaxed,
                },
            ))
        };
        Ok(Some(Self {
            with_list: config(&["List-Unsubscribe", "List-Unsubscribe-Post"])?,
            without_list: config(&[])?,
        }))
    }
}

/// Spaces messages to one recipient domain evenly, per instance, so a burst
/// does not get rabt throttled or greylisted by a large provider. Each send
/// reserves the next free slot of its domain and waits for it.
struct DomainPace {
    interval: Duration,
    next: Mutex<HashMap<String, Instant>>,
}

impl DomainPace {
    fn new(per_minute: u32) -> Option<Self> {
        (per_minute > 0).then(|| Self {
            interval: Duration::from_secs(60) / per_minute,
            next: Mutex::default(),
        })
    }

    fn reserve(&self, domain: &str) -> Duration {
        let now = Instant::now();
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        if next.len() > 10_000 {
            next.retain(|_, at| *at > now);
        }
        let slot = next.get(domain).copied().unwrap_or(now).max(now);
        next.insert(domain.to_owned(), slot + self.interval);
        slot - now
    }
}

/// Where the links of a message point.
struct Links {
    public: Url,
    preferences: String,
    sender: Vec<String>,
    tracking: bool,
}

impl Links {
    fn endpoint(&self, path: &str, token: &str) -> String {
        let mut url = self.public.clone();
        url.set_path(&format!("/v1/email/{path}/{token}"));
        url.set_query(None);
        url.to_string()
    }
}

/// What the `email.send` handler needs.
#[derive(Clone)]
pub struct EmailSender {
    pub templates: Arc<Templates>,
    pub mailer: Mailer,
    pub from: Mailbox,
    links: Arc<Links>,
    dkim: Option<Arc<Dkim>>,
    pace: Option<Arc<DomainPace>>,
}

impl EmailSender {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let mut preferences = settings.frontend_url.clone();
        preferences.set_path("/settings/notifications");
        let from: Mailbox = settings
            .email
            .from
            .parse()
            .context("RABT_EMAIL_FROM is not a mailbox")?;
        let mut sender = settings.billing.invoice_issuer.clone();
        if sender.is_empty() {
            sender.push(from.name.clone().unwrap_or_else(|| "rabt".into()));
        }
        sender.push(settings.frontend_url.to_string());
        Ok(Self {
            templates: Arc::new(Templates::load()?),
            mailer: Mailer::from_settings(settings)?,
            from,
            links: Arc::new(Links {
                public: settings.public_url.clone(),
                preferences: preferences.to_string(),
                sender,
                tracking: settings.email.tracking,
            }),
            dkim: Dkim::from_settings(settings)?.map(Arc::new),
            pace: DomainPace::new(settings.email.per_domain_per_minute).map(Arc::new),
        })
    }

    /// Registers the `email.send` handler and the sweep of expired
    /// suppressions.
    pub fn register(self, registry: &mut JobRegistry) {
        registry.sweep("email suppressions", |conn| {
            Box::pin(store::sweep_expired(conn))
        });
        registry.register::<SendEmail, _, _>(move |ctx: JobContext, args: SendEmail| {
            let sender = self.clone();
            async move { sender.send(&ctx, args).await }
        });
    }

    async fn send(&self, ctx: &JobContext, args: SendEmail) -> Result<(), JobError> {
        let template = args.template;
        let class = template.class();
        let mut tx = ctx.db.begin(&Actor::Service).await?;
        let message = store::upsert_message(
            &mut tx,
            &args.message_id,
            args.user_id,
            template.name(),
            class.as_str(),
        )
        .await?;
        if class != Class::Security && store::is_suppressed(&mut tx, &args.to).await? {
            store::mark(&mut tx, message, Mark::Suppressed).await?;
            if ctx.complete_in(&mut tx).await? {
                tx.commit().await?;
                count(template, "suppressed");
            }
            return Ok(());
        }
        let (vars, frame) = self.track(&mut tx, message, class, &args.vars).await?;
        // The tokens are stored before the mail can be read.
        tx.commit().await?;

        let built = self.build(&args, &vars, &frame);
        let email = match built {
            Ok(email) => email,
            Err(err) => {
                let mut tx = ctx.db.begin(&Actor::Service).await?;
                store::mark(&mut tx, message, Mark::Failed).await?;
                tx.commit().await?;
                count(template, "failed");
                return Err(JobError::permanent(err));
            }
        };
        if let Some(pace) = &self.pace {
            let domain = args.to.rsplit_once('@').map_or("", |(_, d)| d);
            let wait = pace.reserve(&domain.to_ascii_lowercase());
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        let outcome = self.mailer.deliver(email, &args.message_id).await;
        let mut tx = ctx.db.begin(&Actor::Service).await?;
        match outcome {
            Ok(reply) => {
                store::record_attempt(&mut tx, message, ctx.attempt, "accepted", &reply).await?;
                store::mark(&mut tx, message, Mark::Sent).await?;
                if ctx.complete_in(&mut tx).await? {
                    tx.commit().await?;
                    count(template, "sent");
                }
                Ok(())
            }
            Err(Refusal::Permanent { reply, mailbox }) => {
                store::record_attempt(&mut tx, message, ctx.attempt, "rejected", &reply).await?;
                store::mark(&mut tx, message, Mark::Failed).await?;
                if mailbox {
                    store::mark(&mut tx, message, Mark::Bounced).await?;
                    store::suppress(&mut tx, &args.to, "hard_bounce", "smtp", Some(&reply), None)
                        .await?;
                }
                tx.commit().await?;
                count(template, if mailbox { "bounced" } else { "failed" });
                Err(JobError::permanent(anyhow::anyhow!("refused: {reply}")))
            }
            Err(Refusal::Transient(reply)) => {
                store::record_attempt(&mut tx, message, ctx.attempt, "deferred", &reply).await?;
                if ctx.attempt >= EMAIL_ATTEMPTS {
                    store::mark(&mut tx, message, Mark::Failed).await?;
                    count(template, "failed");
                } else {
                    count(template, "deferred");
                }
                tx.commit().await?;
                Err(anyhow::anyhow!("not delivered: {reply}").into())
            }
        }
    }

    /// The variables with tracked links, and the layout's frame, of a
    /// message; mints and stores its tokens. Security mail gets neither.
    async fn track(
        &self,
        conn: &mut PgConnection,
        message: Uuid,
        class: Class,
        vars: &Value,
    ) -> Result<(Value, Frame), sqlx::Error> {
        let links = &self.links;
        let mut frame = Frame {
            sender: links.sender.clone(),
            ..Frame::default()
        };
        if class == Class::Security {
            return Ok((vars.clone(), frame));
        }
        let (token, hash) = tokens::mint();
        store::insert_token(conn, message, &hash, "unsubscribe", None).await?;
        frame.unsubscribe_url = Some(links.endpoint("unsubscribe", &token));
        frame.preferences_url = Some(links.preferences.clone());
        let mut vars = vars.clone();
        if links.tracking {
            let (token, hash) = tokens::mint();
            store::insert_token(conn, message, &hash, "open", None).await?;
            frame.pixel_url = Some(links.endpoint("o", &token));
            let mut targets = BTreeMap::new();
            collect_links(&vars, &mut |url| {
                targets.entry(url.to_owned()).or_insert_with(tokens::mint);
            });
            for (url, (_, hash)) in &targets {
                store::insert_token(conn, message, hash, "click", Some(url)).await?;
            }
            replace_links(&mut vars, &|url| {
                targets
                    .get(url)
                    .map(|(token, _)| links.endpoint("c", token))
            });
        }
        Ok((vars, frame))
    }

    /// Builds the message of a queued email: both parts, the unsubscribe
    /// headers of non-security mail, and the DKIM signature.
    pub fn build(&self, args: &SendEmail, vars: &Value, frame: &Frame) -> anyhow::Result<Message> {
        let rendered = self.templates.render(args.template, vars, frame)?;
        let to: Mailbox = args.to.parse()?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .message_id(Some(args.message_id.clone()));
        if let Some(unsubscribe) = &frame.unsubscribe_url {
            builder = builder
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe"),
                    format!("<{unsubscribe}>"),
                ))
                .raw_header(HeaderValue::new(
                    HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                    "List-Unsubscribe=One-Click".to_owned(),
                ));
        }
        let mut message = builder.multipart(MultiPart::alternative_plain_html(
            rendered.text,
            rendered.html,
        ))?;
        if let Some(dkim) = &self.dkim {
            message.sign(if frame.unsubscribe_url.is_some() {
                &dkim.with_list
            } else {
                &dkim.without_list
            });
        }
        Ok(message)
    }
}

/// Counts an email by template and outcome (`rabt_emails_total`).
pub(super) fn count(template: Template, outcome: &'static str) {
    metrics::counter!("rabt_emails_total", "template" => template.name(), "outcome" => outcome)
        .increment(1);
}

/// Whether a variable holds a link: `link`, or a name ending in `_link`.
fn is_link(key: &str) -> bool {
    key == "link" || key.ends_with("_link")
}

fn collect_links(value: &Value, found: &mut impl FnMut(&str)) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::String(url) if is_link(key) => found(url),
                    other => collect_links(other, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_links(item, found)),
        _ => {}
    }
}

fn replace_links(value: &mut Value, tracked: &impl Fn(&str) -> Option<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match value {
                    Value::String(url) if is_link(key) => {
                        if let Some(replacement) = tracked(url) {
                            *url = replacement;
                        }
                    }
                    other => replace_links(other, tracked),
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| replace_links(item, tracked)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_found_and_replaced_at_any_depth_and_nothing_else() {
        let mut vars = serde_json::json!({
            "link": "https://app/a", "display_name": "https://not-a-link",
            "login_link": "https://app/login",
            "conversations": [{"link": "https://app/m/1", "name": "x"}],
        });
        let mut found = Vec::new();
        collect_links(&vars, &mut |url| found.push(url.to_owned()));
        found.sort();
        assert_eq!(
            found,
            ["https://app/a", "https://app/login", "https://app/m/1"]
        );
        replace_links(&mut vars, &|url| Some(format!("T({url})")));
        assert_eq!(vars["link"], "T(https://app/a)");
        assert_eq!(vars["conversations"][0]["link"], "T(https://app/m/1)");
        assert_eq!(vars["display_name"], "https://not-a-link");
    }

    #[test]
    fn a_domain_is_paced_and_others_are_not() {
        let pace = DomainPace::new(60).unwrap();
        assert_eq!(pace.reserve("a.example"), Duration::ZERO);
        let second = pace.reserve("a.example");
        assert!(second > Duration::from_millis(900), "{second:?}");
        assert_eq!(pace.reserve("b.example"), Duration::ZERO);
        assert!(DomainPace::new(0).is_none());
    }
}
