//! Reconciliation: our books against the provider's.
//!
//! Every payment is compared, page by page (several payments of a page at once), with what the provider says: by its provider reference when it has one,
//! else (a pending or failed authorization, whose answer may have been lost) by our own reference through
//! [`Provider::find`]. Differences are reported. With `repair`, ours is brought in line where the provider's books are
//! the truth (captured and refunded amounts, a void; an authorization whose answer was lost), an authorization the
//! provider holds for a payment we hold as failed or voided is voided, and a pending authorization that never reached
//! the provider is failed. Nothing is ever captured or refunded by reconciliation.
//!
//! Then the provider's books are read the other way, page by page ([`Provider::list`]): a payment there that carries
//! one of our references, still holds money (authorized, or captured and not all refunded) and has no row here (a
//! database restored from a backup older than it, say) is reported, and with `repair` voided if it is an
//! uncaptured authorization. A payment row is always written before its
//! authorization is sent, so a payment being authorized while this runs is never one of these.

use futures::StreamExt;
use phoenix_db::Timestamp;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::operation::{Kind, Outcome};
use crate::payment::{Failure, Payment, Status, failure};
use crate::provider::{Listed, Provider, ProviderError, ProviderPayment, ProviderStatus};
use crate::store::{Change, Completion, Repair};
use crate::{Error, Service};

/// Payments read per page.
pub const PAGE_SIZE: i64 = 200;
/// Most payments one run compares; a larger book is reported as truncated.
pub const MAX_PAYMENTS: u64 = 1_000_000;
/// Most differences one report lists (all are counted).
pub const MAX_DIFFERENCES: usize = 1_000;

/// What a run found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Payments compared with the provider.
    pub checked: u64,
    /// Payments that could not be compared: the provider did not answer (or its circuit was open).
    pub unchecked: u64,
    /// Payments skipped because a request is working on them right now.
    pub in_progress: u64,
    /// Differences found, repaired or not.
    pub differences_found: u64,
    /// The first [`MAX_DIFFERENCES`] of them.
    pub differences: Vec<Difference>,
    pub repaired: u64,
    /// The run stopped at [`MAX_PAYMENTS`] before the end of the book (ours, or the provider's).
    pub truncated: bool,
    /// Payments carrying our references the provider listed.
    pub listed: u64,
    /// The provider's books could not be read to the end (it did not answer, or its circuit was open): payments
    /// it holds that we have no record of may have gone unfound.
    pub listing_incomplete: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    pub payment_id: Uuid,
    pub kind: DifferenceKind,
    /// Our record; absent when we have none ([`DifferenceKind::Unrecorded`]).
    pub ours: Option<Snapshot>,
    /// The provider's view, when it has the payment.
    pub theirs: Option<ProviderPayment>,
    /// Whether this run brought the two in line.
    pub repaired: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    /// Status, amounts or currency differ.
    Mismatch,
    /// The provider holds money for a payment we hold as pending, failed or voided.
    UnknownAuthorization,
    /// We hold a provider reference the provider does not know.
    MissingAtProvider,
    /// A pending authorization nobody is working on, which never reached the provider.
    Stuck,
    /// The provider holds a payment carrying our reference that we have no record of.
    Unrecorded,
}

/// Our side of a difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub status: Status,
    pub currency: String,
    pub amount_minor: i64,
    pub captured_minor: i64,
    pub refunded_minor: i64,
    pub provider_reference: Option<String>,
}

impl From<&Payment> for Snapshot {
    fn from(payment: &Payment) -> Snapshot {
        Snapshot {
            status: payment.status,
            currency: payment.currency.clone(),
            amount_minor: payment.amount_minor,
            captured_minor: payment.captured_minor,
            refunded_minor: payment.refunded_minor,
            provider_reference: payment.provider_reference.clone(),
        }
    }
}

/// What comparing one payment found.
enum Found {
    Same,
    InProgress,
    Unreachable,
    Differs(DifferenceKind, Option<ProviderPayment>),
}

/// Compares every payment (up to [`MAX_PAYMENTS`]) with the provider; with `repair`, fixes what it can.
pub async fn reconcile(service: &Service, repair: bool) -> Result<Report, Error> {
    let mut report = Report::default();
    let mut after = None;
    loop {
        let page = service.store().page(after, PAGE_SIZE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        // Up to the run's bound; a page that crosses it ends the run, before the second pass.
        let compared = report.checked + report.unchecked + report.in_progress;
        let budget = usize::try_from(MAX_PAYMENTS - compared).unwrap_or(usize::MAX);
        let taken = &page[..page.len().min(budget)];
        let found: Vec<Result<Found, Error>> = futures::stream::iter(taken)
            .map(|payment| compare(service, payment))
            .buffered(comparing(service))
            .collect()
            .await;
        for (payment, found) in taken.iter().zip(found) {
            match found? {
                Found::Same => report.checked += 1,
                Found::InProgress => report.in_progress += 1,
                Found::Unreachable => report.unchecked += 1,
                Found::Differs(kind, theirs) => {
                    report.checked += 1;
                    report.differences_found += 1;
                    let repaired = repair && fix(service, payment, kind, theirs.as_ref()).await?;
                    report.repaired += u64::from(repaired);
                    if report.differences.len() < MAX_DIFFERENCES {
                        report.differences.push(Difference {
                            payment_id: payment.id,
                            kind,
                            ours: Some(Snapshot::from(payment)),
                            theirs,
                            repaired,
                        });
                    }
                }
            }
        }
        if taken.len() < page.len() {
            report.truncated = true;
            return Ok(report);
        }
        if (page.len() as i64) < PAGE_SIZE {
            break;
        }
    }
    find_unrecorded(service, repair, &mut report).await?;
    Ok(report)
}

/// Payments the first pass compares at once: half the provider's call slots (at least one), so the bookings and
/// payments being made meanwhile keep the other half.
fn comparing(service: &Service) -> usize {
    (service.provider().options().max_concurrent / 2).max(1)
}

/// The second pass: the provider's payments that carry one of our references and have no row here, looked up a
/// provider page at a time (one read per page, not one per payment).
async fn find_unrecorded(service: &Service, repair: bool, report: &mut Report) -> Result<(), Error> {
    let mut after: Option<String> = None;
    loop {
        let page = match service.provider().list(after.as_deref()).await {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(%error, "reconciliation could not list the provider's payments");
                report.listing_incomplete = true;
                return Ok(());
            }
        };
        // Up to the run's bound; the rest of a page that crosses it is left, as the pages after it are.
        let budget = usize::try_from(MAX_PAYMENTS - report.listed).unwrap_or(usize::MAX);
        let taken = &page.payments[..page.payments.len().min(budget)];
        report.listed += taken.len() as u64;
        let candidates: Vec<(Uuid, &Listed)> = taken
            .iter()
            .filter_map(|listed| holding_money_for_us(listed).map(|id| (id, listed)))
            .collect();
        let ids: Vec<Uuid> = candidates.iter().map(|(id, _)| *id).collect();
        let recorded = service.store().existing(&ids).await?;
        for (payment_id, listed) in candidates {
            if recorded.contains(&payment_id) {
                continue;
            }
            report.differences_found += 1;
            let repaired = repair && void_unrecorded(service, payment_id, listed).await;
            report.repaired += u64::from(repaired);
            if report.differences.len() < MAX_DIFFERENCES {
                report.differences.push(Difference {
                    payment_id,
                    kind: DifferenceKind::Unrecorded,
                    ours: None,
                    theirs: Some(listed.payment.clone()),
                    repaired,
                });
            }
        }
        if taken.len() < page.payments.len() {
            report.truncated = true;
            return Ok(());
        }
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}

/// Our payment id, when a listed payment carries one of our references and still holds money. Another system's
/// reference on a shared provider account is not ours to judge, and a payment that holds no money any more (voided,
/// or refunded in full) asks nothing of anyone.
fn holding_money_for_us(listed: &Listed) -> Option<Uuid> {
    let payment_id = Uuid::try_parse(&listed.our_reference).ok()?;
    let theirs = &listed.payment;
    let holds_money = match theirs.status {
        ProviderStatus::Authorized => true,
        ProviderStatus::Captured => theirs.refunded_minor < theirs.captured_minor,
        ProviderStatus::Voided => false,
    };
    holds_money.then_some(payment_id)
}

/// Voids an unrecorded payment's uncaptured authorization; true if the money is released. Money already captured is
/// left for a person: reconciliation never refunds.
async fn void_unrecorded(service: &Service, payment_id: Uuid, listed: &Listed) -> bool {
    match listed.payment.status {
        ProviderStatus::Voided | ProviderStatus::Captured => false,
        ProviderStatus::Authorized => {
            let key = format!("phoenix-reconcile-{payment_id}-void");
            match service.provider().void(&listed.payment.reference, &key).await {
                Ok(_) => true,
                Err(error) => {
                    tracing::warn!(%payment_id, %error, "reconciliation could not void an unrecorded authorization");
                    false
                }
            }
        }
    }
}

async fn compare(service: &Service, payment: &Payment) -> Result<Found, Error> {
    let provider = service.provider();
    if let Some(reference) = &payment.provider_reference {
        return Ok(match provider.fetch(reference).await {
            Ok(theirs) => match differs(payment, &theirs) {
                Some(kind) => Found::Differs(kind, Some(theirs)),
                None => Found::Same,
            },
            Err(ProviderError::Rejected(_)) => Found::Differs(DifferenceKind::MissingAtProvider, None),
            Err(_) => Found::Unreachable,
        });
    }
    if !matches!(payment.status, Status::Pending | Status::Failed) {
        // Only an authorization gives a payment its reference: this row was written wrong.
        return Err(Error::Corrupt(
            "a payment past authorization without a provider reference",
        ));
    }
    if payment.status == Status::Pending && !stale(service, payment.id).await? {
        return Ok(Found::InProgress);
    }
    Ok(match provider.find(&payment.id.to_string()).await {
        Ok(Some(theirs)) if theirs.status != ProviderStatus::Voided => {
            Found::Differs(DifferenceKind::UnknownAuthorization, Some(theirs))
        }
        Ok(None) if payment.status == Status::Pending => Found::Differs(DifferenceKind::Stuck, None),
        Ok(_) => Found::Same,
        Err(_) => Found::Unreachable,
    })
}

/// Whether a pending payment's authorization is abandoned (its claim lapsed), rather than being worked on.
async fn stale(service: &Service, payment_id: Uuid) -> Result<bool, Error> {
    let stale = service.store().stale_operations(payment_id, Timestamp::now()).await?;
    Ok(stale.iter().any(|o| o.kind == Kind::Authorize))
}

/// How our payment differs from the provider's, if it does.
fn differs(ours: &Payment, theirs: &ProviderPayment) -> Option<DifferenceKind> {
    let expected = match ours.status {
        Status::Authorized => Some(ProviderStatus::Authorized),
        Status::Captured | Status::PartiallyRefunded | Status::Refunded => Some(ProviderStatus::Captured),
        Status::Voided => Some(ProviderStatus::Voided),
        Status::Pending | Status::Failed => None,
    };
    let holds_money = theirs.status != ProviderStatus::Voided;
    if expected.is_none() || (ours.status == Status::Voided && holds_money) {
        return holds_money.then_some(DifferenceKind::UnknownAuthorization);
    }
    let same = expected == Some(theirs.status)
        && ours.currency == theirs.currency
        && ours.amount_minor == theirs.authorized_minor
        && ours.captured_minor == theirs.captured_minor
        && ours.refunded_minor == theirs.refunded_minor;
    (!same).then_some(DifferenceKind::Mismatch)
}

/// Repairs one difference; false when it cannot be repaired automatically (or the payment moved on meanwhile).
async fn fix(
    service: &Service,
    payment: &Payment,
    kind: DifferenceKind,
    theirs: Option<&ProviderPayment>,
) -> Result<bool, Error> {
    match (kind, theirs) {
        (DifferenceKind::Mismatch, Some(theirs)) => adopt(service, payment, theirs).await,
        (DifferenceKind::UnknownAuthorization, Some(theirs)) if payment.status == Status::Pending => {
            let change = Change::Authorized {
                provider_reference: theirs.reference.clone(),
            };
            finish_pending(service, payment, Outcome::Succeeded, change).await
        }
        (DifferenceKind::UnknownAuthorization, Some(theirs)) if theirs.status == ProviderStatus::Authorized => {
            let key = format!("phoenix-reconcile-{}-void", payment.id);
            match service.provider().void(&theirs.reference, &key).await {
                Ok(_) => Ok(true),
                Err(error) => {
                    tracing::warn!(payment_id = %payment.id, %error, "reconciliation could not void an authorization");
                    Ok(false)
                }
            }
        }
        (DifferenceKind::Stuck, _) => {
            let change = Change::Failed(Failure {
                failure_code: failure::UNAVAILABLE,
                decline_code: None,
            });
            finish_pending(service, payment, Outcome::Failed, change).await
        }
        // Money taken for a payment we hold as failed, a reference the provider lost: for a person to look at.
        _ => Ok(false),
    }
}

/// Takes the provider's captured and refunded amounts (or its void) where the provider's books are ahead of ours.
async fn adopt(service: &Service, payment: &Payment, theirs: &ProviderPayment) -> Result<bool, Error> {
    if theirs.currency != payment.currency || theirs.authorized_minor != payment.amount_minor {
        return Ok(false);
    }
    let (repair, change) = match theirs.status {
        ProviderStatus::Captured
            if theirs.captured_minor >= payment.captured_minor && theirs.refunded_minor >= payment.refunded_minor =>
        {
            let change = if theirs.captured_minor != payment.captured_minor {
                Change::Captured {
                    amount_minor: theirs.captured_minor - payment.captured_minor,
                }
            } else {
                Change::Refunded {
                    amount_minor: theirs.refunded_minor - payment.refunded_minor,
                }
            };
            let repair = Repair {
                status: Status::after_refunds(theirs.captured_minor, theirs.refunded_minor),
                captured_minor: theirs.captured_minor,
                refunded_minor: theirs.refunded_minor,
                provider_reference: None,
            };
            (repair, change)
        }
        ProviderStatus::Voided if payment.status == Status::Authorized => {
            let repair = Repair {
                status: Status::Voided,
                captured_minor: 0,
                refunded_minor: 0,
                provider_reference: None,
            };
            (repair, Change::Voided)
        }
        // Ours is ahead of the provider's: nothing to take from it.
        _ => return Ok(false),
    };
    service.store().repair(payment, &repair, &change).await
}

/// Finishes an abandoned pending authorization the way the provider's books say it went.
async fn finish_pending(service: &Service, payment: &Payment, outcome: Outcome, change: Change) -> Result<bool, Error> {
    let now = Timestamp::now();
    let store = service.store();
    let stale = store.stale_operations(payment.id, now).await?;
    let Some(operation) = stale.into_iter().find(|o| o.kind == Kind::Authorize) else {
        return Ok(false);
    };
    if !store
        .take_over(operation.id, service.instance(), service.claim_until(now), now)
        .await?
    {
        return Ok(false);
    }
    let completion = Completion {
        outcome,
        code: (outcome == Outcome::Failed).then(|| failure::UNAVAILABLE.to_owned()),
        message: None,
        change,
    };
    Ok(store.complete(&operation, &completion).await?.is_some())
}
