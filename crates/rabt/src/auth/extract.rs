//! `AuthUser`: the signed-in caller. A request with a bad, expired or revoked
//! token is refused (401), never treated as anonymous. `Holding<P>` adds a
//! permission, `StepUp<C>` a recent second factor (API.md §3).

use std::marker::PhantomData;

use axum::{
    extract::{FromRef, FromRequestParts},
    http::{header, request::Parts},
};
use uuid::Uuid;

use super::sessions;
use crate::{
    db::Actor,
    http::{ApiError, ErrorCode},
    state::AppState,
};

/// The caller, from a valid access token whose session is alive.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub id: Uuid,
    pub session_id: Uuid,
    /// Current, not as of the token: a changed role counts from the next request.
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    /// The assurance level the access token carries (1 or 2).
    pub aal: u8,
}

impl AuthUser {
    /// The database actor for this caller's transactions.
    pub fn actor(&self) -> Actor {
        Actor::User {
            id: self.id,
            permissions: self.permissions.clone(),
        }
    }

    /// Whether the caller's roles grant `P`.
    pub fn can<P: Permission>(&self) -> bool {
        self.permissions.iter().any(|p| p == P::NAME)
    }

    /// Whether the caller's roles grant the permission named `name`: for
    /// permissions that come as data (those of a role being granted); code
    /// that demands one names its type ([`AuthUser::can`]).
    pub fn holds(&self, name: &str) -> bool {
        self.permissions.iter().any(|p| p == name)
    }

    /// 403 `forbidden` unless the caller holds `P`.
    pub fn require<P: Permission>(&self) -> Result<(), ApiError> {
        if self.can::<P>() {
            Ok(())
        } else {
            Err(ApiError::new(ErrorCode::Forbidden)
                .with_detail(format!("This needs the `{}` permission.", P::NAME)))
        }
    }
}

impl<S> FromRequestParts<S> for AuthUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let token = crate::http::bearer(&parts.headers)
            .ok_or_else(|| ApiError::new(ErrorCode::Unauthorized))?;
        AuthUser::from_token(&state, token).await
    }
}

impl AuthUser {
    /// The caller an access token names, if it is valid and its session alive
    /// (the realtime socket reads its token elsewhere than the header).
    pub async fn from_token(state: &AppState, token: &str) -> Result<Self, ApiError> {
        let claims = state.tokens.verify(token)?;
        let grants = sessions::check(state, claims.sid, claims.sub)
            .await?
            .ok_or_else(|| {
                ApiError::new(ErrorCode::Unauthorized).with_detail("This session has ended.")
            })?;
        Ok(Self {
            id: claims.sub,
            session_id: claims.sid,
            roles: grants.roles,
            permissions: grants.permissions,
            aal: claims.aal,
        })
    }
}

/// A permission of the catalogue (migrations/0004), as a type a handler can
/// demand in its signature through [`Holding`].
pub trait Permission: Send + Sync + 'static {
    const NAME: &'static str;
}

macro_rules! permissions {
    ($($(#[$doc:meta])* $ty:ident => $name:literal,)*) => {
        /// The permissions handlers demand by type.
        pub mod permission {
            $(
                $(#[$doc])*
                #[derive(Debug, Clone, Copy)]
                pub struct $ty;
                impl super::Permission for $ty {
                    const NAME: &'static str = $name;
                }
            )*
        }
    };
}

permissions! {
    /// `users.read_private`: see private profiles and email addresses.
    UsersReadPrivate => "users.read_private",
    /// `users.manage`: edit and suspend users.
    UsersManage => "users.manage",
    /// `users.delete`: deactivate (and later erase) users.
    UsersDelete => "users.delete",
    /// `roles.manage`: create, change and delete custom roles.
    RolesManage => "roles.manage",
    /// `roles.assign`: grant and take away roles.
    RolesAssign => "roles.assign",
    /// `projects.moderate`: see and act on any project.
    ProjectsModerate => "projects.moderate",
    /// `analytics.read`: read platform analytics.
    AnalyticsRead => "analytics.read",
    /// `billing.read_all`: read every user's billing.
    BillingReadAll => "billing.read_all",
    /// `jobs.manage`: inspect and retry background jobs.
    JobsManage => "jobs.manage",
    /// `legal.manage`: publish privacy policies.
    LegalManage => "legal.manage",
}

/// Every permission of the catalogue, as the database names them.
pub const ALL_PERMISSIONS: [&str; 10] = [
    permission::UsersReadPrivate::NAME,
    permission::UsersManage::NAME,
    permission::UsersDelete::NAME,
    permission::RolesManage::NAME,
    permission::RolesAssign::NAME,
    permission::ProjectsModerate::NAME,
    permission::AnalyticsRead::NAME,
    permission::BillingReadAll::NAME,
    permission::JobsManage::NAME,
    permission::LegalManage::NAME,
];

/// The signed-in caller, known to hold `P`: a handler that takes
/// `Holding<P>` runs only for them. Without a valid session it is 401, without
/// the permission 403 `forbidden`, both before the body is read. The same
/// permissions reach the database policies through the caller's actor.
/// Only the extractor makes one; it reads as the [`AuthUser`] it holds.
#[derive(Debug, Clone)]
pub struct Holding<P: Permission>(AuthUser, PhantomData<P>);

impl<P: Permission> std::ops::Deref for Holding<P> {
    type Target = AuthUser;

    fn deref(&self) -> &AuthUser {
        &self.0
    }
}

impl<S, P> FromRequestParts<S> for Holding<P>
where
    AppState: FromRef<S>,
    S: Send + Sync,
    P: Permission,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = AuthUser::from_request_parts(parts, state).await?;
        caller.require::<P>()?;
        super::mfa::require_enrolled_admin(&AppState::from_ref(state), &caller).await?;
        Ok(Self(caller, PhantomData))
    }
}

/// An extractor that yields a signed-in caller: [`AuthUser`], [`Holding`].
pub trait Caller {
    fn caller(&self) -> &AuthUser;
}

impl Caller for AuthUser {
    fn caller(&self) -> &AuthUser {
        self
    }
}

impl<P: Permission> Caller for Holding<P> {
    fn caller(&self) -> &AuthUser {
        &self.0
    }
}

/// The caller `C` (an [`AuthUser`] or a [`Holding`]), who has proven a
/// second factor in this session within the last 10 minutes, if they have
/// two-factor sign-in on. Sensitive actions take it in place of `C`: a
/// password change, the changes of two-factor sign-in itself, role
/// assignment, and whatever else asks for it (the billing portal, erasure).
/// Otherwise 403 `mfa_required` with an `mfa_token` whose challenge raises
/// the session, before the body is read. It reads as the `C` it holds.
#[derive(Debug, Clone)]
pub struct StepUp<C = AuthUser>(C);

impl<C> std::ops::Deref for StepUp<C> {
    type Target = C;

    fn deref(&self) -> &C {
        &self.0
    }
}

impl<S, C> FromRequestParts<S> for StepUp<C>
where
    AppState: FromRef<S>,
    S: Send + Sync,
    C: FromRequestParts<S, Rejection = ApiError> + Caller + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let inner = C::from_request_parts(parts, state).await?;
        super::mfa::require_recent_second_factor(&AppState::from_ref(state), inner.caller())
            .await?;
        Ok(Self(inner))
    }
}

/// The caller if a token was sent, else nobody. A token that was sent but is
/// bad is still refused (401), never downgraded to anonymous.
#[derive(Debug, Clone)]
pub struct MaybeAuthUser(pub Option<AuthUser>);

impl MaybeAuthUser {
    pub fn actor(&self) -> Actor {
        self.0.as_ref().map_or(Actor::Anonymous, AuthUser::actor)
    }
}

impl<S> FromRequestParts<S> for MaybeAuthUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(header::AUTHORIZATION) {
            AuthUser::from_request_parts(parts, state)
                .await
                .map(|u| Self(Some(u)))
        } else {
            Ok(Self(None))
        }
    }
}
