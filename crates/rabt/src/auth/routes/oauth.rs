//! Signing in with Google (OpenID Connect) or GitHub (OAuth 2): the redirect
//! to the provider, its callback, and the exchange of the one-time code.

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq as _;
use utoipa::ToSchema;

use super::{SignInAnswer, limit, on_constraint, per_address, sign_in};
use crate::{
    audit::{self, Action},
    auth::{
        mfa::Via,
        oauth::{self, Provider},
        store::{self, Purpose},
    },
    db::Actor,
    http::{
        ApiError, AppJson, AppPath, AppQuery, ClientInfo, ErrorCode, cookies, error::ProblemBody,
    },
    state::AppState,
};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeParams {
    /// A page of the web app to come back to.
    pub redirect_to: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    /// Set by the provider when the user declined.
    pub error: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequestCode {
    pub code: String,
    #[serde(default)]
    pub refresh_cookie: bool,
}

fn provider(name: &str) -> Result<Provider, ApiError> {
    Provider::parse(name).ok_or_else(ApiError::not_found)
}

fn redirect(location: &str) -> Result<Response, ApiError> {
    let mut response = StatusCode::FOUND.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(location).map_err(ApiError::internal)?,
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// Start signing in with `google` (OpenID Connect) or `github` (OAuth 2).
#[utoipa::path(get, path = "/auth/oauth/{provider}/authorize", tag = "auth",
    params(("provider" = String, Path, description = "`google` or `github`"), AuthorizeParams),
    responses(
        (status = 302, description = "To the provider, with state and PKCE (S256)"),
        (status = 422, description = "`redirect_to` is not a page of the web app, or a parameter \
            is invalid (`validation_failed`)", body = ProblemBody,
            content_type = "application/problem+json"),
        (status = 503, description = "The provider is not configured (`unavailable`)", body = ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub async fn oauth_authorize(
    State(state): State<AppState>,
    client: ClientInfo,
    AppPath(name): AppPath<String>,
    AppQuery(params): AppQuery<AuthorizeParams>,
) -> Result<Response, ApiError> {
    let provider = provider(&name)?;
    limit(
        &state,
        "oauth",
        "address",
        &client.ip_key(),
        per_address(&state),
    )
    .await?;
    let (url, flow_state) = oauth::authorize_url(&state, provider, &params.redirect_to).await?;
    let mut response = redirect(&url)?;
    let cookie = format!(
        "{}={}; HttpOnly; Secure; SameSite=Lax; Path=/v1/auth/oauth; Max-Age=600",
        oauth::BROWSER_COOKIE,
        oauth::browser_binding(&flow_state)
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
    );
    Ok(response)
}

/// Where the provider sends the browser back: links or creates the account,
/// then sends the browser to `redirect_to?code=ONE_TIME_CODE` (60 s, single use).
#[utoipa::path(get, path = "/auth/oauth/{provider}/callback", tag = "auth",
    params(("provider" = String, Path), CallbackParams),
    responses(
        (status = 302, description = "To the web app with `code` (or `error`)"),
        (status = 400, description = "Unknown or expired state, or a refused identity token \
            (`invalid_token`)",
            body = ProblemBody, content_type = "application/problem+json"),
        (status = 403, description = "`account_suspended` or `email_not_verified`", body = ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub async fn oauth_callback(
    State(state): State<AppState>,
    client: ClientInfo,
    headers: HeaderMap,
    AppPath(name): AppPath<String>,
    AppQuery(params): AppQuery<CallbackParams>,
) -> Result<Response, ApiError> {
    let provider = provider(&name)?;
    let flow_state = params
        .state
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken).with_detail("No state."))?;
    // The flow must come back to the browser that started it.
    let bound = cookies::value(&headers, oauth::BROWSER_COOKIE).is_some_and(|value| {
        bool::from(
            value
                .as_bytes()
                .ct_eq(oauth::browser_binding(&flow_state).as_bytes()),
        )
    });
    if !bound {
        return Err(ApiError::new(ErrorCode::InvalidToken)
            .with_detail("This sign-in was started in another browser."));
    }
    if let Some(error) = params.error {
        // The user declined: take the flow (so it cannot be replayed) and say so.
        let mut back = oauth::abandon(&state, provider, &flow_state).await?;
        let code: String = error
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        back.query_pairs_mut().append_pair("error", &code);
        return redirect(back.as_str());
    }
    let code = params
        .code
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken).with_detail("No code."))?;
    let (identity, mut back) = oauth::finish(&state, provider, &flow_state, &code).await?;

    let mut tx = state.db.begin(&Actor::Service).await?;
    let user = match store::user_by_identity(&mut tx, provider.as_str(), &identity.subject).await? {
        Some(user) => user,
        None => {
            // A new identity joins an account only through an address the
            // provider verified.
            let email = identity.verified_email.clone().ok_or_else(|| {
                ApiError::new(ErrorCode::EmailNotVerified)
                    .with_detail("The provider has no verified email address for this account.")
            })?;
            let name: String = identity
                .name
                .clone()
                .unwrap_or_else(|| email.split('@').next().unwrap_or("rabt user").to_owned())
                .chars()
                .take(80)
                .collect();
            let user = match store::insert_oauth_user(&mut tx, &email, &name)
                .await
                .map_err(on_constraint)?
            {
                Some(user) => {
                    store::record_signup_consent(&mut tx, user, &client).await?;
                    user
                }
                None => {
                    let existing = store::credentials_by_email(&mut tx, &email)
                        .await?
                        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("email vanished")))?;
                    if !existing.email_verified {
                        store::claim_unverified_account(&mut tx, existing.id).await?;
                    }
                    existing.id
                }
            };
            store::link_identity(
                &mut tx,
                user,
                provider.as_str(),
                &identity.subject,
                Some(email.as_str()),
            )
            .await?;
            audit::record(
                &mut tx,
                Some(user),
                Action::OauthLinked,
                Some(user),
                &client,
                json!({"provider": provider.as_str()}),
            )
            .await?;
            user
        }
    };
    if let Some(token) = &identity.access_token {
        let sealed = state.keyring.seal(
            token.as_bytes(),
            &crate::crypto::oauth_token_context(provider.as_str(), &identity.subject),
        );
        store::store_provider_token(&mut tx, provider.as_str(), &identity.subject, &sealed).await?;
    }
    let account = store::credentials_by_id(&mut tx, user)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if account.suspended || account.deactivated {
        return Err(ApiError::new(ErrorCode::AccountSuspended));
    }
    let code = store::create_one_time_token(
        &mut tx,
        user,
        Purpose::OauthCode,
        std::time::Duration::from_secs(60),
    )
    .await?;
    tx.commit().await?;
    back.query_pairs_mut().append_pair("code", &code);
    redirect(back.as_str())
}

/// Trade the one-time code of a provider sign-in for a token pair.
#[utoipa::path(post, path = "/auth/oauth/exchange", tag = "auth", request_body = TokenRequestCode,
    responses(
        (status = 200, body = SignInAnswer, description = "A token pair or, with two-factor sign-in on, `{mfa_required, mfa_token}`"),
        (status = 400, description = "Bad, used or expired code (`invalid_token`)", body = ProblemBody,
            content_type = "application/problem+json"),
    ))]
pub async fn oauth_exchange(
    State(state): State<AppState>,
    client: ClientInfo,
    AppJson(body): AppJson<TokenRequestCode>,
) -> Result<Response, ApiError> {
    let mut tx = state.db.begin(&Actor::Service).await?;
    let user = store::consume_one_time_token(&mut tx, body.code.trim(), Purpose::OauthCode)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidToken))?;
    let event = (Action::LoginSucceeded, json!({"method": "oauth"}));
    let answer = sign_in(
        &state,
        &mut tx,
        user,
        &client,
        event,
        Via::Oauth,
        body.refresh_cookie,
    )
    .await?;
    tx.commit().await?;
    Ok(answer.into_response())
}
