use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use phoenix_api::{Principal, Role};
use phoenix_db::{Pool, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::Error;
use crate::operation::{Kind, Operation, Outcome};
use crate::payment::{self, AMOUNT_CEILING_MINOR, Failure, NewPayment, Payment, Status, failure};
use crate::provider::resilient::{self, Circuit, Resilient};
use crate::provider::{Authorization, Provider, ProviderError, ProviderPayment, ProviderStatus};
use crate::store::{Change, Completion, InFlight, Store};

/// Payment's settings, with the defaults the platform ships.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Options {
    /// The largest amount one payment may authorize, in minor units.
    pub max_amount_minor: i64,
    /// Timeouts, retries, circuit breaker and concurrency of provider calls.
    pub resilience: resilient::Options,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_amount_minor: 100_000_000,
            resilience: resilient::Options::default(),
        }
    }
}

impl Options {
    /// Checks the settings, naming the one at fault.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=AMOUNT_CEILING_MINOR).contains(&self.max_amount_minor) {
            return Err(format!(
                "payment.max_amount_minor must be between 1 and {AMOUNT_CEILING_MINOR}"
            ));
        }
        self.resilience
            .validate()
            .map_err(|message| format!("payment.resilience.{message}"))
    }
}

/// An authorization as a client asks for it (the body of `POST /api/v1/payments`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    /// Positive, in minor units of `currency`, at most `payment.max_amount_minor`.
    #[schema(minimum = 1)]
    pub amount_minor: i64,
    /// ISO 4217, upper case.
    #[schema(pattern = "^[A-Z]{3}$")]
    pub currency: String,
    /// The token the provider's card form returned. Never a card number: one is refused.
    #[schema(min_length = 1, max_length = 255)]
    pub payment_token: String,
    /// Free text to find the payment by, such as a booking id.
    #[serde(default)]
    #[schema(max_length = 255)]
    pub reference: Option<String>,
}

impl std::fmt::Debug for AuthorizeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizeRequest")
            .field("amount_minor", &self.amount_minor)
            .field("currency", &self.currency)
            .field("payment_token", &"<hidden>")
            .field("reference", &self.reference)
            .finish()
    }
}

/// Payment's application layer. Cheap to clone.
///
/// Every operation is durable first: its row (and, for an authorization, the payment's, `pending`) is written
/// before the provider is called, and the provider's answer is written with its event afterwards. The provider
/// call and that write run in a task of their own, so a client that hangs up mid-call does not stop the money's
/// story from being written down.
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    options: Options,
    provider: Arc<Resilient>,
    /// Names this process in operation claims.
    instance: Uuid,
    /// (principal, idempotency key) of the requests being processed in this process.
    in_flight: Mutex<HashSet<(Uuid, String)>>,
}

/// What an idempotency key found.
enum Start {
    /// Answered before: this again.
    Replay(Box<Result<Payment, Error>>),
    /// Pending and abandoned: ours to finish.
    Resume(Box<Operation>),
    /// Never seen.
    Fresh,
}

impl Service {
    /// Payment over `pool` (migrated with [`crate::migrations`]), calling `provider` through the resilience layer
    /// `options.resilience` describes.
    pub fn new(pool: Pool, options: Options, provider: Arc<dyn Provider>) -> Service {
        let provider = Arc::new(Resilient::new(provider, options.resilience.clone()));
        Service {
            inner: Arc::new(Inner {
                store: Store::new(pool),
                options,
                provider,
                instance: Uuid::now_v7(),
                in_flight: Mutex::new(HashSet::new()),
            }),
        }
    }

    pub fn pool(&self) -> &Pool {
        self.inner.store.pool()
    }

    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// The provider, as every call reaches it (with timeouts, retries and the circuit breaker).
    pub fn provider(&self) -> &Resilient {
        &self.inner.provider
    }

    pub async fn ready(&self) -> bool {
        self.pool().ping().await
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn instance(&self) -> Uuid {
        self.inner.instance
    }

    /// How long a claim on an operation lasts: longer than any provider call can take, so a live request is never
    /// taken over by a retry elsewhere.
    pub(crate) fn claim_until(&self, now: Timestamp) -> Timestamp {
        let budget = self.inner.options.resilience.call_budget();
        now + time::Duration::milliseconds(budget.as_millis() as i64 + 1_000)
    }

    /// A payment as `viewer` may see it: their own, their organization's (agents, partners), or any for support and
    /// admin. Anything else is "not found".
    pub async fn payment(&self, viewer: &Principal, payment_id: Uuid) -> Result<Payment, Error> {
        let payment = self.inner.store.payment(payment_id).await?.ok_or(Error::NotFound)?;
        if !may_see(viewer, &payment) {
            return Err(Error::NotFound);
        }
        Ok(payment)
    }

    /// A payment's history (authorize, capture, refund, void; pending or how each ended), oldest first.
    pub async fn operations(&self, viewer: &Principal, payment_id: Uuid) -> Result<Vec<Operation>, Error> {
        self.payment(viewer, payment_id).await?;
        self.inner.store.operations(payment_id).await
    }

    /// Reserves the amount on the payer's card. The payment is written `pending` before the provider is called.
    /// A retry with the same key gets the first answer (a decline included); the same key with a different request
    /// is refused; while the first is still running, 409.
    pub async fn authorize(
        &self,
        payer: &Principal,
        request: AuthorizeRequest,
        idempotency_key: &str,
    ) -> Result<Payment, Error> {
        let new = NewPayment::parse(
            request.amount_minor,
            &request.currency,
            &request.payment_token,
            request.reference.as_deref(),
            self.inner.options.max_amount_minor,
        )?;
        let key = parse_key(idempotency_key)?;
        let fingerprint = payment::fingerprint(&serde_json::json!([
            "authorize",
            new.amount_minor,
            new.currency,
            new.token,
            new.reference
        ]));
        let claim = self.claim(payer.user_id, key)?;
        // Written first and looked up only when the key is taken: a new key, the rule, costs one statement.
        let (payment, operation) = match self.open(payer, &new, key, fingerprint.clone()).await {
            Ok((payment, operation)) => (Some(payment), operation),
            Err(Error::Db(db)) if db.is_unique_violation() => {
                match self.start(payer.user_id, key, &fingerprint).await? {
                    Start::Replay(answer) => return *answer,
                    Start::Resume(operation) => (None, *operation),
                    // Gone again between the two: the caller may retry.
                    Start::Fresh => return Err(Error::IdempotencyKeyInUse { retry_after_secs: 1 }),
                }
            }
            Err(error) => return Err(error),
        };
        let service = self.clone();
        self.run(claim, async move {
            service.authorize_at_provider(payment, operation, new).await
        })
        .await
    }

    /// Takes `amount_minor` (default: all) of an authorized payment. One capture per payment: the rest is released.
    pub async fn capture(
        &self,
        actor: &Principal,
        payment_id: Uuid,
        amount_minor: Option<i64>,
        idempotency_key: &str,
    ) -> Result<Payment, Error> {
        self.check_amount(amount_minor)?;
        let key = parse_key(idempotency_key)?;
        let fingerprint = payment::fingerprint(&serde_json::json!(["capture", payment_id, amount_minor]));
        let decide = move |payment: &Payment, in_flight: InFlight| {
            if in_flight.capture_or_void {
                return Err(Error::OperationInProgress);
            }
            payment.capture_amount(amount_minor)
        };
        self.settle(actor, payment_id, key, Kind::Capture, (fingerprint, None), decide)
            .await
    }

    /// Returns `amount_minor` (default: all that is left) of captured money to the card.
    pub async fn refund(
        &self,
        actor: &Principal,
        payment_id: Uuid,
        amount_minor: Option<i64>,
        reason: &str,
        idempotency_key: &str,
    ) -> Result<Payment, Error> {
        self.refund_as(actor, payment_id, (amount_minor, false), reason, idempotency_key)
            .await
    }

    /// Returns at most `amount_minor` (default: all that is left) of captured money to the card: what is left when
    /// that is less, and nothing when nothing is (the payment as it is, no error). For a refund decided elsewhere,
    /// such as a booking's cancellation, while someone may have refunded the payment directly since.
    pub async fn refund_at_most(
        &self,
        actor: &Principal,
        payment_id: Uuid,
        amount_minor: Option<i64>,
        reason: &str,
        idempotency_key: &str,
    ) -> Result<Payment, Error> {
        let refunded = self
            .refund_as(actor, payment_id, (amount_minor, true), reason, idempotency_key)
            .await;
        match refunded {
            Err(
                Error::AmountAboveCaptured { available_minor: 0 }
                | Error::NotRefundable {
                    status: Status::Refunded,
                },
            ) => self.payment(actor, payment_id).await,
            refunded => refunded,
        }
    }

    async fn refund_as(
        &self,
        actor: &Principal,
        payment_id: Uuid,
        (amount_minor, at_most): (Option<i64>, bool),
        reason: &str,
        idempotency_key: &str,
    ) -> Result<Payment, Error> {
        self.check_amount(amount_minor)?;
        payment::refuse_card_numbers(&[("reason", reason)])?;
        let reason =
            payment::parse_reason(reason).map_err(|message| Error::Invalid(vec![field_error("reason", message)]))?;
        let key = parse_key(idempotency_key)?;
        // A plain refund keeps the fingerprint it always had: keys stored before `at_most` existed still replay.
        let fingerprint = match at_most {
            false => payment::fingerprint(&serde_json::json!(["refund", payment_id, amount_minor, reason])),
            true => payment::fingerprint(&serde_json::json!(["refund_at_most", payment_id, amount_minor, reason])),
        };
        let decide = move |payment: &Payment, in_flight: InFlight| match amount_minor {
            Some(most) if at_most => payment.refund_at_most(most, in_flight.refunding_minor),
            _ => payment.refund_amount(amount_minor, in_flight.refunding_minor),
        };
        let reason = Some(reason.to_owned());
        self.settle(actor, payment_id, key, Kind::Refund, (fingerprint, reason), decide)
            .await
    }

    /// Cancels an authorization that was never captured, releasing the whole amount.
    pub async fn void(&self, actor: &Principal, payment_id: Uuid, idempotency_key: &str) -> Result<Payment, Error> {
        let key = parse_key(idempotency_key)?;
        let fingerprint = payment::fingerprint(&serde_json::json!(["void", payment_id]));
        let decide = |payment: &Payment, in_flight: InFlight| {
            if in_flight.capture_or_void {
                return Err(Error::OperationInProgress);
            }
            payment.void_amount()
        };
        self.settle(actor, payment_id, key, Kind::Void, (fingerprint, None), decide)
            .await
    }

    fn check_amount(&self, amount_minor: Option<i64>) -> Result<(), Error> {
        match amount_minor.map(|a| payment::parse_amount(a, self.inner.options.max_amount_minor)) {
            Some(Err(message)) => Err(Error::Invalid(vec![field_error("amount_minor", message)])),
            _ => Ok(()),
        }
    }

    /// Capture, refund or void: check the move against the locked payment, write it pending, call the provider.
    /// Written first and looked up only when that fails: a new key, the rule, costs no look-up; a key used before
    /// either conflicts or is refused by the rules (a replay of a capture finds the payment captured) and is then
    /// answered as its first request was.
    async fn settle(
        &self,
        actor: &Principal,
        payment_id: Uuid,
        key: &str,
        kind: Kind,
        (fingerprint, reason): (Vec<u8>, Option<String>),
        decide: impl FnOnce(&Payment, InFlight) -> Result<i64, Error>,
    ) -> Result<Payment, Error> {
        let claim = self.claim(actor.user_id, key)?;
        let now = Timestamp::now();
        let new = |amount_minor| {
            let mut operation = self.pending(kind, payment_id, actor.user_id, key, fingerprint.clone(), now);
            operation.amount_minor = amount_minor;
            operation.reason = reason;
            operation
        };
        let begun = self
            .inner
            .store
            .begin_move(payment_id, now, |payment, in_flight| {
                if !may_see(actor, payment) {
                    return Err(Error::NotFound);
                }
                decide(payment, in_flight).map(new)
            })
            .await;
        let (payment, operation) = match begun {
            Ok((payment, operation)) => (Some(payment), operation),
            Err(error) => match self.start(actor.user_id, key, &fingerprint).await? {
                Start::Replay(answer) => return *answer,
                Start::Resume(operation) => (None, *operation),
                // The key is new: the refusal stands. (A conflict on a key gone again: the caller may retry.)
                Start::Fresh => match error {
                    Error::Db(db) if db.is_unique_violation() => {
                        return Err(Error::IdempotencyKeyInUse { retry_after_secs: 1 });
                    }
                    error => return Err(error),
                },
            },
        };
        let service = self.clone();
        self.run(
            claim,
            async move { service.settle_at_provider(payment, operation).await },
        )
        .await
    }

    /// A new operation, pending and claimed by this process (amount and reason are the caller's to fill in).
    fn pending(
        &self,
        kind: Kind,
        payment_id: Uuid,
        actor_id: Uuid,
        key: &str,
        request_hash: Vec<u8>,
        now: Timestamp,
    ) -> Operation {
        Operation {
            id: Uuid::now_v7(),
            payment_id,
            kind,
            amount_minor: 0,
            reason: None,
            actor_id,
            idempotency_key: key.to_owned(),
            request_hash,
            outcome: Outcome::Pending,
            code: None,
            answer: None,
            claimed_by: Some(self.inner.instance),
            claimed_until: Some(self.claim_until(now)),
            created_at: now,
            completed_at: None,
        }
    }

    /// Writes a new pending payment and its authorize operation, claimed by this process.
    async fn open(
        &self,
        payer: &Principal,
        new: &NewPayment,
        key: &str,
        fingerprint: Vec<u8>,
    ) -> Result<(Payment, Operation), Error> {
        let now = Timestamp::now();
        let payment = Payment {
            id: Uuid::now_v7(),
            owner_id: payer.user_id,
            organization_id: payer.organization_id,
            amount_minor: new.amount_minor,
            currency: new.currency.clone(),
            status: Status::Pending,
            captured_minor: 0,
            refunded_minor: 0,
            provider: self.inner.provider.name().to_owned(),
            provider_reference: None,
            reference: new.reference.clone(),
            failure_code: None,
            decline_code: None,
            created_at: now,
            updated_at: now,
        };
        let mut operation = self.pending(Kind::Authorize, payment.id, payer.user_id, key, fingerprint, now);
        operation.amount_minor = new.amount_minor;
        self.inner.store.insert_authorization(&payment, &operation).await?;
        Ok((payment, operation))
    }

    /// Looks the key up: a stored answer is replayed, an abandoned pending operation is taken over.
    async fn start(&self, actor_id: Uuid, key: &str, fingerprint: &[u8]) -> Result<Start, Error> {
        let Some(operation) = self.inner.store.operation_by_key(actor_id, key).await? else {
            return Ok(Start::Fresh);
        };
        if operation.request_hash != fingerprint {
            return Err(Error::IdempotencyKeyReused);
        }
        if operation.outcome != Outcome::Pending {
            let answer = operation
                .answer
                .ok_or(Error::Corrupt("a finished operation without its answer"))?;
            return Ok(Start::Replay(Box::new(answer.replay())));
        }
        let now = Timestamp::now();
        let store = &self.inner.store;
        if store
            .take_over(operation.id, self.inner.instance, self.claim_until(now), now)
            .await?
        {
            tracing::info!(payment_id = %operation.payment_id, operation = operation.kind.as_str(),
                "resuming an operation whose first attempt did not finish");
            return Ok(Start::Resume(Box::new(operation)));
        }
        // Finished meanwhile, or another process is working on it.
        match store.operation_by_key(actor_id, key).await? {
            Some(Operation {
                answer: Some(answer), ..
            }) => Ok(Start::Replay(Box::new(answer.replay()))),
            Some(Operation { claimed_until, .. }) => {
                let left = claimed_until.map_or(1, |until| until.unix_secs() - now.unix_secs());
                Err(Error::IdempotencyKeyInUse {
                    retry_after_secs: left.clamp(1, 3_600) as u64,
                })
            }
            None => Err(Error::Corrupt("an operation disappeared")),
        }
    }

    /// Calls the provider for a pending authorization and writes down what it said. `payment` is the payment as
    /// it was written pending, if at hand.
    async fn authorize_at_provider(
        &self,
        payment: Option<Payment>,
        operation: Operation,
        new: NewPayment,
    ) -> Result<Payment, Error> {
        let authorization = Authorization {
            amount_minor: operation.amount_minor,
            currency: new.currency,
            token: new.token,
            reference: operation.payment_id.to_string(),
            idempotency_key: operation.provider_key(),
        };
        let result = self.inner.provider.authorize(&authorization).await;
        let answer = self.finish(payment.as_ref(), &operation, &authorized(&result)).await;
        // Timed out or unavailable: the provider may have authorized it all the same. (An open circuit sent nothing.)
        if let Err(error) = &result
            && error.is_failure()
        {
            tracing::warn!(payment_id = %operation.payment_id, %error,
                "the authorization's outcome is unknown: the payment failed, voiding it should it exist");
            self.undo_authorization(&operation);
        }
        answer
    }

    /// Best effort: the provider may have authorized a payment we just failed, so look for it and void it. Runs on
    /// its own; whatever it cannot do, reconciliation finds later.
    fn undo_authorization(&self, operation: &Operation) {
        let provider = self.inner.provider.clone();
        let reference = operation.payment_id.to_string();
        let key = operation.undo_key();
        tokio::spawn(async move {
            match provider.find(&reference).await {
                Ok(Some(found)) if found.status == ProviderStatus::Authorized => {
                    match provider.void(&found.reference, &key).await {
                        Ok(_) => {
                            tracing::info!(payment_id = %reference, "voided an authorization whose answer was lost")
                        }
                        Err(error) => tracing::warn!(payment_id = %reference, %error,
                            "could not void an authorization whose answer was lost; reconciliation will"),
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(payment_id = %reference, %error,
                    "could not look for an authorization whose answer was lost; reconciliation will"),
            }
        });
    }

    /// Calls the provider for a pending capture, refund or void and writes down what it said. When the provider
    /// fails, the operation stays pending for a retry with the same key (which the provider deduplicates).
    /// `payment` is the payment as the operation was decided on, if at hand (its provider reference never changes
    /// once authorized); otherwise it is read.
    async fn settle_at_provider(&self, payment: Option<Payment>, operation: Operation) -> Result<Payment, Error> {
        let payment = match payment {
            Some(payment) => payment,
            None => self
                .inner
                .store
                .payment(operation.payment_id)
                .await?
                .ok_or(Error::NotFound)?,
        };
        let reference = payment
            .provider_reference
            .clone()
            .ok_or(Error::Corrupt("a payment was moved without being authorized"))?;
        let key = operation.provider_key();
        let provider = &self.inner.provider;
        let (result, change) = match operation.kind {
            Kind::Capture => (
                provider.capture(&reference, operation.amount_minor, &key).await,
                Change::Captured {
                    amount_minor: operation.amount_minor,
                },
            ),
            Kind::Refund => (
                provider.refund(&reference, operation.amount_minor, &key).await,
                Change::Refunded {
                    amount_minor: operation.amount_minor,
                },
            ),
            Kind::Void => (provider.void(&reference, &key).await, Change::Voided),
            Kind::Authorize => return Err(Error::Corrupt("an authorization taken for a settlement")),
        };
        let completion = match result {
            Ok(_) => Completion {
                outcome: Outcome::Succeeded,
                code: None,
                message: None,
                change,
            },
            Err(ProviderError::Declined { code: message, .. } | ProviderError::Rejected(message)) => Completion {
                outcome: Outcome::Rejected,
                code: Some(failure::REJECTED.to_owned()),
                message: Some(message),
                change: Change::Unchanged,
            },
            Err(error) => {
                tracing::warn!(payment_id = %operation.payment_id, operation = operation.kind.as_str(), %error,
                    "provider failed; the operation stays pending for a retry");
                let store = &self.inner.store;
                store
                    .release(operation.id, self.inner.instance, Timestamp::now())
                    .await?;
                return Err(Error::unavailable(self.retry_after_secs()));
            }
        };
        self.finish(Some(&payment), &operation, &completion).await
    }

    /// Writes an operation's end (in one statement when the payment is still as `before`); if another process
    /// finished it first, answers as that one did.
    async fn finish(
        &self,
        before: Option<&Payment>,
        operation: &Operation,
        completion: &Completion,
    ) -> Result<Payment, Error> {
        let store = &self.inner.store;
        if let Some(before) = before
            && let Some(answer) = store.complete_from(before, operation, completion).await?
        {
            return answer.replay();
        }
        if let Some(answer) = store.complete(operation, completion).await? {
            return answer.replay();
        }
        let finished = self
            .inner
            .store
            .operation_by_key(operation.actor_id, &operation.idempotency_key)
            .await?;
        match finished.and_then(|o| o.answer) {
            Some(answer) => answer.replay(),
            None => Err(Error::Corrupt("a finished operation without its answer")),
        }
    }

    /// While the circuit is open, how long until it may close.
    fn retry_after_secs(&self) -> Option<u64> {
        match self.inner.provider.circuit() {
            Circuit::Open { retry_after } => Some(retry_after.as_secs().max(1)),
            Circuit::Closed | Circuit::HalfOpen => None,
        }
    }

    /// Runs an operation's provider call and its write in a task of its own: it finishes even if the caller goes
    /// away. The claim on the key is held until it does.
    async fn run(
        &self,
        claim: Claim,
        work: impl Future<Output = Result<Payment, Error>> + Send + 'static,
    ) -> Result<Payment, Error> {
        let task = phoenix_api::trace::spawn(async move {
            let _claim = claim;
            work.await
        });
        task.await.map_err(|_| Error::Interrupted)?
    }

    /// Marks (principal, key) as being processed in this process until the claim drops.
    fn claim(&self, actor_id: Uuid, key: &str) -> Result<Claim, Error> {
        let entry = (actor_id, key.to_owned());
        let mut in_flight = self.inner.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if !in_flight.insert(entry.clone()) {
            return Err(Error::IdempotencyKeyInUse { retry_after_secs: 1 });
        }
        Ok(Claim {
            inner: self.inner.clone(),
            entry,
        })
    }
}

/// How an authorization ends, by the provider's answer. One that did not come (or was never asked for, the circuit
/// being open) fails the payment: a payment must not stay pending while its customer waits.
fn authorized(result: &Result<ProviderPayment, ProviderError>) -> Completion {
    let failed = |outcome, failure_code: &'static str, decline_code: Option<String>, message| Completion {
        outcome,
        code: Some(decline_code.clone().unwrap_or_else(|| failure_code.to_owned())),
        message,
        change: Change::Failed(Failure {
            failure_code,
            decline_code,
        }),
    };
    match result {
        Ok(answer) => Completion {
            outcome: Outcome::Succeeded,
            code: None,
            message: None,
            change: Change::Authorized {
                provider_reference: answer.reference.clone(),
            },
        },
        Err(ProviderError::Declined { code, .. }) => {
            failed(Outcome::Declined, failure::DECLINED, Some(code.clone()), None)
        }
        Err(ProviderError::Rejected(message)) => {
            failed(Outcome::Rejected, failure::REJECTED, None, Some(message.clone()))
        }
        Err(_) => failed(Outcome::Failed, failure::UNAVAILABLE, None, None),
    }
}

/// A request in flight in this process, under its idempotency key.
struct Claim {
    inner: Arc<Inner>,
    entry: (Uuid, String),
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.inner
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.entry);
    }
}

/// Whether `viewer` may see (and so act on) `payment`: any for support and admin; an organization's for its agents
/// and partners, and for its payer while still a member (a customer who belongs to an organization pays for their
/// own bookings as themselves); one of no organization for its payer. A payer moved to another organization no
/// longer sees what they paid for the first.
fn may_see(viewer: &Principal, payment: &Payment) -> bool {
    viewer.sees_everything()
        || match payment.organization_id {
            Some(organization_id) => {
                viewer.organization_id == Some(organization_id)
                    && (viewer.user_id == payment.owner_id || viewer.has_any(&[Role::Agent, Role::Partner]))
            }
            None => viewer.user_id == payment.owner_id,
        }
}

/// An idempotency key as the `Idempotency-Key` header allows it: 1 to 255 printable ASCII characters.
fn parse_key(key: &str) -> Result<&str, Error> {
    if (1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(key)
    } else {
        Err(Error::InvalidIdempotencyKey)
    }
}

fn field_error(field: &str, message: impl Into<String>) -> phoenix_api::FieldError {
    phoenix_api::FieldError {
        field: field.to_owned(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_fill_in_defaults_and_name_the_setting_at_fault() {
        let options: Options =
            serde_json::from_value(serde_json::json!({"resilience": {"breaker": {"open_secs": 1}}})).unwrap();
        assert_eq!(options.max_amount_minor, 100_000_000);
        assert_eq!(options.resilience.timeout_ms, 5_000);
        assert_eq!(options.resilience.breaker.open_secs, 1);
        assert!(options.validate().is_ok());
        let unknown = serde_json::from_value::<Options>(serde_json::json!({"max_amount": 5}));
        assert!(unknown.is_err(), "a misspelt setting is refused, not ignored");
        let mut bad = Options::default();
        bad.resilience.breaker.failure_percent = 0;
        assert_eq!(
            bad.validate().unwrap_err(),
            "payment.resilience.breaker.failure_percent must be between 1 and 100"
        );
    }

    #[test]
    fn idempotency_keys_are_what_the_header_allows() {
        assert!(parse_key("saga-0190f8a2").is_ok());
        for bad in ["", "two words", "é", &"k".repeat(256)] {
            assert!(matches!(parse_key(bad), Err(Error::InvalidIdempotencyKey)), "{bad:?}");
        }
    }

    #[test]
    fn an_authorization_request_never_shows_its_token() {
        let request = AuthorizeRequest {
            amount_minor: 1,
            currency: "EUR".to_owned(),
            payment_token: "tok_secret".to_owned(),
            reference: None,
        };
        assert!(!format!("{request:?}").contains("tok_secret"));
    }
}
