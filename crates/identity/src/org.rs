use phoenix_db::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A company on the platform: an airline or hotel chain that supplies inventory, or an agency that sells it.
#[derive(Debug, Clone)]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub kind: OrganizationKind,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrganizationKind {
    Airline,
    HotelChain,
    Agency,
}

impl OrganizationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OrganizationKind::Airline => "airline",
            OrganizationKind::HotelChain => "hotel_chain",
            OrganizationKind::Agency => "agency",
        }
    }
}

/// Whether a member of an organization of `kind` may hold `role`: operators manage a supplier's inventory (an
/// airline or a hotel chain), agents and partners sell for an agency; the other roles belong to no kind.
pub fn may_hold(kind: OrganizationKind, role: phoenix_api::Role) -> bool {
    use phoenix_api::Role;
    match role {
        Role::Operator => matches!(kind, OrganizationKind::Airline | OrganizationKind::HotelChain),
        Role::Agent | Role::Partner => kind == OrganizationKind::Agency,
        Role::Customer | Role::Support | Role::Admin => true,
    }
}

impl std::str::FromStr for OrganizationKind {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "airline" => Ok(OrganizationKind::Airline),
            "hotel_chain" => Ok(OrganizationKind::HotelChain),
            "agency" => Ok(OrganizationKind::Agency),
            _ => Err(()),
        }
    }
}
