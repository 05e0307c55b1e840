//! A booking request as a client sends it, and its checks: everything that can be said about it before asking the
//! catalog for a price, and the traveller ages once the travel date is known.

use phoenix_api::card::looks_like_card_number;
use phoenix_api::{FieldErrors, Principal, Role};
use phoenix_catalog::pricing::{MAX_GUESTS, MAX_TRAVELLERS};
use phoenix_catalog::quote::QuoteItem;
use serde::{Deserialize, Serialize};
use time::Date;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::booking::{Contact, Traveller};
use crate::policy::{TravellerType, traveller_type_on};
use crate::{Error, Options};

/// A request to book one or more items (a stay, a flight, or both as a package) for up to nine travellers.
/// Its `Debug` leaves the payment token out, so no log line can carry it.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookingRequest {
    /// What to book, priced by the catalog as it would quote it (an `offer_id` from search keeps the price shown).
    #[schema(min_items = 1, max_items = 6)]
    pub items: Vec<QuoteItem>,
    /// As many travellers as the largest party among the items; a flight's passenger types must match.
    #[schema(min_items = 1, max_items = 9)]
    pub travellers: Vec<Traveller>,
    pub contact: Contact,
    /// The payment provider's token for the card (`tok_...`). Never a card number: that is refused.
    #[schema(min_length = 1, max_length = 255)]
    pub payment_token: String,
    /// The customer booked for (agents, partners and admins); customers book for themselves. Agents and partners
    /// book for users of no organization or of their own; anyone else is refused like an unknown id (422).
    #[serde(default)]
    pub customer_id: Option<Uuid>,
    /// The currency to pay in (default: the items' own).
    #[serde(default)]
    pub currency: Option<String>,
}

impl std::fmt::Debug for BookingRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BookingRequest")
            .field("items", &self.items)
            .field("travellers", &self.travellers)
            .field("contact", &self.contact)
            .field("payment_token", &"<redacted>")
            .field("customer_id", &self.customer_id)
            .field("currency", &self.currency)
            .finish()
    }
}

/// Roles that may book.
pub const BOOKER_ROLES: &[Role] = &[Role::Customer, Role::Agent, Role::Partner, Role::Admin];

/// Roles that may book for someone else.
const BOOK_FOR_OTHERS: &[Role] = &[Role::Agent, Role::Partner, Role::Admin];

const MAX_NAME_CHARS: usize = 60;
const MAX_TOKEN_CHARS: usize = 255;

/// A request that passed every check that needs no price.
#[derive(Debug)]
pub struct Checked {
    pub customer_id: Uuid,
    pub travellers: Vec<Traveller>,
    pub contact: Contact,
}

/// How many people an item is for, and of which types when it says (flights do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Party {
    pub total: u32,
    /// Adults, children, infants.
    pub types: Option<(u32, u32, u32)>,
}

/// The party of one requested item.
pub fn party(item: &QuoteItem) -> Party {
    match item {
        QuoteItem::Hotel(hotel) => Party {
            total: hotel.guests,
            types: None,
        },
        QuoteItem::Flight(flight) => {
            let p = flight.passengers;
            Party {
                total: p.adults.saturating_add(p.children).saturating_add(p.infants),
                types: Some((p.adults, p.children, p.infants)),
            }
        }
    }
}

fn is_flight(item: &QuoteItem) -> bool {
    matches!(item, QuoteItem::Flight(_))
}

/// Checks `request` for `actor`: first whether the payment token is a card number (that must stop everything,
/// whatever else is wrong), then every field, then who it is for, then whether the travellers fit the items.
pub fn check(request: &BookingRequest, actor: &Principal, options: &Options) -> Result<Checked, Error> {
    if looks_like_card_number(&request.payment_token) {
        return Err(Error::CardNumberNotAllowed);
    }
    let mut errors = FieldErrors::default();
    count(&mut errors, "items", request.items.len(), options.max_items);
    count(
        &mut errors,
        "travellers",
        request.travellers.len(),
        options.max_travellers,
    );
    for (i, item) in request.items.iter().enumerate() {
        // Checked with the travellers, so one answer names everything (the catalog checks the rest of an item), and
        // before they are compared with each item's party: a party of none is a bad item, not a traveller too many.
        match item {
            QuoteItem::Flight(flight) => {
                if flight.departure_ids.is_empty() {
                    errors.add(format!("items[{i}].departure_ids"), "must name at least one departure");
                }
                if !(1..=MAX_TRAVELLERS).contains(&party(item).total) {
                    errors.add(
                        format!("items[{i}].passengers"),
                        format!("1 to {MAX_TRAVELLERS} passengers in all"),
                    );
                }
            }
            QuoteItem::Hotel(hotel) => {
                if !(1..=MAX_GUESTS).contains(&hotel.guests) {
                    errors.add(
                        format!("items[{i}].guests"),
                        format!("must be between 1 and {MAX_GUESTS}"),
                    );
                }
            }
        }
    }
    let with_flight = request.items.iter().any(is_flight);
    let travellers: Vec<Traveller> = request
        .travellers
        .iter()
        .enumerate()
        .map(|(i, t)| traveller(&mut errors, i, t, with_flight))
        .collect();
    let contact = contact(&mut errors, &request.contact);
    token(&mut errors, &request.payment_token);
    if !errors.is_empty() {
        return Err(Error::Invalid(errors.into_errors()));
    }
    let customer_id = customer(actor, request.customer_id)?;
    fits(&request.items, &travellers)?;
    Ok(Checked {
        customer_id,
        travellers,
        contact,
    })
}

fn count(errors: &mut FieldErrors, field: &str, n: usize, max: usize) {
    if n == 0 || n > max {
        errors.add(field, format!("must have 1 to {max} entries"));
    }
}

/// A traveller's name, trimmed. It goes on tickets, vouchers and lists of guests: nothing in it may change how it
/// reads unseen, and no card number belongs there.
fn name(errors: &mut FieldErrors, field: &str, value: &str) -> String {
    let trimmed = value.trim();
    let n = trimmed.chars().count();
    let max = MAX_NAME_CHARS;
    if n == 0 || n > max {
        errors.add(field, format!("must have 1 to {max} characters"));
    } else if trimmed.chars().any(char::is_control) {
        errors.add(field, "must not contain control characters");
    } else if phoenix_api::text::has_invisible_format(trimmed) {
        errors.add(field, phoenix_api::text::INVISIBLE_FORMAT);
    } else if looks_like_card_number(trimmed) {
        errors.add(field, "must not contain a card number");
    }
    trimmed.to_owned()
}

fn traveller(errors: &mut FieldErrors, i: usize, t: &Traveller, with_flight: bool) -> Traveller {
    let field = |name: &str| format!("travellers[{i}].{name}");
    let first_name = name(errors, &field("first_name"), &t.first_name);
    let last_name = name(errors, &field("last_name"), &t.last_name);
    if !last_name.is_empty() && !last_name.chars().any(char::is_alphanumeric) {
        // "Manage my booking" finds a booking by a traveller's last name, compared on its letters and digits.
        errors.add(field("last_name"), "must contain a letter");
    }
    let needs_birth_date = with_flight || t.traveller_type != TravellerType::Adult;
    if needs_birth_date && t.date_of_birth.is_none() {
        let why = if with_flight {
            "is required for flights"
        } else {
            "is required for children and infants"
        };
        errors.add(field("date_of_birth"), why);
    }
    Traveller {
        first_name,
        last_name,
        traveller_type: t.traveller_type,
        date_of_birth: t.date_of_birth,
    }
}

fn contact(errors: &mut FieldErrors, contact: &Contact) -> Contact {
    let email = contact.email.trim().to_owned();
    if !is_email(&email) {
        errors.add("contact.email", "must be an email address");
    }
    let phone = contact
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned);
    if phone.as_deref().is_some_and(|p| !is_phone(p)) {
        errors.add(
            "contact.phone",
            "must be 5 to 15 digits, optionally with +, spaces, dashes and parentheses",
        );
    }
    Contact { email, phone }
}

/// The platform's one test of an address's shape ([`phoenix_api::email::problem`]): the confirmation goes there.
fn is_email(email: &str) -> bool {
    phoenix_api::email::problem(email).is_none()
}

fn is_phone(phone: &str) -> bool {
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    (5..=15).contains(&digits)
        && phone
            .strip_prefix('+')
            .unwrap_or(phone)
            .chars()
            .all(|c| c.is_ascii_digit() || " -()".contains(c))
}

fn token(errors: &mut FieldErrors, token: &str) {
    if token.is_empty() || token.len() > MAX_TOKEN_CHARS || !token.bytes().all(|b| b.is_ascii_graphic()) {
        errors.add(
            "payment_token",
            format!("must be 1 to {MAX_TOKEN_CHARS} printable characters"),
        );
    }
}

/// Who the booking is for: the actor, or for agents, partners and admins anyone they name.
fn customer(actor: &Principal, customer_id: Option<Uuid>) -> Result<Uuid, Error> {
    match customer_id {
        None => Ok(actor.user_id),
        Some(id) if id == actor.user_id || actor.has_any(BOOK_FOR_OTHERS) => Ok(id),
        Some(_) => Err(Error::Forbidden("customers book for themselves")),
    }
}

/// The travellers are the largest party among the items, and each flight's passenger types are theirs.
fn fits(items: &[QuoteItem], travellers: &[Traveller]) -> Result<(), Error> {
    let parties: Vec<Party> = items.iter().map(party).collect();
    let largest = parties.iter().map(|p| p.total).max().unwrap_or(0);
    if usize::try_from(largest).ok() != Some(travellers.len()) {
        return Err(Error::TravellerMismatch {
            detail: format!("{} travellers for a party of {largest}", travellers.len()),
        });
    }
    let of = |kind| travellers.iter().filter(|t| t.traveller_type == kind).count() as u32;
    let ours = (
        of(TravellerType::Adult),
        of(TravellerType::Child),
        of(TravellerType::Infant),
    );
    for (i, party) in parties.iter().enumerate() {
        if let Some((adults, children, infants)) = party.types
            && (adults, children, infants) != ours
        {
            return Err(Error::TravellerMismatch {
                detail: format!(
                    "items[{i}] is for {adults} adults, {children} children and {infants} infants; the travellers are \
                     {} adults, {} children and {} infants",
                    ours.0, ours.1, ours.2
                ),
            });
        }
    }
    Ok(())
}

/// A hotel stay needs an adult among the travellers: hotels check in adults, and no room is let to children or
/// infants alone. (Flights say who flies in their passengers: an infant needs an adult's lap, which the catalog
/// checks; a child may fly alone as an airline's unaccompanied minor.) Checked after the ages, so a traveller
/// typed as a child who is not one is told that first.
pub fn accompanied(items: &[QuoteItem], travellers: &[Traveller]) -> Result<(), Error> {
    let with_stay = items.iter().any(|item| matches!(item, QuoteItem::Hotel(_)));
    if with_stay && !travellers.is_empty() && !travellers.iter().any(|t| t.traveller_type == TravellerType::Adult) {
        let mut errors = FieldErrors::default();
        errors.add("travellers", "a hotel stay needs at least one adult traveller");
        return Err(Error::Invalid(errors.into_errors()));
    }
    Ok(())
}

/// The oldest traveller a date of birth may make: older is a typing mistake (1800 for 1980).
const MAX_AGE_YEARS: i32 = 120;

/// Every traveller's date of birth fits their type on the day travel starts.
pub fn check_ages(travellers: &[Traveller], travel_date: Date) -> Result<(), Error> {
    let mut errors = FieldErrors::default();
    for (i, t) in travellers.iter().enumerate() {
        let Some(born) = t.date_of_birth else { continue };
        if travel_date.year() - born.0.year() > MAX_AGE_YEARS {
            errors.add(
                format!("travellers[{i}].date_of_birth"),
                format!("is more than {MAX_AGE_YEARS} years before the day of travel"),
            );
            continue;
        }
        match traveller_type_on(born.0, travel_date) {
            None => errors.add(format!("travellers[{i}].date_of_birth"), "is after the day of travel"),
            Some(actual) if actual != t.traveller_type => errors.add(
                format!("travellers[{i}].type"),
                format!("is {} on {travel_date}, a day of travel", actual.as_str()),
            ),
            Some(_) => {}
        }
    }
    match errors.is_empty() {
        true => Ok(()),
        false => Err(Error::Invalid(errors.into_errors())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_payment_token_never_shows_in_debug_output() {
        let request: BookingRequest = serde_json::from_value(serde_json::json!({
            "items": [], "travellers": [], "contact": {"email": "ann@example.com"}, "payment_token": "tok_secret",
        }))
        .unwrap();
        assert!(!format!("{request:?}").contains("tok_secret"));
    }

    #[test]
    fn emails_and_phones_need_their_shape() {
        for (email, ok) in [
            ("ann@example.com", true),
            ("a.b+c@mail.example.org", true),
            ("ann@example", false),
            ("@example.com", false),
            ("ann@@example.com", false),
            ("ann @example.com", false),
            ("ann@example..com", false),
            ("a,b@example.com", false),
        ] {
            assert_eq!(is_email(email), ok, "{email:?}");
        }
        for (phone, ok) in [
            ("+33 6 12 34 56 78", true),
            ("(555) 123-4567", true),
            ("1234", false),
            ("+33 6 12 34 56 78 90 12 34", false),
            ("call me", false),
        ] {
            assert_eq!(is_phone(phone), ok, "{phone:?}");
        }
    }
}
