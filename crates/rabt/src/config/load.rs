//! Where settings come from (defaults, `RABT_CONFIG_FILE`, the environment,
//! overrides) and what `rabt config check` shows of them.

use figment::{
    Figment,
    providers::{Env, Format as _, Serialized, Toml},
};
use secrecy::ExposeSecret as _;
use std::path::PathBuf;

use super::{ConfigError, Settings, env_name, raw::RawSettings};

/// Knobs of `scripts/` that share the prefix but are not server settings.
const TOOLING_PREFIXES: &[&str] = &[
    "TEST_",
    "PG_",
    "DEV_",
    "DATA_DIR",
    "KEEP_SERVICES",
    "PRIVATE_SERVICES",
    "REDIS_PORT",
];

/// `RABT_*` variables that name no setting: likely typos, worth a warning (not
/// a refusal: deployment tooling shares the prefix).
pub(super) fn unknown_environment_settings() -> Vec<String> {
    let known = serde_json::to_value(RawSettings::default())
        .ok()
        .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
        .unwrap_or_default();
    let mut unknown: Vec<String> = std::env::vars()
        .map(|(name, _)| name)
        .filter(|name| {
            name.strip_prefix("RABT_").is_some_and(|rest| {
                rest != "CONFIG_FILE"
                    && !TOOLING_PREFIXES.iter().any(|p| rest.starts_with(p))
                    && !known.contains(&rest.to_ascii_lowercase())
            })
        })
        .collect();
    unknown.sort();
    unknown
}

pub(super) fn extract(figment: Figment) -> Result<RawSettings, ConfigError> {
    figment.extract().map_err(|e| {
        let key = e.path.first().cloned().unwrap_or_else(|| "setting".into());
        let problem = match &e.kind {
            figment::error::Kind::UnknownField(_, _) => "is not a known setting".to_string(),
            figment::error::Kind::InvalidType(actual, expected)
            | figment::error::Kind::InvalidValue(actual, expected) => {
                format!("is {actual}, expected {expected}")
            }
            figment::error::Kind::UnknownVariant(v, expected) => {
                format!("is `{v}`, expected one of {}", expected.join(", "))
            }
            other => other.to_string(),
        };
        ConfigError::new(&key, problem)
    })
}
impl Settings {
    /// Loads settings from the process environment (and the file it names).
    pub fn load() -> Result<Self, ConfigError> {
        Self::load_with(&[])
    }

    /// Loads settings with extra values layered on top of the environment; tests
    /// use this to point an instance at its own database.
    pub fn load_with(overrides: &[(&str, String)]) -> Result<Self, ConfigError> {
        let mut settings = extract(sources(overrides)?)?.validate()?;
        settings.unknown_settings = unknown_environment_settings();
        Ok(settings)
    }

    /// What `rabt config check` shows: the settings as [`Settings::load`]
    /// takes them (refused exactly as `serve` would refuse them), and every
    /// setting's effective value by its variable's name, secrets redacted.
    pub fn effective() -> Result<(Self, Vec<(String, String)>), ConfigError> {
        let raw = extract(sources(&[])?)?;
        let values = match serde_json::to_value(&raw) {
            Ok(serde_json::Value::Object(fields)) => fields
                .into_iter()
                .map(|(key, value)| {
                    let shown = shown_value(&key, &value);
                    (env_name(&key), shown)
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut settings = raw.validate()?;
        settings.unknown_settings = unknown_environment_settings();
        Ok((settings, values))
    }
}

/// Whether a setting holds a secret, by its name.
fn is_secret(key: &str) -> bool {
    [
        "secret",
        "password",
        "private_key",
        "encryption_key",
        "encryption_old_keys",
        "dsn",
    ]
    .iter()
    .any(|part| key.contains(part))
}

/// A setting's value as `rabt config check` prints it: secrets as
/// `<redacted>` (or `<unset>`), URLs without their password.
pub(super) fn shown_value(key: &str, value: &serde_json::Value) -> String {
    let text = match value {
        serde_json::Value::Null => return "<unset>".to_owned(),
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    if is_secret(key) {
        return if text.is_empty() {
            "<unset>"
        } else {
            "<redacted>"
        }
        .to_owned();
    }
    let Ok(mut url) = url::Url::parse(&text) else {
        return text;
    };
    let before = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("redacted"));
    }
    // Drivers also take a password as a parameter (`?password=`).
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(name, value)| {
                let hidden = ["password", "secret", "token", "key"]
                    .iter()
                    .any(|word| name.to_ascii_lowercase().contains(word));
                let value = if hidden {
                    "redacted".to_owned()
                } else {
                    value.into_owned()
                };
                (name.into_owned(), value)
            })
            .collect();
        if pairs.iter().any(|(_, value)| value == "redacted") {
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
    }
    // Unchanged, it is shown as written.
    if url == before { text } else { url.to_string() }
}

/// Defaults, then the file of `RABT_CONFIG_FILE`, the environment, and
/// `overrides`, each over the one before.
fn sources(overrides: &[(&str, String)]) -> Result<Figment, ConfigError> {
    let mut figment = Figment::from(Serialized::defaults(RawSettings::default()));
    if let Some(path) = std::env::var("RABT_CONFIG_FILE")
        .ok()
        .filter(|p| !p.is_empty())
    {
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(ConfigError::new(
                "config_file",
                format!("names {} which is not a readable file", path.display()),
            ));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    figment = figment
        .merge(Env::raw().only(&[
            "DATABASE_URL",
            "REDIS_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
        ]))
        .merge(Env::prefixed("RABT_").ignore(&["CONFIG_FILE", "DATABASE_URL", "REDIS_URL"]));
    for (key, value) in overrides {
        // Parsed as an environment value would be, so "8" can be a number.
        let value: figment::value::Value = value.parse().unwrap_or_else(|never| match never {});
        figment = figment.merge(Serialized::default(key, value));
    }
    Ok(figment)
}

impl Settings {
    /// The database URL with its password, for the connection pool only.
    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }
}
