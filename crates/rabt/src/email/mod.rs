//! Email: templates, the durable outbox job, and delivery.
//!
//! An email is queued with [`enqueue`] in the same transaction as the change
//! that caused it, and sent by the `email.send` job: over SMTP when
//! `RABT_SMTP_URL` is set, else written as an `.eml` file to `RABT_MAIL_DIR`.
//! Each message carries a `Message-ID` fixed at enqueue time, so a repeat after
//! a crash between the SMTP server's acceptance and the job's completion can be
//! dropped by the receiver.
//!
//! Templates are files under `templates/email/<name>/` (`subject.txt`,
//! `body.mjml`, `body.txt`), compiled into the binary. Variables are escaped in
//! the HTML part.

use std::{path::PathBuf, sync::Arc};

use anyhow::Context as _;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::PgConnection;

use crate::{
    config::Settings,
    jobs::{self, JobArgs, JobContext, JobError, JobRegistry},
};

/// The emails rabt sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Template {
    VerifyEmail,
    SignupAttempt,
    PasswordReset,
    PasswordChanged,
    ApplicationEvent,
    MfaEnabled,
    MfaDisabled,
    RecoveryCodeUsed,
    UnreadMessages,
    UnreadDigest,
}

impl Template {
    fn name(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::SignupAttempt => "signup_attempt",
            Self::PasswordReset => "password_reset",
            Self::PasswordChanged => "password_changed",
            Self::ApplicationEvent => "application_event",
            Self::MfaEnabled => "mfa_enabled",
            Self::MfaDisabled => "mfa_disabled",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::UnreadMessages => "unread_messages",
            Self::UnreadDigest => "unread_digest",
        }
    }

    fn sources(self) -> [&'static str; 3] {
        macro_rules! files {
            ($dir:literal) => {
                [
                    include_str!(concat!(
                        "../../../../templates/email/",
                        $dir,
                        "/subject.txt"
                    )),
                    include_str!(concat!("../../../../templates/email/", $dir, "/body.mjml")),
                    include_str!(concat!("../../../../templates/email/", $dir, "/body.txt")),
                ]
            };
        }
        match self {
            Self::VerifyEmail => files!("verify_email"),
            Self::SignupAttempt => files!("signup_attempt"),
            Self::PasswordReset => files!("password_reset"),
            Self::PasswordChanged => files!("password_changed"),
            Self::ApplicationEvent => files!("application_event"),
            Self::MfaEnabled => files!("mfa_enabled"),
            Self::MfaDisabled => files!("mfa_disabled"),
            Self::RecoveryCodeUsed => files!("recovery_code_used"),
            Self::UnreadMessages => files!("unread_messages"),
            Self::UnreadDigest => files!("unread_digest"),
        }
    }

    const ALL: [Self; 10] = [
        Self::VerifyEmail,
        Self::SignupAttempt,
        Self::PasswordReset,
        Self::PasswordChanged,
        Self::ApplicationEvent,
        Self::MfaEnabled,
        Self::MfaDisabled,
        Self::RecoveryCodeUsed,
        Self::UnreadMessages,
        Self::UnreadDigest,
    ];
}

/// A rendered email.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub html: String,
    pub text: String,
}

/// The compiled templates.
pub struct Templates {
    env: minijinja::Environment<'static>,
}

impl Templates {
    /// Compiles every template; a broken one fails the start, not a send.
    pub fn load() -> anyhow::Result<Self> {
        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".mjml") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        for template in Template::ALL {
            let [subject, html, text] = template.sources();
            let name = template.name();
            env.add_template_owned(format!("{name}/subject.txt"), subject)?;
            env.add_template_owned(format!("{name}/body.mjml"), html)?;
            env.add_template_owned(format!("{name}/body.txt"), text)?;
        }
        Ok(Self { env })
    }

    pub fn render(&self, template: Template, vars: &Value) -> anyhow::Result<Rendered> {
        let name = template.name();
        let subject = self
            .env
            .get_template(&format!("{name}/subject.txt"))?
            .render(minijinja::Value::from(minijinja::value::Serde(vars)))?
            .trim()
            .to_owned();
        let mut context = vars.clone();
        if let Value::Object(map) = &mut context {
            map.insert("subject".into(), Value::String(subject.clone()));
        }
        let mjml = self
            .env
            .get_template(&format!("{name}/body.mjml"))?
            .render(minijinja::Value::from(minijinja::value::Serde(&context)))?;
        let parsed = mrml::parse(&mjml).map_err(|e| anyhow::anyhow!("{name}: MJML: {e}"))?;
        let html = parsed
            .element
            .render(&mrml::prelude::render::RenderOptions::default())
            .map_err(|e| anyhow::anyhow!("{name}: MJML render: {e}"))?;
        let text = self
            .env
            .get_template(&format!("{name}/body.txt"))?
            .render(minijinja::Value::from(minijinja::value::Serde(&context)))?;
        Ok(Rendered {
            subject,
            html,
            text,
        })
    }
}

/// Arguments of the `email.send` job.
#[derive(Debug, Serialize, Deserialize)]
pub struct SendEmail {
    pub to: String,
    pub template: Template,
    pub vars: Value,
    pub message_id: String,
}

impl JobArgs for SendEmail {
    const KIND: &'static str = "email.send";
    /// Links in security mail carry tokens: forget them once sent.
    const SENSITIVE: bool = true;
}

/// How many times an email is tried before it is dead-lettered.
const EMAIL_ATTEMPTS: i32 = 8;

/// Queues `template` to `to` in the caller's transaction.
pub async fn enqueue(
    conn: &mut PgConnection,
    settings: &Settings,
    to: &str,
    template: Template,
    vars: Value,
) -> Result<(), sqlx::Error> {
    let host = settings.public_url.host_str().unwrap_or("rabt.local");
    enqueue_from(conn, host, to, template, vars).await
}

/// [`enqueue`], for callers that hold only the host of the public URL (for
/// `Message-ID`s) rather than the settings.
pub async fn enqueue_from(
    conn: &mut PgConnection,
    host: &str,
    to: &str,
    template: Template,
    vars: Value,
) -> Result<(), sqlx::Error> {
    let message_id = format!("<{}@{host}>", uuid::Uuid::now_v7());
    jobs::enqueue(
        conn,
        &SendEmail {
            to: to.to_owned(),
            template,
            vars,
            message_id,
        },
        EMAIL_ATTEMPTS,
    )
    .await
    .map(|_| ())
}

/// Delivers messages: SMTP or a folder.
#[derive(Clone)]
pub enum Mailer {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Folder(PathBuf),
}

impl Mailer {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        match &settings.email.smtp_url {
            Some(url) => Ok(Self::Smtp(
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .context("RABT_SMTP_URL is not a valid SMTP URL")?
                    .timeout(Some(std::time::Duration::from_secs(20)))
                    .build(),
            )),
            None => Ok(Self::Folder(settings.email.mail_dir.clone())),
        }
    }

    async fn deliver(&self, message: Message, message_id: &str) -> anyhow::Result<()> {
        match self {
            Self::Smtp(transport) => {
                transport.send(message).await.context("SMTP delivery")?;
                Ok(())
            }
            Self::Folder(dir) => {
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
                Ok(())
            }
        }
    }
}

/// What the `email.send` handler needs.
#[derive(Clone)]
pub struct EmailSender {
    pub templates: Arc<Templates>,
    pub mailer: Mailer,
    pub from: Mailbox,
}

impl EmailSender {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        Ok(Self {
            templates: Arc::new(Templates::load()?),
            mailer: Mailer::from_settings(settings)?,
            from: settings
                .email
                .from
                .parse()
                .context("RABT_EMAIL_FROM is not a mailbox")?,
        })
    }

    /// Builds the message of a queued email.
    pub fn build(&self, args: &SendEmail) -> Result<Message, JobError> {
        let rendered = self
            .templates
            .render(args.template, &args.vars)
            .map_err(JobError::permanent)?;
        let to: Mailbox = args.to.parse().map_err(JobError::permanent)?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .message_id(Some(args.message_id.clone()))
            .multipart(MultiPart::alternative_plain_html(
                rendered.text,
                rendered.html,
            ))
            .map_err(JobError::permanent)
    }

    /// Registers the `email.send` handler.
    pub fn register(self, registry: &mut JobRegistry) {
        registry.register::<SendEmail, _, _>(move |_ctx: JobContext, args: SendEmail| {
            let sender = self.clone();
            async move {
                let message = sender.build(&args)?;
                sender.mailer.deliver(message, &args.message_id).await?;
                metrics::counter!("emails_sent_total", "template" => args.template.name())
                    .increment(1);
                Ok(())
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_renders_and_escapes_variables_in_html() {
        let templates = Templates::load().unwrap();
        for template in Template::ALL {
            let vars = serde_json::json!({
                "display_name": "<script>alert(1)</script>",
                "link": "https://app.rabt.test/x?token=a&b=c",
                "login_link": "https://app.rabt.test/login",
                "reset_link": "https://app.rabt.test/reset",
                "event": "shortlisted",
                "project_title": "<b>Site</b>",
                "codes_left": 9,
                "unread": 2,
                "senders": ["Ada", "<i>Bob</i>"],
                "total": 3,
                "conversations": [{"name": "<i>Bob</i>", "unread": 3,
                                   "link": "https://app.rabt.test/messages/1"}],
            });
            let rendered = templates.render(template, &vars).unwrap();
            assert!(!rendered.subject.is_empty());
            assert!(
                rendered.html.contains("&lt;script&gt;"),
                "{}",
                template.name()
            );
            assert!(
                !rendered.html.contains("<script>alert"),
                "{}",
                template.name()
            );
            assert!(rendered.text.contains("<script>alert(1)</script>"));
        }
    }

    #[test]
    fn a_missing_variable_fails_rendering_instead_of_sending_blanks() {
        let templates = Templates::load().unwrap();
        assert!(
            templates
                .render(Template::VerifyEmail, &serde_json::json!({}))
                .is_err()
        );
    }
}
