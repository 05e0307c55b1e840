//! Quotes: the price, the inventory and the cancellation terms of exactly what a customer books.
//!
//! A booking asks for a quotation of its items (hotel stays, flight itineraries) before it holds anything. Each item
//! is checked against the same snapshot and availability cache as search and priced by the same functions
//! (`search/stay.rs`, `search/itinerary.rs`), so a quote without an offer equals what search shows for the same
//! choice. With an offer id the price is the offer's, the price the customer was shown, once the offer is proven to
//! describe the item. A quotation also names the inventory buckets a booking must hold and the cancellation terms it
//! must apply; it holds nothing itself.

use phoenix_api::{FieldError, Principal};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::availability::Counted;
use crate::flight::Cabin;
use crate::model::{Check, Day};
use crate::money::{Currency, Money, MoneyError, convert};
use crate::pricing::PriceBreakdown;
use crate::search::{OfferDetails, Passengers, fx_rate};
use crate::snapshot::Snapshot;
use crate::{Catalog, Error};

mod flight;
mod hotel;
mod terms;

pub use terms::{CHECK_IN_TIME, CHECK_OUT_TIME, FLIGHT_FREE_CANCELLATION};

/// Most items one quotation prices: a package is a stay or two and the flights there and back.
pub const MAX_ITEMS: usize = 6;
/// Most legs of one itinerary: search sells direct flights and one-stop connections, and a quote sells no more.
pub const MAX_LEGS: usize = 2;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuoteRequest {
    /// 1 to 6 items, priced together.
    #[schema(min_items = 1, max_items = 6)]
    pub items: Vec<QuoteItem>,
    /// ISO 4217 currency of the quotation; by default the first item's. Items in other currencies are converted
    /// with the catalog's exchange rates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

/// One thing to price, as the customer chose it (from search, or from an offer search returned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum QuoteItem {
    Hotel(HotelItem),
    Flight(FlightItem),
}

impl QuoteItem {
    pub fn offer_id(&self) -> Option<&str> {
        match self {
            QuoteItem::Hotel(h) => h.offer_id.as_deref(),
            QuoteItem::Flight(f) => f.offer_id.as_deref(),
        }
    }
}

/// A stay: `rooms` rooms of one type with one rate plan, every night from check-in to the night before check-out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HotelItem {
    pub hotel_id: Uuid,
    pub room_type_id: Uuid,
    pub rate_plan_id: Uuid,
    pub check_in: Day,
    pub check_out: Day,
    /// 1 to 9.
    #[schema(minimum = 1, maximum = 9)]
    pub rooms: u32,
    /// Guests in all rooms together, 1 to 36, no more than the rooms sleep.
    #[schema(minimum = 1, maximum = 36)]
    pub guests: u32,
    /// The offer search returned for this choice: the quote then charges the price it showed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_id: Option<String>,
}

/// One itinerary in one direction: its legs in order, in one cabin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlightItem {
    /// One leg, or two for a connection.
    pub departure_ids: Vec<String>,
    pub cabin: Cabin,
    /// The fare class of each leg, in the order of `departure_ids`.
    pub fare_codes: Vec<String>,
    pub passengers: Passengers,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_id: Option<String>,
}

/// What the items cost together, and what booking each of them takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Quotation {
    /// ISO 4217 currency of every amount except `breakdown` and `original_price`.
    pub currency: String,
    /// The sum of the items' prices.
    pub total_minor: i64,
    /// In the order asked.
    pub items: Vec<QuotedItem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Hotel,
    Flight,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct QuotedItem {
    pub kind: ItemKind,
    /// For people: the hotel, room and nights, or the flights and route.
    pub description: String,
    /// In the quotation's currency.
    pub price_minor: i64,
    /// How the supplier's price is made up, in the supplier's currency (`original_price`'s when converted). Absent
    /// for an offer signed before offers carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Breakdown>,
    /// The price in the supplier's currency, when the quotation converts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_price: Option<Amount>,
    /// Exactly the buckets and quantities a booking of this item must hold.
    pub inventory_lines: Vec<InventoryLine>,
    /// Check-in at the hotel (15:00 local), or the first departure.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub starts_at: OffsetDateTime,
    /// Check-out at the hotel (11:00 local), or the last arrival.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub ends_at: OffsetDateTime,
    /// Who supplies the item: the hotel's chain, or the airline of the first leg.
    pub organization_id: Uuid,
    pub cancellation: Cancellation,
    /// The offer the price comes from, when one was presented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer_id: Option<String>,
}

/// An item's supplier price: `total_minor` is `base_minor` plus every fee.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Breakdown {
    pub currency: String,
    pub base_minor: i64,
    pub fees: Vec<FeeAmount>,
    pub total_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FeeAmount {
    pub code: String,
    pub name: String,
    pub amount_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Amount {
    pub amount_minor: i64,
    pub currency: String,
}

/// One bucket to hold: a room type on one night, a cabin or a fare class on one departure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InventoryLine {
    pub item_id: String,
    pub quantity: i64,
}

/// What cancelling the item returns. Before `free_until`: everything. From then until the item starts: the price
/// less `fee_minor`. Once it has started: nothing. A non-refundable item returns nothing ever: it has no
/// `free_until` and its fee is its whole price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Cancellation {
    pub refundable: bool,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub free_until: Option<OffsetDateTime>,
    /// In the quotation's currency; at most `price_minor`.
    pub fee_minor: i64,
}

impl Breakdown {
    fn new(price: PriceBreakdown, currency: Currency) -> Breakdown {
        Breakdown {
            currency: currency.code().to_owned(),
            base_minor: price.base_minor,
            fees: price
                .fees
                .into_iter()
                .map(|f| FeeAmount {
                    code: f.code,
                    name: f.name,
                    amount_minor: f.amount_minor,
                })
                .collect(),
            total_minor: price.total_minor,
        }
    }
}

/// An item checked against the snapshot, before it is priced.
enum Choice<'s> {
    Hotel(hotel::Stay<'s>),
    Flight(flight::Trip<'s>),
}

/// A price and the terms that come with it: as quoted now, or as an offer showed them.
struct Shown {
    total: Money,
    breakdown: Option<PriceBreakdown>,
    refundable: bool,
    /// Stays: hours of free cancellation before check-in, and one room's price each night (empty when unknown).
    free_cancellation_hours: Option<u32>,
    nightly_minor: Vec<i64>,
}

/// Why an item cannot be sold now, for a person to read.
enum Refusal {
    /// A night closed or short, a fare class full: 409 `unavailable`.
    Unavailable(String),
    /// A fixed fee with no exchange rate into the item's currency, so no correct price: 422 `currency_mismatch`.
    NoRate(String),
}

/// An item priced in its supplier's currency.
struct Draft {
    kind: ItemKind,
    description: String,
    shown: Shown,
    lines: Vec<InventoryLine>,
    starts_at: OffsetDateTime,
    ends_at: OffsetDateTime,
    organization_id: Uuid,
    terms: terms::Terms,
}

impl Choice<'_> {
    fn lines(&self) -> Vec<InventoryLine> {
        match self {
            Choice::Hotel(stay) => stay.lines(),
            Choice::Flight(trip) => trip.lines(),
        }
    }

    /// What an offer showed, if it describes this very choice.
    fn shown(&self, total: Money, details: OfferDetails) -> Option<Shown> {
        match self {
            Choice::Hotel(stay) => stay.shown(total, details),
            Choice::Flight(trip) => trip.shown(total, details),
        }
    }

    /// The item priced now (or at the offer's price); `Err` says why it cannot be sold now.
    fn price(
        &self,
        snapshot: &Snapshot,
        counts: &Counted,
        shown: Option<Shown>,
        options: &crate::Options,
    ) -> Result<Result<Draft, Refusal>, Error> {
        match self {
            Choice::Hotel(stay) => stay.price(snapshot, counts, shown, options),
            Choice::Flight(trip) => trip.price(snapshot, counts, shown, options),
        }
    }
}

impl Catalog {
    /// Prices exactly the items a customer books, names the buckets to hold and the cancellation terms.
    ///
    /// Anyone authenticated may quote: a quotation holds nothing and says no more than search does. Bad fields are
    /// 422 naming `items[i].field`; a bad offer 422 `invalid_offer`, `offer_expired` or `offer_mismatch`; an item
    /// not on sale for its dates or short of rooms or seats 409 `unavailable`; an item whose currency cannot be
    /// converted, or with a fixed fee that cannot be converted into the item's currency, 422 `currency_mismatch`.
    pub async fn quote(&self, actor: &Principal, request: &QuoteRequest) -> Result<Quotation, Error> {
        let snapshot = self.snapshot();
        let now = OffsetDateTime::now_utc();
        let (choices, currency) = choose(&snapshot, request, now)?;
        let shown = self.shown_offers(request, &choices)?;
        let buckets: Vec<String> = choices
            .iter()
            .flat_map(Choice::lines)
            .map(|line| line.item_id)
            .collect();
        let counts = self.availability().get(&buckets).await?;
        let drafts = price_all(&snapshot, &choices, shown, &counts, self.options())?;
        let quotation = quotation(&snapshot, request, drafts, currency)?;
        tracing::debug!(user_id = %actor.user_id, items = quotation.items.len(), "quoted");
        Ok(quotation)
    }

    /// The offers presented with the items, each verified and proven to describe its item.
    fn shown_offers(&self, request: &QuoteRequest, choices: &[Choice<'_>]) -> Result<Vec<Option<Shown>>, Error> {
        let mut shown = Vec::with_capacity(choices.len());
        for (idx, (item, choice)) in request.items.iter().zip(choices).enumerate() {
            let Some(offer_id) = item.offer_id() else {
                shown.push(None);
                continue;
            };
            let field = format!("items[{idx}].offer_id");
            let offer = match self.open_offer(offer_id) {
                Ok(offer) => offer,
                Err(Error::Offer(source)) => return Err(Error::ItemOffer { field, source }),
                Err(other) => return Err(other),
            };
            // The catalog signed it, so a currency it cannot read is its own bug, not the client's.
            let currency = Currency::parse(&offer.total.currency).map_err(|_| Error::Corrupt { what: "offer" })?;
            let total = Money::new(offer.total.amount_minor, currency);
            let described = choice.shown(total, offer.details);
            match described {
                Some(s) => shown.push(Some(s)),
                None => return Err(Error::OfferMismatch { field }),
            }
        }
        Ok(shown)
    }
}

/// Checks every item against the snapshot, collecting every bad field into one 422.
fn choose<'s>(
    snapshot: &'s Snapshot,
    request: &QuoteRequest,
    now: OffsetDateTime,
) -> Result<(Vec<Choice<'s>>, Option<Currency>), Error> {
    if request.items.is_empty() || request.items.len() > MAX_ITEMS {
        // Stop here: a list over the bound is not worth walking.
        return Err(Error::invalid("items", format!("1 to {MAX_ITEMS} items")));
    }
    let mut check = Check::default();
    let currency = request.currency.as_deref().and_then(|code| {
        Currency::parse(code)
            .map_err(|e| check.fail("currency", e.to_string()))
            .ok()
    });
    let mut choices = Vec::with_capacity(request.items.len());
    for (idx, item) in request.items.iter().enumerate() {
        let prefix = format!("items[{idx}].");
        choices.push(match item {
            QuoteItem::Hotel(h) => hotel::choose(snapshot, h, &prefix, now, &mut check).map(Choice::Hotel),
            QuoteItem::Flight(f) => flight::choose(snapshot, f, &prefix, now, &mut check).map(Choice::Flight),
        });
    }
    check.finish()?;
    // Every item that is not chosen has failed a check above; this only guards that promise.
    let choices = choices
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::invalid("items", "not valid"))?;
    Ok((choices, currency))
}

/// Prices every item. Those that cannot be priced for want of an exchange rate make one 422 naming each (nothing a
/// retry mends); else those that cannot be sold now make one 409 naming each.
fn price_all(
    snapshot: &Snapshot,
    choices: &[Choice<'_>],
    shown: Vec<Option<Shown>>,
    counts: &Counted,
    options: &crate::Options,
) -> Result<Vec<Draft>, Error> {
    let mut drafts = Vec::with_capacity(choices.len());
    let mut short = Vec::new();
    let mut unpriced = Vec::new();
    for (idx, (choice, shown)) in choices.iter().zip(shown).enumerate() {
        let field = format!("items[{idx}]");
        match choice.price(snapshot, counts, shown, options)? {
            Ok(draft) => drafts.push(draft),
            Err(Refusal::Unavailable(message)) => short.push(FieldError { field, message }),
            Err(Refusal::NoRate(message)) => unpriced.push(FieldError { field, message }),
        }
    }
    if !unpriced.is_empty() {
        return Err(Error::CurrencyMismatch(unpriced));
    }
    if !short.is_empty() {
        return Err(Error::Unavailable(short));
    }
    Ok(drafts)
}

/// The items in the quotation's currency (the one asked, else the first item's), and their total.
fn quotation(
    snapshot: &Snapshot,
    request: &QuoteRequest,
    drafts: Vec<Draft>,
    currency: Option<Currency>,
) -> Result<Quotation, Error> {
    let Some(currency) = currency.or_else(|| drafts.first().map(|d| d.shown.total.currency)) else {
        return Err(Error::invalid("items", format!("1 to {MAX_ITEMS} items")));
    };
    let mut items = Vec::with_capacity(drafts.len());
    let mut missing = Vec::new();
    let mut total = Money::zero(currency);
    for (idx, (draft, item)) in drafts.into_iter().zip(&request.items).enumerate() {
        let from = draft.shown.total.currency;
        let Some(rate) = fx_rate(snapshot, from, currency) else {
            missing.push(FieldError {
                field: format!("items[{idx}]"),
                message: format!("no exchange rate from {from} to {currency}"),
            });
            continue;
        };
        let beyond = || beyond_range(format!("items[{idx}]"), currency);
        let quoted = draft
            .quoted(currency, rate, item.offer_id())
            .map_err(|error| match error {
                MoneyError::Overflow => beyond(),
                _ => Error::Corrupt { what: "exchange rate" },
            })?;
        total = total
            .checked_add(Money::new(quoted.price_minor, currency))
            .map_err(|_| beyond())?;
        items.push(quoted);
    }
    if !missing.is_empty() {
        return Err(Error::CurrencyMismatch(missing));
    }
    Ok(Quotation {
        currency: currency.code().to_owned(),
        total_minor: total.amount_minor,
        items,
    })
}

/// A price the request makes too large to count in minor units (a large basket at an extreme exchange rate): no
/// payment could carry it, so the client is told which item went over rather than given a 500.
fn beyond_range(field: String, currency: Currency) -> Error {
    Error::Invalid(vec![FieldError {
        field,
        message: format!(
            "the price in {currency} is beyond what can be charged; ask for fewer units or another currency"
        ),
    }])
}

impl Draft {
    /// The item as quoted in `to`, converted at `rate` units of `to` per unit of the supplier's currency.
    fn quoted(
        self,
        to: Currency,
        rate: rust_decimal::Decimal,
        offer_id: Option<&str>,
    ) -> Result<QuotedItem, MoneyError> {
        let original = self.shown.total;
        let converted =
            |amount_minor| convert(Money::new(amount_minor, original.currency), to, rate).map(|m| m.amount_minor);
        let price_minor = converted(original.amount_minor)?;
        // Converted alike, a fee can never exceed the price; the `min` keeps that true whatever the rounding.
        let fee_minor = converted(self.terms.fee_minor)?.min(price_minor);
        Ok(QuotedItem {
            kind: self.kind,
            description: self.description,
            price_minor,
            breakdown: self.shown.breakdown.map(|b| Breakdown::new(b, original.currency)),
            original_price: (original.currency != to).then(|| Amount {
                amount_minor: original.amount_minor,
                currency: original.currency.code().to_owned(),
            }),
            inventory_lines: self.lines,
            starts_at: self.starts_at,
            ends_at: self.ends_at,
            organization_id: self.organization_id,
            cancellation: Cancellation {
                refundable: self.terms.refundable,
                free_until: self.terms.free_until,
                fee_minor,
            },
            offer_id: offer_id.map(str::to_owned),
        })
    }
}
