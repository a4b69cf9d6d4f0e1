//! The template catalogue: each email is a folder under `templates/email/`
//! (`subject.txt`, `body.mjml`, `body.txt`) that extends the shared layout
//! (`layout.mjml`, `layout.txt`: the header, and a footer with the sender's
//! identity and, for mail that is not about security, the preferences and
//! unsubscribe links). Everything is compiled into the binary and checked at
//! start; variables are escaped in the HTML part.

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    ProductNews,
    NewSignIn,
    BillingReceipt,
    ExportReady,
    ErasureScheduled,
}

/// What an email is, which decides how it is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// About the account's safety: never tracked, never suppressed, always
    /// sent; its links carry tokens that must not pass through a redirect.
    Security,
    /// Caused by something the user is part of: tracked, honours the user's
    /// preferences and the suppression list.
    Transactional,
    /// News: tracked, only to users who opted in, with one-click unsubscribe.
    Marketing,
}

impl Class {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Security => "security",
            Self::Transactional => "transactional",
            Self::Marketing => "marketing",
        }
    }
}

/// The notification preference that governs a kind of email: what an
/// unsubscribe from it turns off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    Applications,
    Messages,
    Billing,
    ProductNews,
}

impl Template {
    pub const ALL: [Self; 15] = [
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
        Self::ProductNews,
        Self::NewSignIn,
        Self::BillingReceipt,
        Self::ExportReady,
        Self::ErasureScheduled,
    ];

    pub fn name(self) -> &'static str {
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
            Self::ProductNews => "product_news",
            Self::NewSignIn => "new_sign_in",
            Self::BillingReceipt => "billing_receipt",
            Self::ExportReady => "export_ready",
            Self::ErasureScheduled => "erasure_scheduled",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn class(self) -> Class {
        match self {
            Self::VerifyEmail
            | Self::SignupAttempt
            | Self::PasswordReset
            | Self::PasswordChanged
            | Self::MfaEnabled
            | Self::MfaDisabled
            | Self::RecoveryCodeUsed
            | Self::NewSignIn
            | Self::ExportReady
            | Self::ErasureScheduled => Class::Security,
            Self::ApplicationEvent
            | Self::UnreadMessages
            | Self::UnreadDigest
            | Self::BillingReceipt => Class::Transactional,
            Self::ProductNews => Class::Marketing,
        }
    }

    /// The preference an unsubscribe turns off; `None` for security mail.
    pub fn topic(self) -> Option<Topic> {
        match self {
            Self::ApplicationEvent => Some(Topic::Applications),
            Self::UnreadMessages | Self::UnreadDigest => Some(Topic::Messages),
            Self::BillingReceipt => Some(Topic::Billing),
            Self::ProductNews => Some(Topic::ProductNews),
            _ => None,
        }
    }

    /// Variables a designer's preview renders the template with.
    pub fn sample(self) -> Value {
        serde_json::json!({
            "display_name": "Ada Lovelace",
            "link": "https://app.rabt.example/applications/0190a3c4-0000-7000-8000-000000000001",
            "login_link": "https://app.rabt.example/auth/login",
            "reset_link": "https://app.rabt.example/auth/forgot-password",
            "event": "shortlisted",
            "project_title": "A website for the bakery",
            "codes_left": 7,
            "unread": 2,
            "senders": ["Grace Hopper"],
            "total": 3,
            "conversations": [
                {"name": "Grace Hopper", "unread": 2,
                 "link": "https://app.rabt.example/messages/0190a3c4-0000-7000-8000-000000000002"},
                {"name": "Alan Turing", "unread": 1,
                 "link": "https://app.rabt.example/messages/0190a3c4-0000-7000-8000-000000000003"},
            ],
            "when": "2026-12-07 21:14 UTC",
            "address": "203.0.113.7",
            "device": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "expires": "2026-12-14 21:14 UTC",
            "amount": "€15.00",
            "number": "7FE1103-0001",
            "headline": "Search by skill is here",
            "paragraphs": ["Projects can now be found by the skills they need.",
                           "Add your skills to your profile to be found too."],
        })
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
            Self::ProductNews => files!("product_news"),
            Self::NewSignIn => files!("new_sign_in"),
            Self::BillingReceipt => files!("billing_receipt"),
            Self::ExportReady => files!("export_ready"),
            Self::ErasureScheduled => files!("erasure_scheduled"),
        }
    }
}

/// What the shared layout shows besides the template's own variables.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Frame {
    /// The sender's identity, one line each, in the footer.
    pub sender: Vec<String>,
    pub preferences_url: Option<String>,
    pub unsubscribe_url: Option<String>,
    pub pixel_url: Option<String>,
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
        env.add_template(
            "layout.mjml",
            include_str!("../../../../templates/email/layout.mjml"),
        )?;
        env.add_template(
            "layout.txt",
            include_str!("../../../../templates/email/layout.txt"),
        )?;
        for template in Template::ALL {
            let [subject, html, text] = template.sources();
            let name = template.name();
            env.add_template_owned(format!("{name}/subject.txt"), subject)?;
            env.add_template_owned(format!("{name}/body.mjml"), html)?;
            env.add_template_owned(format!("{name}/body.txt"), text)?;
        }
        Ok(Self { env })
    }

    /// Renders `template` with `vars` inside the layout described by `frame`.
    pub fn render(
        &self,
        template: Template,
        vars: &Value,
        frame: &Frame,
    ) -> anyhow::Result<Rendered> {
        let name = template.name();
        let serde = |value: &Value| minijinja::Value::from(minijinja::value::Serde(value.clone()));
        let subject = self
            .env
            .get_template(&format!("{name}/subject.txt"))?
            .render(serde(vars))?
            .trim()
            .to_owned();
        let mut context = vars.clone();
        if let Value::Object(map) = &mut context {
            map.insert("subject".into(), Value::String(subject.clone()));
            if let Value::Object(frame) = serde_json::to_value(frame)? {
                map.extend(frame);
            }
        } else {
            anyhow::bail!("{name}: the variables are not an object");
        }
        let mjml = self
            .env
            .get_template(&format!("{name}/body.mjml"))?
            .render(serde(&context))?;
        let parsed = mrml::parse(&mjml).map_err(|e| anyhow::anyhow!("{name}: MJML: {e}"))?;
        let html = parsed
            .element
            .render(&mrml::prelude::render::RenderOptions::default())
            .map_err(|e| anyhow::anyhow!("{name}: MJML render: {e}"))?;
        let text = self
            .env
            .get_template(&format!("{name}/body.txt"))?
            .render(serde(&context))?;
        Ok(Rendered {
            subject,
            html,
            text,
        })
    }

    /// `template` with its sample variables, framed as its class would be
    /// (placeholder tokens), for `rabt email preview`.
    pub fn preview(&self, template: Template) -> anyhow::Result<Rendered> {
        let tracked = template.class() != Class::Security;
        let api = "https://api.rabt.example/v1/email";
        let frame = Frame {
            sender: vec!["rabt".into(), "https://app.rabt.example/".into()],
            preferences_url: tracked
                .then(|| "https://app.rabt.example/settings/notifications".into()),
            unsubscribe_url: tracked.then(|| format!("{api}/unsubscribe/preview")),
            pixel_url: tracked.then(|| format!("{api}/o/preview")),
        };
        self.render(template, &template.sample(), &frame)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn frame(class: Class) -> Frame {
        let tracked = class != Class::Security;
        Frame {
            sender: vec!["rabt".into(), "1 Example Street, Berlin".into()],
            preferences_url: tracked
                .then(|| "https://app.rabt.example/settings/notifications".into()),
            unsubscribe_url: tracked
                .then(|| "https://api.rabt.example/v1/email/unsubscribe/tok".into()),
            pixel_url: tracked.then(|| "https://api.rabt.example/v1/email/o/pix".into()),
        }
    }

    /// Every `href` of the HTML part, unescaped.
    fn hrefs(html: &str) -> BTreeSet<String> {
        html.split("href=\"")
            .skip(1)
            .filter_map(|rest| rest.split_once('"').map(|(url, _)| unescape(url)))
            .collect()
    }

    /// Undoes the HTML escaping minijinja applies to attribute values.
    fn unescape(value: &str) -> String {
        value
            .replace("&#x2f;", "/")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    /// Every URL of the text part.
    fn urls(text: &str) -> BTreeSet<String> {
        text.split_whitespace()
            .filter(|word| word.starts_with("https://") || word.starts_with("http://"))
            .map(str::to_owned)
            .collect()
    }

    /// Checks that every element outside comments is closed in order, which
    /// catches what a broken template or a stray `<` leaves behind.
    fn balanced(html: &str) -> Result<(), String> {
        const VOID: &[&str] = &[
            "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
            "track", "wbr",
        ];
        let mut open: Vec<String> = Vec::new();
        let mut rest = html;
        while let Some(start) = rest.find('<') {
            rest = &rest[start..];
            if let Some(after) = rest.strip_prefix("<!--") {
                let end = after.find("-->").ok_or("an unclosed comment")?;
                rest = &after[end + 3..];
                continue;
            }
            let end = rest.find('>').ok_or("an unclosed tag")?;
            let tag = &rest[1..end];
            rest = &rest[end + 1..];
            if tag.starts_with('!') {
                continue;
            }
            let name: String = tag
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase();
            if name.is_empty() {
                return Err(format!("a tag without a name: <{tag}>"));
            }
            if tag.starts_with('/') {
                match open.pop() {
                    Some(last) if last == name => {}
                    other => return Err(format!("</{name}> closes {other:?}")),
                }
            } else if !VOID.contains(&name.as_str()) && !tag.ends_with('/') {
                open.push(name);
            }
        }
        if open.is_empty() {
            Ok(())
        } else {
            Err(format!("left open: {open:?}"))
        }
    }

    #[test]
    fn every_template_renders_valid_html_with_the_same_links_as_its_text() {
        let templates = Templates::load().unwrap();
        for template in Template::ALL {
            let class = template.class();
            let rendered = templates
                .render(template, &template.sample(), &frame(class))
                .unwrap();
            let name = template.name();
            assert!(!rendered.subject.is_empty(), "{name}");
            assert!(rendered.html.starts_with("<!doctype html>"), "{name}");
            balanced(&rendered.html).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(hrefs(&rendered.html), urls(&rendered.text), "{name}");
            assert!(!hrefs(&rendered.html).is_empty(), "{name} has a link");
            assert!(rendered.html.contains("1 Example Street"), "{name}: sender");
            assert!(rendered.text.contains("1 Example Street"), "{name}: sender");
            let unsubscribe = "https://api.rabt.example/v1/email/unsubscribe/tok";
            let html = unescape(&rendered.html);
            assert_eq!(
                html.contains(unsubscribe),
                class != Class::Security,
                "{name}"
            );
            assert_eq!(
                html.contains("/v1/email/o/pix"),
                class != Class::Security,
                "{name}"
            );
        }
    }

    #[test]
    fn the_balance_check_finds_a_broken_document() {
        assert!(balanced("<p><b>x</b></p><img src=x>").is_ok());
        assert!(balanced("<p><b>x</p>").is_err());
        assert!(balanced("<div>").is_err());
        assert!(balanced("<!--[if mso]><table><![endif]--><p></p>").is_ok());
    }

    #[test]
    fn every_template_escapes_variables_in_html_only() {
        let templates = Templates::load().unwrap();
        for template in Template::ALL {
            let mut vars = template.sample();
            vars["display_name"] = "<script>alert(1)</script>".into();
            let rendered = templates
                .render(template, &vars, &frame(template.class()))
                .unwrap();
            let name = template.name();
            assert!(rendered.html.contains("&lt;script&gt;"), "{name}");
            assert!(!rendered.html.contains("<script>alert"), "{name}");
            assert!(
                rendered.text.contains("<script>alert(1)</script>"),
                "{name}"
            );
        }
    }

    #[test]
    fn a_missing_variable_fails_rendering_instead_of_sending_blanks() {
        let templates = Templates::load().unwrap();
        assert!(
            templates
                .render(
                    Template::VerifyEmail,
                    &serde_json::json!({}),
                    &Frame::default()
                )
                .is_err()
        );
    }

    #[test]
    fn classes_follow_the_contract() {
        for template in Template::ALL {
            assert_eq!(
                template.class() == Class::Security,
                template.topic().is_none(),
                "{}",
                template.name()
            );
            assert_eq!(Template::from_name(template.name()), Some(template));
        }
        assert_eq!(Template::PasswordReset.class(), Class::Security);
        assert_eq!(Template::ProductNews.class(), Class::Marketing);
    }
}
