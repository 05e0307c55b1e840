use std::net::IpAddr;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::Problem;
use crate::gate::{Check, Gate};

/// What a user may do. Agents, partners and operators act for the organization they belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Books for themself.
    Customer,
    /// Books for customers at an agency's desk.
    Agent,
    /// A partner system booking through the API, usually with an API key.
    Partner,
    /// Customer support: reads everything, changes little.
    Support,
    /// Manages the inventory and catalog of their organization (an airline or hotel chain).
    Operator,
    /// Runs the platform.
    Admin,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Customer,
        Role::Agent,
        Role::Partner,
        Role::Support,
        Role::Operator,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Agent => "agent",
            Role::Partner => "partner",
            Role::Support => "support",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Roles that only make sense inside an organization.
    pub fn needs_organization(self) -> bool {
        matches!(self, Role::Agent | Role::Partner | Role::Operator)
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL.into_iter().find(|role| role.as_str() == s).ok_or_else(|| {
            format!("unknown role {s:?}: expected one of customer, agent, partner, support, operator, admin")
        })
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of roles, one bit each: copying a principal allocates nothing. On the wire, a list of role names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Roles(u8);

impl Roles {
    fn bit(role: Role) -> u8 {
        1 << (role as u8)
    }

    pub fn contains(self, role: Role) -> bool {
        self.0 & Roles::bit(role) != 0
    }

    pub fn insert(&mut self, role: Role) {
        self.0 |= Roles::bit(role);
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The roles in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |role| self.contains(*role))
    }

    pub fn to_vec(self) -> Vec<Role> {
        self.iter().collect()
    }
}

impl FromIterator<Role> for Roles {
    fn from_iter<I: IntoIterator<Item = Role>>(roles: I) -> Roles {
        let mut set = Roles::default();
        for role in roles {
            set.insert(role);
        }
        set
    }
}

impl<const N: usize> From<[Role; N]> for Roles {
    fn from(roles: [Role; N]) -> Roles {
        roles.into_iter().collect()
    }
}

impl From<&[Role]> for Roles {
    fn from(roles: &[Role]) -> Roles {
        roles.iter().copied().collect()
    }
}

impl Serialize for Roles {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Roles {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Roles, D::Error> {
        Ok(Vec::<Role>::deserialize(deserializer)?.into_iter().collect())
    }
}

/// The credential a request was authenticated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Credential {
    AccessToken {
        token_id: Uuid,
    },
    ApiKey {
        key_id: Uuid,
    },
    /// A Phoenix service acting later for this principal (the saga finishing a booking its customer started). Only
    /// services create it; the gateway never accepts it from outside.
    OnBehalf {
        of: Uuid,
    },
}

/// Who is calling. Only the gateway creates one, after checking a credential; services read it from the request
/// (the [`FromRequestParts`] impl answers 401 when the request carries none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub user_id: Uuid,
    pub roles: Roles,
    pub organization_id: Option<Uuid>,
    pub credential: Credential,
}

impl Principal {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(role)
    }

    pub fn has_any(&self, roles: &[Role]) -> bool {
        roles.iter().any(|role| self.has(*role))
    }

    /// Support and admin see every object; everyone else sees their own or their organization's.
    pub fn sees_everything(&self) -> bool {
        self.has_any(&[Role::Support, Role::Admin])
    }

    /// `Ok` when the principal holds one of `roles` (any principal when `roles` is empty), else 403.
    pub fn require_any(&self, roles: &[Role]) -> Result<(), Problem> {
        if roles.is_empty() || self.has_any(roles) {
            Ok(())
        } else {
            Err(Problem::forbidden())
        }
    }

    /// The key rate limits are counted under: the user, whichever credential they call with. One budget for all of
    /// a user's sessions and API keys, or a partner holding a hundred keys would have a hundred budgets.
    pub fn rate_limit_key(&self) -> String {
        format!("user:{}", self.user_id)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .copied()
            .ok_or_else(|| Problem::unauthenticated("this endpoint needs a bearer token or API key"))
    }
}

/// The request's id, set by the gateway from `X-Request-Id` or freshly generated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(String::new())))
    }
}

/// The address of the client as the gateway saw it (the peer, or a trusted proxy's `X-Forwarded-For`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<ClientIp>().copied().unwrap_or(ClientIp(None)))
    }
}

/// Declares who may call the routes it wraps: a principal holding any of `roles` (any principal at all when
/// `roles` is empty). Without a principal the answer is 401, with the wrong roles 403.
///
/// Services attach it beside their routes with `route_layer`, so the rule reads next to the handler it guards.
#[derive(Debug, Clone, Copy)]
pub struct RequireRoles {
    roles: &'static [Role],
}

impl RequireRoles {
    /// Any authenticated principal.
    pub const fn authenticated() -> RequireRoles {
        RequireRoles { roles: &[] }
    }

    pub const fn any_of(roles: &'static [Role]) -> RequireRoles {
        RequireRoles { roles }
    }
}

impl<S> tower::Layer<S> for RequireRoles {
    type Service = Gate<S, RequireRoles>;

    fn layer(&self, inner: S) -> Self::Service {
        Gate::new(inner, *self)
    }
}

impl Check for RequireRoles {
    fn check(&self, request: &mut Request) -> Result<(), Problem> {
        match request.extensions().get::<Principal>() {
            None => Err(Problem::unauthenticated(
                "this endpoint needs a bearer token or API key",
            )),
            Some(principal) => principal.require_any(self.roles),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_a_set_that_travels_as_a_list() {
        let roles = Roles::from([Role::Admin, Role::Customer, Role::Admin]);
        assert!(roles.contains(Role::Admin) && roles.contains(Role::Customer) && !roles.contains(Role::Agent));
        assert_eq!(roles.to_vec(), vec![Role::Customer, Role::Admin]);
        let json = serde_json::to_string(&roles).unwrap();
        assert_eq!(json, r#"["customer","admin"]"#);
        assert_eq!(serde_json::from_str::<Roles>(&json).unwrap(), roles);
    }
}
