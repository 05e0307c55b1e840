//! The load: closed-loop clients posting bookings over loopback, and the tally of their answers.

use super::world::*;
use super::*;

/// xorshift64*: plenty for picking what to book.
pub(super) struct Random(u64);

impl Random {
    pub(super) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    }
}

/// What the clients saw.
pub(super) struct Tally {
    /// Latency of the 201s, in microseconds.
    pub(super) confirmed: Histogram<u64>,
    /// Latency of the rejections (402, 409), in microseconds.
    pub(super) rejected: Histogram<u64>,
    /// Id and total of every booking answered 201.
    pub(super) bookings: Vec<(Uuid, i64)>,
    /// Answered 202: still with the saga when the booking's wait ended.
    pub(super) pending: u64,
    /// Rejections by problem code.
    pub(super) rejections: BTreeMap<String, u64>,
    pub(super) errors: u64,
    /// Errors by what they said (the first `MAX_ERROR_KINDS` kinds).
    pub(super) error_kinds: BTreeMap<String, u64>,
    /// When the last 201 arrived, from the start.
    pub(super) last_confirmed: Duration,
}

impl Tally {
    pub(super) fn new() -> anyhow::Result<Tally> {
        Ok(Tally {
            confirmed: Histogram::new_with_bounds(1, 600_000_000, 3)?,
            rejected: Histogram::new_with_bounds(1, 600_000_000, 3)?,
            bookings: Vec::new(),
            pending: 0,
            rejections: BTreeMap::new(),
            errors: 0,
            error_kinds: BTreeMap::new(),
            last_confirmed: Duration::ZERO,
        })
    }

    pub(super) fn merge(&mut self, other: Tally) -> anyhow::Result<()> {
        self.confirmed.add(other.confirmed)?;
        self.rejected.add(other.rejected)?;
        self.bookings.extend(other.bookings);
        self.pending += other.pending;
        for (code, n) in other.rejections {
            *self.rejections.entry(code).or_default() += n;
        }
        self.errors += other.errors;
        for (kind, n) in other.error_kinds {
            self.error(kind, n);
        }
        self.last_confirmed = self.last_confirmed.max(other.last_confirmed);
        Ok(())
    }

    pub(super) fn error(&mut self, kind: String, n: u64) {
        if self.error_kinds.len() < MAX_ERROR_KINDS || self.error_kinds.contains_key(&kind) {
            *self.error_kinds.entry(kind).or_default() += n;
        }
    }

    pub(super) fn n_rejected(&self) -> u64 {
        self.rejections.values().sum()
    }
}

/// How the platform answered one booking request.
pub(super) enum Answer {
    Confirmed { id: Uuid, total_minor: i64 },
    Pending,
    Rejected(String),
    Error(String),
}

#[derive(Deserialize)]
pub(super) struct Created {
    pub(super) id: Uuid,
    pub(super) status: String,
    pub(super) total_minor: i64,
}

#[derive(Deserialize)]
pub(super) struct ProblemCode {
    pub(super) code: String,
}

pub(super) fn answer(status: StatusCode, body: &[u8]) -> Answer {
    match status {
        StatusCode::CREATED => match serde_json::from_slice::<Created>(body) {
            Ok(created) if created.status == "confirmed" => Answer::Confirmed {
                id: created.id,
                total_minor: created.total_minor,
            },
            Ok(created) => Answer::Error(format!("201 with status {}", created.status)),
            Err(_) => Answer::Error("201 without a booking".to_owned()),
        },
        StatusCode::ACCEPTED => Answer::Pending,
        StatusCode::PAYMENT_REQUIRED | StatusCode::CONFLICT => {
            match serde_json::from_slice::<ProblemCode>(body).map(|p| p.code) {
                Ok(code) if code != "idempotency_key_in_use" => Answer::Rejected(format!("{} {code}", status.as_u16())),
                Ok(code) => Answer::Error(format!("{} {code}", status.as_u16())),
                Err(_) => Answer::Error(format!("{} without a problem", status.as_u16())),
            }
        }
        status => {
            let code = serde_json::from_slice::<ProblemCode>(body)
                .map(|p| p.code)
                .unwrap_or_default();
            Answer::Error(format!("{} {code}", status.as_u16()))
        }
    }
}

/// One client per token, each sending its next booking as soon as the last is answered, for `duration`.
pub(super) async fn drive(
    base: &str,
    world: &Arc<World>,
    tokens: Vec<String>,
    duration: Duration,
) -> anyhow::Result<Tally> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(tokens.len())
        .build(connector);
    let uri: hyper::Uri = format!("{base}/api/v1/bookings").parse().context("bookings URL")?;
    let started = Instant::now();
    let until = started + duration;
    let mut tasks = Vec::with_capacity(tokens.len());
    for (index, token) in tokens.into_iter().enumerate() {
        let client = BookingClient {
            http: client.clone(),
            uri: uri.clone(),
            authorization: hyper::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .context("access token as a header")?,
            world: world.clone(),
            index,
        };
        tasks.push(tokio::spawn(client.run(started, until)));
    }
    let mut tally = Tally::new()?;
    for task in tasks {
        tally.merge(task.await.context("booking client")??)?;
    }
    Ok(tally)
}

/// One closed-loop client: one customer, one request at a time.
pub(super) struct BookingClient {
    pub(super) http: Client<HttpConnector, Full<Bytes>>,
    pub(super) uri: hyper::Uri,
    pub(super) authorization: hyper::header::HeaderValue,
    pub(super) world: Arc<World>,
    pub(super) index: usize,
}

impl BookingClient {
    pub(super) async fn run(self, started: Instant, until: Instant) -> anyhow::Result<Tally> {
        let mut tally = Tally::new()?;
        let mut random = Random((self.index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        loop {
            // Built before the clock starts: the generator's own work is not the platform's latency.
            let body = self.world.body(self.index, &mut random);
            let request = Request::post(self.uri.clone())
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .header(hyper::header::AUTHORIZATION, self.authorization.clone())
                .header("idempotency-key", Uuid::new_v4().to_string())
                .body(Full::new(body))
                .context("booking request")?;
            let sent = Instant::now();
            if sent >= until {
                break;
            }
            let answered = match self.http.request(request).await {
                Ok(response) => {
                    let status = response.status();
                    match response.into_body().collect().await {
                        Ok(body) => answer(status, &body.to_bytes()),
                        Err(error) => Answer::Error(format!("reading the answer: {error}")),
                    }
                }
                Err(error) => Answer::Error(format!("sending: {error}")),
            };
            let micros = sent.elapsed().as_micros().max(1) as u64;
            match answered {
                Answer::Confirmed { id, total_minor } => {
                    tally.confirmed.record(micros)?;
                    tally.bookings.push((id, total_minor));
                    tally.last_confirmed = started.elapsed();
                }
                Answer::Pending => tally.pending += 1,
                Answer::Rejected(code) => {
                    tally.rejected.record(micros)?;
                    *tally.rejections.entry(code).or_default() += 1;
                }
                Answer::Error(kind) => {
                    tally.errors += 1;
                    tally.error(kind, 1);
                }
            }
        }
        Ok(tally)
    }
}
