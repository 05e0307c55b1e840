//! The audit service's HTTP API: the audit log and the analytics reports, for support and admins. Reports answer
//! JSON, or CSV when asked (`Accept: text/csv` or `?format=csv`).

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use phoenix_api::{Json, Problem, Query, RequireRoles, Role, page_limit};
use phoenix_db::Timestamp;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::analytics::{Days, LoadRow, parse_day};
use crate::audit::Filter;
use crate::{Entry, Error, Service};

type Result<T> = std::result::Result<T, Problem>;

const TAG: &str = "audit";

/// The path prefixes the audit service answers, for the gateway's routing table when it runs elsewhere.
pub const PATH_PREFIXES: &[&str] = &["/api/v1/audit", "/api/v1/analytics"];

/// Support and admin only: the log names every actor, and the reports are the platform's numbers. Dead letters
/// hold whole events, personal data unmasked: admins only.
pub fn api() -> OpenApiRouter<Service> {
    let support = OpenApiRouter::new()
        .routes(routes!(list_entries))
        .routes(routes!(bookings))
        .routes(routes!(cancellations))
        .routes(routes!(conversion))
        .routes(routes!(load_factor))
        .routes(routes!(occupancy))
        .route_layer(RequireRoles::any_of(&[Role::Support, Role::Admin]));
    let admins = OpenApiRouter::new()
        .routes(routes!(dead_letters))
        .route_layer(RequireRoles::any_of(&[Role::Admin]));
    support.merge(admins)
}

/// Events the `audit` or `analytics` consumer gave up on after its retries, oldest first. Replay them, once the
/// cause is fixed, with `phoenix events dead-letters replay --consumer NAME`.
#[utoipa::path(get, path = "/api/v1/audit/dead-letters", tag = TAG, security(("bearer" = [])),
    params(phoenix_events::admin::DeadLetterQuery),
    responses((status = 200, body = phoenix_events::admin::DeadLetterList), (status = 403, body = Problem),
        (status = 422, body = Problem)))]
async fn dead_letters(
    State(service): State<Service>,
    Query(query): Query<phoenix_events::admin::DeadLetterQuery>,
) -> Result<Json<phoenix_events::admin::DeadLetterList>> {
    let consumers = [crate::audit::NAME, crate::analytics::NAME];
    Ok(Json(
        phoenix_events::admin::list(service.pool(), &consumers, query).await?,
    ))
}

/// One audit entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EntryView {
    pub position: i64,
    pub event_id: Uuid,
    pub actor: String,
    /// The event type.
    pub action: String,
    pub subject: String,
    pub source: String,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    pub correlation_id: Option<String>,
    /// The event's data with personal data masked.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl TryFrom<Entry> for EntryView {
    type Error = Error;

    fn try_from(entry: Entry) -> std::result::Result<EntryView, Error> {
        let payload = serde_json::from_str(&entry.payload).map_err(|_| Error::Corrupt { what: "payload" })?;
        Ok(EntryView {
            position: entry.position,
            event_id: entry.event_id,
            actor: entry.actor,
            action: entry.action,
            subject: entry.subject,
            source: entry.source,
            occurred_at: entry.occurred_at.datetime(),
            recorded_at: entry.recorded_at.datetime(),
            correlation_id: entry.correlation_id,
            payload,
            prev_hash: entry.prev_hash,
            hash: entry.hash,
        })
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Who acted (a user id, or a service such as `phoenix.catalog`).
    actor: Option<String>,
    /// The event type, `booking.confirmed.v1`.
    action: Option<String>,
    /// The object, such as a booking id.
    subject: Option<String>,
    /// Occurred at or after (RFC 3339).
    from: Option<String>,
    /// Occurred before (RFC 3339).
    to: Option<String>,
    /// Entries per page, 1 to `audit.max_page` (500 unless configured; default 50).
    #[param(minimum = 1)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EntryPage {
    pub items: Vec<EntryView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Audit entries, newest first, filtered by actor, action, subject and time.
#[utoipa::path(get, path = "/api/v1/audit", tag = TAG, security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, body = EntryPage), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn list_entries(State(service): State<Service>, Query(query): Query<AuditQuery>) -> Result<Json<EntryPage>> {
    let filter = audit_filter(&query, service.options())?;
    let entries = service.entries(&filter).await?;
    let next_cursor = (entries.len() == filter.limit as usize)
        .then(|| entries.last().map(|e| e.position.to_string()))
        .flatten();
    let items = entries
        .into_iter()
        .map(EntryView::try_from)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Json(EntryPage { items, next_cursor }))
}

fn audit_filter(query: &AuditQuery, options: &crate::Options) -> std::result::Result<Filter, Error> {
    let instant = |field: &'static str, value: &Option<String>| {
        value
            .as_deref()
            .map(|s| {
                OffsetDateTime::parse(s, &Rfc3339)
                    .map(Timestamp::from_datetime)
                    .map_err(|_| Error::invalid(field, "expected an RFC 3339 time such as 2026-12-01T00:00:00Z"))
            })
            .transpose()
    };
    let limit = page_limit(query.limit, options.default_page, options.max_page)
        .map_err(|e| Error::invalid("limit", e.message))?;
    let before = query
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| Error::invalid("cursor", "not a cursor this endpoint gave"))
        })
        .transpose()?;
    let filter = Filter {
        actor: query.actor.clone(),
        action: query.action.clone(),
        subject: query.subject.clone(),
        from: instant("from", &query.from)?,
        to: instant("to", &query.to)?,
        before,
        limit,
    };
    if let (Some(from), Some(to)) = (filter.from, filter.to)
        && from > to
    {
        return Err(Error::invalid("to", "must not be before from"));
    }
    Ok(filter)
}

/// The range of days and the format of a report.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    /// First day (`2026-12-01`, UTC), default 29 days before `to`.
    #[param(format = Date)]
    from: Option<String>,
    /// Last day, included (default today, UTC). At most 366 days after `from`.
    #[param(format = Date)]
    to: Option<String>,
    /// Only this currency (ISO 4217), where the report has currencies.
    currency: Option<String>,
    /// `json` (default) or `csv`; `Accept: text/csv` also asks for CSV.
    #[param(pattern = "^(json|csv)$")]
    format: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
}

fn format_of(asked: Option<&str>, headers: &HeaderMap) -> std::result::Result<Format, Error> {
    match asked {
        Some("csv") => Ok(Format::Csv),
        Some("json") => Ok(Format::Json),
        Some(_) => Err(Error::invalid("format", "expected json or csv")),
        None => {
            let accept = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            Ok(
                if quality(accept, "text", "csv") > quality(accept, "application", "json") {
                    Format::Csv
                } else {
                    Format::Json
                },
            )
        }
    }
}

/// How much an `Accept` header wants `kind/sub` (RFC 9110, 12.5.1): the `q` of the most specific media range that
/// matches it (`kind/sub`, then `kind/*`, then `*/*`; 1 when no `q` is given), 0 when none does. No header at all
/// accepts anything, equally.
fn quality(accept: &str, kind: &str, sub: &str) -> u16 {
    if accept.trim().is_empty() {
        return 1000;
    }
    let mut best: Option<(u8, u16)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let Some((k, s)) = parts.next().and_then(|m| m.trim().split_once('/')) else {
            continue;
        };
        let specificity = match (k.trim(), s.trim()) {
            (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(sub) => 2,
            (k, "*") if k.eq_ignore_ascii_case(kind) => 1,
            ("*", "*") => 0,
            _ => continue,
        };
        let q = parts
            .filter_map(|p| p.trim().split_once('='))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
            .map_or(1000, |(_, value)| thousandths(value.trim()));
        if best.is_none_or(|(seen, _)| specificity > seen) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0, |(_, q)| q)
}

/// A `q` value (`0` to `1` with up to three decimals) in thousandths; anything else counts as 0.
fn thousandths(value: &str) -> u16 {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    let fraction: u16 = format!("{fraction:0<3}").parse().unwrap_or(0);
    match whole {
        "0" => fraction,
        "1" if fraction == 0 => 1000,
        _ => 0,
    }
}

/// The days from `from` to `to`, both included; defaults to the 30 days ending today; at most `max_days` long.
fn days(from: Option<&str>, to: Option<&str>, max_days: u32) -> std::result::Result<Days, Error> {
    let day = |field: &'static str, value: &str| {
        parse_day(value).ok_or_else(|| Error::invalid(field, "expected a date such as 2026-12-01"))
    };
    let to = match to {
        Some(to) => day("to", to)?,
        None => OffsetDateTime::now_utc().date(),
    };
    let from = match from {
        Some(from) => day("from", from)?,
        None => to.saturating_sub(time::Duration::days(29)),
    };
    if from > to {
        return Err(Error::invalid("to", "must not be before from"));
    }
    if (to - from).whole_days() + 1 > i64::from(max_days) {
        return Err(Error::invalid(
            "from",
            format!("the range may cover at most {max_days} days"),
        ));
    }
    Ok(Days { from, to })
}

fn currency(value: Option<&str>) -> std::result::Result<Option<&str>, Error> {
    match value {
        Some(code) if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) => {
            Err(Error::invalid("currency", "expected an ISO 4217 code such as EUR"))
        }
        other => Ok(other),
    }
}

/// A report as JSON, or as CSV with `header` and one line per row.
fn respond<T: Serialize>(format: Format, report: T, header: &[&str], lines: Vec<Vec<String>>) -> Response {
    match format {
        Format::Json => Json(report).into_response(),
        Format::Csv => {
            let mut body = header.join(",");
            body.push_str("\r\n");
            for line in lines {
                let fields: Vec<String> = line.iter().map(|f| csv_field(f)).collect();
                body.push_str(&fields.join(","));
                body.push_str("\r\n");
            }
            let mut response = body.into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            response
        }
    }
}

/// One CSV field (RFC 4180): quoted when it holds a comma, quote or line break, quotes doubled. A text field that
/// a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first) gets a leading `'`.
fn csv_field(field: &str) -> String {
    let is_number = field.parse::<f64>().is_ok();
    let field = if !is_number && field.starts_with(['=', '+', '-', '@']) {
        format!("'{field}")
    } else {
        field.to_owned()
    };
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field
    }
}

fn ratio(value: Option<f64>) -> String {
    value.map(|r| format!("{r:.4}")).unwrap_or_default()
}

/// Confirmed bookings of one day in one currency.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BookingsDay {
    pub day: String,
    pub currency: String,
    pub confirmed: i64,
    pub total_minor: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BookingsReport {
    pub from: String,
    pub to: String,
    pub rows: Vec<BookingsDay>,
}

/// Confirmed bookings and their value per day (UTC, of the confirmation) and currency.
#[utoipa::path(get, path = "/api/v1/analytics/bookings", tag = TAG, security(("bearer" = [])), params(ReportQuery),
    responses((status = 200, description = "JSON, or CSV (a header row, then a row per item) when asked",
        content((BookingsReport = "application/json"), (String = "text/csv"))),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn bookings(
    State(service): State<Service>,
    headers: HeaderMap,
    Query(query): Query<ReportQuery>,
) -> Result<Response> {
    let format = format_of(query.format.as_deref(), &headers)?;
    let days = days(
        query.from.as_deref(),
        query.to.as_deref(),
        service.options().max_range_days,
    )?;
    let rows = service
        .store()
        .bookings(days, currency(query.currency.as_deref())?)
        .await?;
    let lines = rows
        .iter()
        .map(|r| {
            vec![
                r.day.clone(),
                r.currency.clone(),
                r.n_confirmed.to_string(),
                r.total_minor.to_string(),
            ]
        })
        .collect();
    let report = BookingsReport {
        from: crate::analytics::day_text(days.from),
        to: crate::analytics::day_text(days.to),
        rows: rows
            .into_iter()
            .map(|r| BookingsDay {
                day: r.day,
                currency: r.currency,
                confirmed: r.n_confirmed,
                total_minor: r.total_minor,
            })
            .collect(),
    };
    Ok(respond(
        format,
        report,
        &["day", "currency", "confirmed", "total_minor"],
        lines,
    ))
}

/// Cancellations and refunds of one day in one currency.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CancellationsDay {
    pub day: String,
    pub currency: String,
    /// Bookings cancelled (`booking.cancelled.v1`).
    pub cancelled: i64,
    /// What those bookings refunded, by their cancellation terms.
    pub cancelled_refunded_minor: i64,
    /// Refunds paid out (`payment.refunded.v1`), for cancellations or otherwise.
    pub refunds: i64,
    pub refunds_minor: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CancellationsReport {
    pub from: String,
    pub to: String,
    pub rows: Vec<CancellationsDay>,
}

/// Cancelled bookings and refunds per day (UTC) and currency.
#[utoipa::path(get, path = "/api/v1/analytics/cancellations", tag = TAG, security(("bearer" = [])),
    params(ReportQuery),
    responses((status = 200, description = "JSON, or CSV (a header row, then a row per item) when asked",
        content((CancellationsReport = "application/json"), (String = "text/csv"))),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn cancellations(
    State(service): State<Service>,
    headers: HeaderMap,
    Query(query): Query<ReportQuery>,
) -> Result<Response> {
    let format = format_of(query.format.as_deref(), &headers)?;
    let days = days(
        query.from.as_deref(),
        query.to.as_deref(),
        service.options().max_range_days,
    )?;
    let rows = service
        .store()
        .cancellations(days, currency(query.currency.as_deref())?)
        .await?;
    let rows: Vec<CancellationsDay> = rows
        .into_iter()
        .map(|r| CancellationsDay {
            day: r.day,
            currency: r.currency,
            cancelled: r.n_cancelled,
            cancelled_refunded_minor: r.cancelled_refunded_minor,
            refunds: r.n_refunds,
            refunds_minor: r.refunds_minor,
        })
        .collect();
    let lines = rows
        .iter()
        .map(|r| {
            vec![
                r.day.clone(),
                r.currency.clone(),
                r.cancelled.to_string(),
                r.cancelled_refunded_minor.to_string(),
                r.refunds.to_string(),
                r.refunds_minor.to_string(),
            ]
        })
        .collect();
    let header = [
        "day",
        "currency",
        "cancelled",
        "cancelled_refunded_minor",
        "refunds",
        "refunds_minor",
    ];
    let report = CancellationsReport {
        from: crate::analytics::day_text(days.from),
        to: crate::analytics::day_text(days.to),
        rows,
    };
    Ok(respond(format, report, &header, lines))
}

/// Searches and bookings of one day.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConversionDay {
    pub day: String,
    pub hotel_searches: i64,
    pub flight_searches: i64,
    pub searches: i64,
    /// Bookings created (`booking.created.v1`).
    pub created: i64,
    /// Bookings confirmed (`booking.confirmed.v1`).
    pub confirmed: i64,
    /// `created / searches`; absent without searches.
    pub created_per_search: Option<f64>,
    /// `confirmed / searches`; absent without searches.
    pub confirmed_per_search: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConversionReport {
    pub from: String,
    pub to: String,
    pub rows: Vec<ConversionDay>,
}

/// Search-to-booking conversion per day (UTC).
#[utoipa::path(get, path = "/api/v1/analytics/conversion", tag = TAG, security(("bearer" = [])),
    params(ReportQuery),
    responses((status = 200, description = "JSON, or CSV (a header row, then a row per item) when asked",
        content((ConversionReport = "application/json"), (String = "text/csv"))),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn conversion(
    State(service): State<Service>,
    headers: HeaderMap,
    Query(query): Query<ReportQuery>,
) -> Result<Response> {
    let format = format_of(query.format.as_deref(), &headers)?;
    let days = days(
        query.from.as_deref(),
        query.to.as_deref(),
        service.options().max_range_days,
    )?;
    let rows: Vec<ConversionDay> = service
        .store()
        .conversion(days)
        .await?
        .into_iter()
        .map(|r| {
            let searches = r.hotel_searches.saturating_add(r.flight_searches);
            let per_search = |n: i64| (searches > 0).then(|| n as f64 / searches as f64);
            ConversionDay {
                day: r.day,
                hotel_searches: r.hotel_searches,
                flight_searches: r.flight_searches,
                searches,
                created: r.n_created,
                confirmed: r.n_confirmed,
                created_per_search: per_search(r.n_created),
                confirmed_per_search: per_search(r.n_confirmed),
            }
        })
        .collect();
    let lines = rows
        .iter()
        .map(|r| {
            vec![
                r.day.clone(),
                r.hotel_searches.to_string(),
                r.flight_searches.to_string(),
                r.searches.to_string(),
                r.created.to_string(),
                r.confirmed.to_string(),
                ratio(r.created_per_search),
                ratio(r.confirmed_per_search),
            ]
        })
        .collect();
    let header = [
        "day",
        "hotel_searches",
        "flight_searches",
        "searches",
        "created",
        "confirmed",
        "created_per_search",
        "confirmed_per_search",
    ];
    let report = ConversionReport {
        from: crate::analytics::day_text(days.from),
        to: crate::analytics::day_text(days.to),
        rows,
    };
    Ok(respond(format, report, &header, lines))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct LoadQuery {
    /// One departure (`PX10-2026-12-01`); without it, the departures whose date is in `from`..`to`.
    departure_id: Option<String>,
    /// One hotel (occupancy only).
    hotel_id: Option<Uuid>,
    /// First day (departure date or night), default 29 days before `to`.
    from: Option<String>,
    /// Last day, included (default today, UTC).
    to: Option<String>,
    /// Rows per page, 1 to 5000 (default 1000).
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `json` (default) or `csv`.
    #[param(pattern = "^(json|csv)$")]
    format: Option<String>,
}

impl LoadQuery {
    fn limit(&self, options: &crate::Options) -> std::result::Result<u32, Error> {
        let default = options.max_report_rows.min(1_000);
        page_limit(self.limit, default, options.max_report_rows).map_err(|e| Error::invalid("limit", e.message))
    }
}

/// Seats of one departure.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DepartureLoad {
    pub departure_id: String,
    /// From the departure id, when it ends in a date.
    pub departure_date: Option<String>,
    /// Seats on sale: the sum of its cabins' known capacities.
    pub capacity: i64,
    pub sold: i64,
    /// `sold / capacity`; absent without capacity.
    pub load_factor: Option<f64>,
    /// Cabins whose capacity has not been seen yet: their sales are in `sold`, no capacity in `capacity`.
    pub buckets_without_capacity: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoadFactorReport {
    pub rows: Vec<DepartureLoad>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Load factor per departure: seats sold over seats on sale.
#[utoipa::path(get, path = "/api/v1/analytics/load-factor", tag = TAG, security(("bearer" = [])),
    params(LoadQuery),
    responses((status = 200, description = "JSON, or CSV (a header row, then a row per item) when asked",
        content((LoadFactorReport = "application/json"), (String = "text/csv"))),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn load_factor(
    State(service): State<Service>,
    headers: HeaderMap,
    Query(query): Query<LoadQuery>,
) -> Result<Response> {
    let format = format_of(query.format.as_deref(), &headers)?;
    let options = service.options();
    let limit = query.limit(options)?;
    if query.hotel_id.is_some() {
        return Err(Error::invalid("hotel_id", "not a filter of the load factor").into());
    }
    let days = match &query.departure_id {
        Some(_) => None,
        None => Some(days(
            query.from.as_deref(),
            query.to.as_deref(),
            options.max_range_days,
        )?),
    };
    let rows = service
        .store()
        .load_factor(query.departure_id.as_deref(), days, query.cursor.as_deref(), limit)
        .await?;
    let next_cursor = next_cursor(&rows, limit, |r| r.key.clone());
    let lines = load_lines(&rows);
    let rows = rows
        .into_iter()
        .map(|r| DepartureLoad {
            load_factor: r.ratio(),
            departure_id: r.key,
            departure_date: r.day,
            capacity: r.capacity,
            sold: r.sold,
            buckets_without_capacity: r.n_unknown_capacity,
        })
        .collect();
    let header = [
        "departure_id",
        "departure_date",
        "capacity",
        "sold",
        "load_factor",
        "buckets_without_capacity",
    ];
    let report = LoadFactorReport {
        rows,
        next_cursor: next_cursor.clone(),
    };
    Ok(page(format, report, &header, lines, next_cursor))
}

/// Rooms of one hotel on one night.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NightOccupancy {
    pub hotel_id: String,
    pub night: String,
    /// Rooms on sale: the sum of its room types' known capacities that night.
    pub capacity: i64,
    pub sold: i64,
    /// `sold / capacity`; absent without capacity.
    pub occupancy: Option<f64>,
    /// Room-nights whose capacity has not been seen yet: their sales are in `sold`, no capacity in `capacity`.
    pub buckets_without_capacity: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OccupancyReport {
    pub rows: Vec<NightOccupancy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Occupancy per hotel and night: room-nights sold over room-nights on sale.
#[utoipa::path(get, path = "/api/v1/analytics/occupancy", tag = TAG, security(("bearer" = [])),
    params(LoadQuery),
    responses((status = 200, description = "JSON, or CSV (a header row, then a row per item) when asked",
        content((OccupancyReport = "application/json"), (String = "text/csv"))),
        (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn occupancy(
    State(service): State<Service>,
    headers: HeaderMap,
    Query(query): Query<LoadQuery>,
) -> Result<Response> {
    let format = format_of(query.format.as_deref(), &headers)?;
    let options = service.options();
    let limit = query.limit(options)?;
    if query.departure_id.is_some() {
        return Err(Error::invalid("departure_id", "not a filter of occupancy").into());
    }
    let days = days(query.from.as_deref(), query.to.as_deref(), options.max_range_days)?;
    let after = query
        .cursor
        .as_deref()
        .map(|c| {
            c.split_once('/')
                .ok_or_else(|| Error::invalid("cursor", "not a cursor this endpoint gave"))
        })
        .transpose()?;
    let rows = service.store().occupancy(query.hotel_id, days, after, limit).await?;
    let next_cursor = next_cursor(&rows, limit, |r| {
        format!("{}/{}", r.key, r.day.as_deref().unwrap_or_default())
    });
    let lines = load_lines(&rows);
    let rows = rows
        .into_iter()
        .map(|r| NightOccupancy {
            occupancy: r.ratio(),
            hotel_id: r.key,
            night: r.day.unwrap_or_default(),
            capacity: r.capacity,
            sold: r.sold,
            buckets_without_capacity: r.n_unknown_capacity,
        })
        .collect();
    let header = [
        "hotel_id",
        "night",
        "capacity",
        "sold",
        "occupancy",
        "buckets_without_capacity",
    ];
    let report = OccupancyReport {
        rows,
        next_cursor: next_cursor.clone(),
    };
    Ok(page(format, report, &header, lines, next_cursor))
}

/// The CSV lines of a load-factor or occupancy report: key, day, capacity, sold, ratio, buckets without capacity.
fn load_lines(rows: &[LoadRow]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| {
            vec![
                r.key.clone(),
                r.day.clone().unwrap_or_default(),
                r.capacity.to_string(),
                r.sold.to_string(),
                ratio(r.ratio()),
                r.n_unknown_capacity.to_string(),
            ]
        })
        .collect()
}

/// A page of a report in the asked format, with its cursor also in the `x-next-cursor` header.
fn page<T: Serialize>(
    format: Format,
    report: T,
    header: &[&str],
    lines: Vec<Vec<String>>,
    next_cursor: Option<String>,
) -> Response {
    let mut response = respond(format, report, header, lines);
    with_cursor_header(&mut response, next_cursor);
    response
}

fn next_cursor(rows: &[LoadRow], limit: u32, key: impl Fn(&LoadRow) -> String) -> Option<String> {
    (rows.len() == limit as usize).then(|| rows.last().map(key)).flatten()
}

/// CSV has no place for the cursor: it also travels as `X-Next-Cursor`.
fn with_cursor_header(response: &mut Response, cursor: Option<String>) {
    if let Some(value) = cursor.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert("x-next-cursor", value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_picks_what_the_client_ranks_higher_and_json_on_a_tie() {
        let format = |accept: Option<&str>| {
            let mut headers = HeaderMap::new();
            if let Some(accept) = accept {
                headers.insert(header::ACCEPT, accept.parse().unwrap());
            }
            match format_of(None, &headers).unwrap() {
                Format::Json => "json",
                Format::Csv => "csv",
            }
        };
        let cases = [
            (None, "json"),
            (Some("text/csv"), "csv"),
            (Some("Text/CSV; charset=utf-8"), "csv"),
            (Some("application/json"), "json"),
            (Some("*/*"), "json"),
            (Some("text/csv;q=0.1, application/json"), "json"),
            (Some("text/csv, application/json;q=0.9"), "csv"),
            (Some("text/csv;q=0.5, application/json;q=0.5"), "json"),
            (Some("text/*, application/json;q=0.2"), "csv"),
            (Some("text/csv;q=0, */*"), "json"),
            (Some("application/json;q=0, text/csv;q=0.001"), "csv"),
            (Some("text/html"), "json"),
            (Some("text/csv;q=2"), "json"),
        ];
        for (accept, expected) in cases {
            assert_eq!(format(accept), expected, "{accept:?}");
        }
        assert_eq!(thousandths("0.75"), 750);
        assert_eq!(thousandths("1.000"), 1000);
        assert_eq!(thousandths("0.1234"), 0);
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed_and_never_run_as_formulas() {
        let cases = [
            ("PX10-2026-12-01", "PX10-2026-12-01"),
            ("-12", "-12"),
            ("0.7500", "0.7500"),
            ("a,b", "\"a,b\""),
            ("say \"hi\"", "\"say \"\"hi\"\"\""),
            ("=SUM(A1)", "'=SUM(A1)"),
            ("-x,y", "\"'-x,y\""),
        ];
        for (field, expected) in cases {
            assert_eq!(csv_field(field), expected, "{field}");
        }
    }

    #[test]
    fn ranges_of_days_are_bounded_and_ordered() {
        let ok = days(Some("2026-01-01"), Some("2026-12-31"), 366).expect("a year");
        assert_eq!((ok.to - ok.from).whole_days(), 364);
        assert!(days(Some("2025-01-01"), Some("2026-12-31"), 366).is_err());
        assert!(days(Some("2026-12-02"), Some("2026-12-01"), 366).is_err());
        assert!(days(Some("2026-13-01"), None, 366).is_err());
        let default = days(None, None, 366).expect("default");
        assert_eq!((default.to - default.from).whole_days(), 29);
        assert!(currency(Some("eur")).is_err());
        assert_eq!(currency(Some("EUR")).ok().flatten(), Some("EUR"));
    }
}
