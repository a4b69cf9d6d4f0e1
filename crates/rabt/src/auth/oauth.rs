//! Sign-in with Google (OpenID Connect) and GitHub (OAuth 2).
//!
//! Both flows use the authorization code with PKCE (S256) and a random `state`
//! kept server-side for ten minutes and taken once. Google's `id_token` is
//! checked against the keys of its JWKS (found by discovery from the issuer),
//! with issuer, audience, expiry and the `nonce` we sent. GitHub's address is the
//! primary, verified one of its emails API. Provider tokens are used once and
//! not kept. Every endpoint is configurable, so tests run local fake providers.

use std::time::Duration;

use anyhow::Context as _;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use url::Url;

use super::tokens::random_token;
use crate::{
    config::OAuthClient,
    http::{ApiError, ErrorCode, FieldError},
    state::AppState,
};

/// A supported provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Google,
    Github,
}

impl Provider {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "google" => Some(Self::Google),
            "github" => Some(Self::Github),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Google => "google",
            Self::Github => "github",
        }
    }

    fn client(self, state: &AppState) -> Result<&OAuthClient, ApiError> {
        let oauth = &state.settings.oauth;
        match self {
            Self::Google => oauth.google.as_ref(),
            Self::Github => oauth.github.as_ref(),
        }
        .ok_or_else(|| {
            ApiError::unavailable(format!("Sign-in with {} is not configured.", self.as_str()))
        })
    }
}

/// What the callback needs to finish a flow; kept under the `state` value.
#[derive(Debug, Serialize, Deserialize)]
struct PendingFlow {
    provider: Provider,
    verifier: String,
    nonce: String,
    redirect_to: String,
}

const FLOW_TTL: Duration = Duration::from_secs(600);

fn flow_key(state: &str) -> String {
    format!("oauth:state:{state}")
}

/// Whether the browser may be sent back to `target`: under the frontend URL or
/// an allow-listed one (same origin, path below it).
pub fn allowed_redirect(state: &AppState, target: &str) -> Result<Url, ApiError> {
    let refuse = || {
        ApiError::validation(vec![FieldError::new(
            "redirect_to",
            "invalid",
            "Must be a page of the web app.",
        )])
    };
    let url = Url::parse(target).map_err(|_| refuse())?;
    let settings = &state.settings;
    let allowed = std::iter::once(&settings.frontend_url)
        .chain(settings.oauth.redirect_allowlist.iter())
        .any(|base| {
            let prefix = base.path().trim_end_matches('/');
            url.origin() == base.origin()
                && (url.path() == prefix || url.path().starts_with(&format!("{prefix}/")))
                && url.username().is_empty()
                && url.password().is_none()
        });
    if allowed { Ok(url) } else { Err(refuse()) }
}

fn callback_url(state: &AppState, provider: Provider) -> String {
    let mut url = state.settings.public_url.clone();
    url.set_path(&format!("/v1/auth/oauth/{}/callback", provider.as_str()));
    url.set_query(None);
    url.to_string()
}

/// The cookie that ties a flow to the browser that started it, so a callback URL
/// made by someone else cannot sign a victim into the attacker's account.
pub const BROWSER_COOKIE: &str = "rabt_oauth";

/// What the browser cookie holds for a flow: a hash of its state.
pub fn browser_binding(flow_state: &str) -> String {
    hex::encode(Sha256::digest(flow_state.as_bytes()))
}

/// Starts a flow: the provider URL to send the browser to, and the flow's
/// state (for the browser cookie).
pub async fn authorize_url(
    state: &AppState,
    provider: Provider,
    redirect_to: &str,
) -> Result<(String, String), ApiError> {
    let client = provider.client(state)?;
    let redirect_to = allowed_redirect(state, redirect_to)?;
    let flow_state = random_token();
    let flow = PendingFlow {
        provider,
        verifier: random_token(),
        nonce: random_token(),
        redirect_to: redirect_to.to_string(),
    };
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(flow.verifier.as_bytes()));
    let mut url = match provider {
        Provider::Google => discovery(state).await?.authorization_endpoint,
        Provider::Github => state.settings.oauth.github_authorize_url.clone(),
    };
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("client_id", &client.client_id)
            .append_pair("redirect_uri", &callback_url(state, provider))
            .append_pair("response_type", "code")
            .append_pair("state", &flow_state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        match provider {
            Provider::Google => query
                .append_pair("scope", "openid email profile")
                .append_pair("nonce", &flow.nonce),
            Provider::Github => query.append_pair("scope", "read:user user:email"),
        };
    }
    let value = serde_json::to_vec(&flow).map_err(ApiError::internal)?;
    state
        .kv
        .set(&flow_key(&flow_state), &value, FLOW_TTL)
        .await?;
    Ok((url.to_string(), flow_state))
}

/// Who the provider says signed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderIdentity {
    pub provider: Provider,
    pub subject: String,
    /// Only an address the provider has verified.
    pub verified_email: Option<String>,
    pub name: Option<String>,
    /// The provider's access token, kept sealed (crate::crypto).
    pub access_token: Option<String>,
}

/// Finishes a flow: checks `state`, exchanges the code, and returns the
/// identity and where to send the browser.
pub async fn finish(
    state: &AppState,
    provider: Provider,
    flow_state: &str,
    code: &str,
) -> Result<(ProviderIdentity, Url), ApiError> {
    if code.len() > 2048 {
        return Err(unknown_flow());
    }
    let flow = take_flow(state, provider, flow_state).await?;
    let client = provider.client(state)?;
    let redirect_to = Url::parse(&flow.redirect_to).map_err(|_| unknown_flow())?;
    let identity = match provider {
        Provider::Google => google_identity(state, client, &flow, code).await?,
        Provider::Github => github_identity(state, client, &flow, code).await?,
    };
    Ok((identity, redirect_to))
}

/// Takes a flow the user declined at the provider; where to send them back.
pub async fn abandon(
    state: &AppState,
    provider: Provider,
    flow_state: &str,
) -> Result<Url, ApiError> {
    let flow = take_flow(state, provider, flow_state).await?;
    Url::parse(&flow.redirect_to).map_err(|_| unknown_flow())
}

fn unknown_flow() -> ApiError {
    ApiError::new(ErrorCode::InvalidToken).with_detail("Unknown or expired sign-in.")
}

/// Takes (once) the pending flow stored under `flow_state`.
async fn take_flow(
    state: &AppState,
    provider: Provider,
    flow_state: &str,
) -> Result<PendingFlow, ApiError> {
    if flow_state.len() > 128 {
        return Err(unknown_flow());
    }
    let raw = state
        .kv
        .take(&flow_key(flow_state))
        .await?
        .ok_or_else(unknown_flow)?;
    let flow: PendingFlow = serde_json::from_slice(&raw).map_err(|_| unknown_flow())?;
    if flow.provider != provider {
        return Err(unknown_flow());
    }
    Ok(flow)
}

/// The part of OpenID discovery we use.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: Url,
    token_endpoint: Url,
    jwks_uri: Url,
}

async fn discovery(state: &AppState) -> Result<Discovery, ApiError> {
    let issuer = &state.settings.oauth.google_issuer;
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.as_str().trim_end_matches('/')
    );
    let document: Discovery = provider_json(state.http.get(url)).await?;
    if document.issuer.trim_end_matches('/') != issuer.as_str().trim_end_matches('/') {
        return Err(provider_error(anyhow::anyhow!(
            "discovery names another issuer"
        )));
    }
    Ok(document)
}

fn provider_error(err: anyhow::Error) -> ApiError {
    tracing::warn!(error = %err, "identity provider failed");
    ApiError::unavailable("The identity provider could not be reached or refused.")
}

/// The most a provider's answer may hold: discovery documents, JWKS, tokens
/// and GitHub's user and emails answers are a few KiB.
const MAX_PROVIDER_RESPONSE_BYTES: usize = 256 * 1024;

async fn provider_json<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
) -> Result<T, ApiError> {
    let mut response = request
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .context("request")
        .map_err(provider_error)?;
    if !response.status().is_success() {
        return Err(provider_error(anyhow::anyhow!(
            "answered {}",
            response.status()
        )));
    }
    let too_large = || {
        provider_error(anyhow::anyhow!(
            "answer larger than {MAX_PROVIDER_RESPONSE_BYTES} bytes"
        ))
    };
    if response
        .content_length()
        .is_some_and(|length| length > MAX_PROVIDER_RESPONSE_BYTES as u64)
    {
        return Err(too_large());
    }
    // Read in chunks, so an answer without a length cannot grow past the cap.
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .context("response body")
        .map_err(provider_error)?
    {
        if body.len() + chunk.len() > MAX_PROVIDER_RESPONSE_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body)
        .context("response body")
        .map_err(provider_error)
}

#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: Option<String>,
    id_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IdClaims {
    sub: String,
    nonce: Option<String>,
    email: Option<String>,
    #[serde(default)]
    email_verified: bool,
    name: Option<String>,
}

async fn exchange_code(
    state: &AppState,
    token_url: Url,
    client: &OAuthClient,
    provider: Provider,
    flow: &PendingFlow,
    code: &str,
) -> Result<TokenResponse, ApiError> {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", &callback_url(state, provider)),
        ("client_id", &client.client_id),
        ("client_secret", client.client_secret.expose_secret()),
        ("code_verifier", &flow.verifier),
    ];
    provider_json(state.http.post(token_url).form(&form)).await
}

async fn google_identity(
    state: &AppState,
    client: &OAuthClient,
    flow: &PendingFlow,
    code: &str,
) -> Result<ProviderIdentity, ApiError> {
    let discovery = discovery(state).await?;
    let tokens = exchange_code(
        state,
        discovery.token_endpoint.clone(),
        client,
        Provider::Google,
        flow,
        code,
    )
    .await?;
    let id_token = tokens
        .id_token
        .ok_or_else(|| provider_error(anyhow::anyhow!("no id_token")))?;
    let claims = verify_id_token(state, &discovery, client, &id_token).await?;
    let nonce_ok = claims
        .nonce
        .as_deref()
        .is_some_and(|n| subtle::ConstantTimeEq::ct_eq(n.as_bytes(), flow.nonce.as_bytes()).into());
    if !nonce_ok {
        return Err(ApiError::new(ErrorCode::InvalidToken).with_detail("The sign-in was not ours."));
    }
    Ok(ProviderIdentity {
        provider: Provider::Google,
        subject: claims.sub,
        verified_email: claims.email.filter(|_| claims.email_verified),
        name: claims.name,
        access_token: tokens.access_token,
    })
}

async fn verify_id_token(
    state: &AppState,
    discovery: &Discovery,
    client: &OAuthClient,
    id_token: &str,
) -> Result<IdClaims, ApiError> {
    let refused =
        || ApiError::new(ErrorCode::InvalidToken).with_detail("The identity token was refused.");
    let header = jsonwebtoken::decode_header(id_token).map_err(|_| refused())?;
    if header.alg != Algorithm::RS256 {
        return Err(refused());
    }
    let keys: JwkSet = provider_json(state.http.get(discovery.jwks_uri.clone())).await?;
    let jwk = match header.kid.as_deref() {
        Some(kid) => keys.find(kid),
        None => keys.keys.first(),
    }
    .ok_or_else(refused)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| refused())?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[client.client_id.as_str()]);
    validation.set_issuer(&[discovery.issuer.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 30;
    jsonwebtoken::decode::<IdClaims>(id_token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|_| refused())
}

#[derive(Debug, Deserialize)]
struct GithubUser {
    id: u64,
    login: String,
    name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GithubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

async fn github_identity(
    state: &AppState,
    client: &OAuthClient,
    flow: &PendingFlow,
    code: &str,
) -> Result<ProviderIdentity, ApiError> {
    let oauth = &state.settings.oauth;
    let tokens = exchange_code(
        state,
        oauth.github_token_url.clone(),
        client,
        Provider::Github,
        flow,
        code,
    )
    .await?;
    let access = tokens.access_token.ok_or_else(|| {
        ApiError::new(ErrorCode::InvalidToken).with_detail("The sign-in was refused.")
    })?;
    let api = oauth.github_api_url.as_str().trim_end_matches('/');
    let get = |path: &str| {
        state
            .http
            .get(format!("{api}{path}"))
            .bearer_auth(&access)
            .header(reqwest::header::USER_AGENT, "rabt")
    };
    let user: GithubUser = provider_json(get("/user")).await?;
    let emails: Vec<GithubEmail> = provider_json(get("/user/emails")).await?;
    let verified_email = emails
        .into_iter()
        .find(|e| e.primary && e.verified)
        .map(|e| e.email);
    Ok(ProviderIdentity {
        provider: Provider::Github,
        subject: user.id.to_string(),
        verified_email,
        name: user.name.or(Some(user.login)),
        access_token: Some(access),
    })
}
