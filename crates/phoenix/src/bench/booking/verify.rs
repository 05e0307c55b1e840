//! The proof after a run, from the services' own records: buckets against confirmed bookings, the provider's
//! ledger against their totals; and the saga steps' mean times from the metrics.

use super::load::*;
use super::platform::*;
use super::world::*;
use super::*;

/// What the checks found: one line per check, and what broke.
pub(super) struct Verification {
    pub(super) lines: Vec<String>,
    pub(super) problems: Vec<String>,
    /// Every bucket of the world is sold out.
    pub(super) sold_out: bool,
}

/// The confirmed bookings, as the booking service has them.
#[derive(Default)]
pub(super) struct Books {
    pub(super) by_status: BTreeMap<&'static str, u64>,
    /// Status and total of every booking.
    pub(super) bookings: HashMap<Uuid, (Status, i64)>,
    /// Units the confirmed bookings hold, by bucket.
    pub(super) units: HashMap<String, i64>,
    pub(super) confirmed_total_minor: i64,
    pub(super) currencies: BTreeMap<String, u64>,
}

pub(super) async fn books(booking: &phoenix_booking::Service) -> anyhow::Result<Books> {
    let admin = principal(Role::Admin, None);
    let mut books = Books::default();
    let mut cursor = None;
    loop {
        let page = PageParams {
            limit: Some(booking.options().max_page_size),
            cursor,
        };
        let page = booking.list(&admin, ListFilter::default(), &page).await?;
        for b in &page.items {
            *books.by_status.entry(b.status.as_str()).or_default() += 1;
            books.bookings.insert(b.id, (b.status, b.total_minor));
            if b.status != Status::Confirmed {
                continue;
            }
            books.confirmed_total_minor += b.total_minor;
            *books.currencies.entry(b.currency.clone()).or_default() += 1;
            for line in b.items.iter().flat_map(|item| &item.inventory_lines) {
                *books.units.entry(line.item_id.clone()).or_default() += line.quantity;
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(books),
        }
    }
}

pub(super) async fn verify(
    platform: &Platform,
    world: &World,
    tally: &Tally,
    measured_from: phoenix_db::Timestamp,
) -> anyhow::Result<Verification> {
    let books = books(&platform.booking).await?;
    let mut verification = Verification {
        lines: Vec::new(),
        problems: Vec::new(),
        sold_out: false,
    };
    let n_confirmed = books.by_status.get("confirmed").copied().unwrap_or(0);
    let statuses: Vec<String> = books.by_status.iter().map(|(s, n)| format!("{n} {s}")).collect();
    verification.lines.push(format!("bookings: {}", statuses.join(", ")));
    let in_flight: u64 = ["pending", "cancelling"]
        .iter()
        .filter_map(|s| books.by_status.get(s))
        .sum();
    if in_flight > 0 {
        verification.problems.push(format!(
            "{in_flight} bookings still in flight {} s after the clients stopped",
            SETTLE_TIMEOUT.as_secs()
        ));
    }
    let unconfirmed = tally
        .bookings
        .iter()
        .filter(|(id, total)| books.bookings.get(id) != Some(&(Status::Confirmed, *total)))
        .count();
    if unconfirmed > 0 {
        verification.problems.push(format!(
            "{unconfirmed} bookings answered 201 are not confirmed at that total"
        ));
    }
    check_buckets(platform, world, &books, &mut verification).await?;
    check_provider(platform, &books, n_confirmed, &mut verification).await?;
    check_events(platform, measured_from, &mut verification).await?;
    Ok(verification)
}

/// Every event the run wrote reached the audit log once (after the relays and the consumer caught up), and how long
/// events of the measured window took from their transaction to their audit entry.
pub(super) async fn check_events(
    platform: &Platform,
    measured_from: phoenix_db::Timestamp,
    verification: &mut Verification,
) -> anyhow::Result<()> {
    let mut written = 0;
    for pool in &platform.outboxes {
        let n: i64 = dispatch!(pool, conn => sqlx::query_scalar("SELECT COUNT(*) FROM outbox").fetch_one(conn).await)?;
        written += n;
    }
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let audited = loop {
        let n: i64 = dispatch!(&platform.audit, conn => {
            sqlx::query_scalar("SELECT COUNT(DISTINCT event_id) FROM audit_entries").fetch_one(conn).await
        })?;
        if n >= written || Instant::now() >= deadline {
            break n;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if audited != written {
        verification
            .problems
            .push(format!("{written} events written, {audited} audited"));
    }
    let times: Vec<(phoenix_db::Timestamp, phoenix_db::Timestamp)> = dispatch!(&platform.audit, conn => {
        sqlx::query_as("SELECT occurred_at, recorded_at FROM audit_entries WHERE occurred_at >= $1")
            .bind(measured_from)
            .fetch_all(conn)
            .await
    })?;
    // Bounded up front: an auto-sized histogram starts at a highest value of 2 and `saturating_record` clamps.
    let mut lag = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).context("histogram")?;
    for (occurred, recorded) in &times {
        lag.saturating_record((recorded.unix_micros() - occurred.unix_micros()).max(0) as u64);
    }
    let ms = |q: f64| lag.value_at_quantile(q) as f64 / 1000.0;
    verification.lines.push(format!(
        "events: {written} written, {audited} audited once each; outbox to audit lag of the {} from the measured \
         window: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        times.len(),
        ms(0.5),
        ms(0.99),
        lag.max() as f64 / 1000.0
    ));
    Ok(())
}

/// Every bucket of the world (and any other a confirmed booking holds): `sold` equal to the confirmed units,
/// nothing held once no booking is in flight, `held + sold` within the bucket's limit.
pub(super) async fn check_buckets(
    platform: &Platform,
    world: &World,
    books: &Books,
    verification: &mut Verification,
) -> anyhow::Result<()> {
    let mut ids = world.buckets();
    let known: std::collections::HashSet<&String> = ids.iter().collect();
    let others: Vec<String> = books.units.keys().filter(|id| !known.contains(id)).cloned().collect();
    ids.extend(others);
    let (mut mismatched, mut held, mut oversold, mut sold_units, mut found) = (0u64, 0i64, 0u64, 0i64, 0usize);
    let mut sold_out = 0usize;
    for chunk in ids.chunks(platform.inventory.options().max_availability_items) {
        for bucket in platform.inventory.availability(chunk).await? {
            found += 1;
            let confirmed = books.units.get(bucket.item_id.as_str()).copied().unwrap_or(0);
            mismatched += u64::from(bucket.sold != confirmed);
            held += bucket.held;
            oversold += u64::from(bucket.held + bucket.sold > bucket.capacity + bucket.overbooking_limit);
            sold_out += usize::from(bucket.sold >= bucket.capacity + bucket.overbooking_limit);
            sold_units += bucket.sold;
        }
    }
    verification.lines.push(format!(
        "inventory: {found} buckets, {sold_units} units sold, {sold_out} sold out; every bucket's sold = its \
         confirmed bookings' units: {}; nothing held: {}; held + sold <= capacity everywhere: {}",
        yes(mismatched == 0),
        yes(held == 0),
        yes(oversold == 0)
    ));
    verification.sold_out = found > 0 && sold_out == found;
    if found != ids.len() {
        verification
            .problems
            .push(format!("{} buckets missing from inventory", ids.len() - found));
    }
    if mismatched > 0 {
        verification.problems.push(format!(
            "{mismatched} buckets whose sold differs from their confirmed bookings"
        ));
    }
    if held > 0 {
        verification
            .problems
            .push(format!("{held} units still held with no booking in flight"));
    }
    if oversold > 0 {
        verification.problems.push(format!("{oversold} buckets oversold"));
    }
    Ok(())
}

/// The simulated provider's own books: captured exactly the confirmed bookings' totals, once each, and holds no
/// authorization open.
pub(super) async fn check_provider(
    platform: &Platform,
    books: &Books,
    n_confirmed: u64,
    verification: &mut Verification,
) -> anyhow::Result<()> {
    let sums: (i64, i64, i64, i64, i64) = dispatch!(&platform.ledger, conn => {
        sqlx::query_as(
            "SELECT
                (SELECT COUNT(*) FROM simulator_payments WHERE status = 'captured'),
                (SELECT CAST(COALESCE(SUM(captured_minor), 0) AS BIGINT) FROM simulator_payments),
                (SELECT CAST(COALESCE(SUM(refunded_minor), 0) AS BIGINT) FROM simulator_payments),
                (SELECT COUNT(*) FROM simulator_payments WHERE status = 'authorized'),
                (SELECT CAST(COALESCE(SUM(amount_minor), 0) AS BIGINT) FROM simulator_ledger WHERE kind = 'capture')",
        )
        .fetch_one(conn)
        .await
    })?;
    let (captured_n, captured_minor, refunded_minor, open_n, ledger_captured_minor) = sums;
    let currencies: Vec<String> = books.currencies.keys().cloned().collect();
    verification.lines.push(format!(
        "provider: {captured_n} payments captured, {} {} in all (ledger {}), {open_n} authorizations open; \
         confirmed bookings' totals {}",
        money(captured_minor),
        currencies.join("+"),
        money(ledger_captured_minor),
        money(books.confirmed_total_minor),
    ));
    if captured_minor != books.confirmed_total_minor || ledger_captured_minor != captured_minor {
        verification.problems.push(format!(
            "captured {} (ledger {}) but confirmed bookings total {}",
            money(captured_minor),
            money(ledger_captured_minor),
            money(books.confirmed_total_minor)
        ));
    }
    if captured_n as u64 != n_confirmed {
        verification.problems.push(format!(
            "{captured_n} payments captured for {n_confirmed} confirmed bookings"
        ));
    }
    if open_n > 0 || refunded_minor > 0 {
        verification.problems.push(format!(
            "{open_n} authorizations left open, {} refunded",
            money(refunded_minor)
        ));
    }
    if books.currencies.len() > 1 {
        verification.problems.push(format!(
            "bookings in several currencies ({}): totals not comparable",
            currencies.join(", ")
        ));
    }
    Ok(())
}

pub(super) fn yes(ok: bool) -> &'static str {
    if ok { "yes" } else { "NO" }
}

pub(super) fn money(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// Seconds spent in each saga step so far and how many times it ran, from this process's metrics.
pub(super) fn step_times() -> HashMap<String, (f64, f64)> {
    let mut steps: HashMap<String, (f64, f64)> = HashMap::new();
    for line in phoenix_gateway::telemetry::render().lines() {
        let (rest, is_sum) = match (
            line.strip_prefix("phoenix_saga_step_seconds_sum{"),
            line.strip_prefix("phoenix_saga_step_seconds_count{"),
        ) {
            (Some(rest), _) => (rest, true),
            (_, Some(rest)) => (rest, false),
            _ => continue,
        };
        let Some((labels, value)) = rest.rsplit_once('}') else {
            continue;
        };
        let Some(step) = labels
            .split(',')
            .find_map(|label| label.strip_prefix("step=\""))
            .map(|s| s.trim_end_matches('"'))
        else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let entry = steps.entry(step.to_owned()).or_default();
        if is_sum {
            entry.0 += value;
        } else {
            entry.1 += value;
        }
    }
    steps
}

/// Mean milliseconds of each saga step between two readings, in the order the steps run.
pub(super) fn step_means(
    before: &HashMap<String, (f64, f64)>,
    after: &HashMap<String, (f64, f64)>,
) -> Vec<(String, f64)> {
    const ORDER: [&str; 8] = [
        "hold_inventory",
        "authorize_payment",
        "confirm_hold",
        "capture_payment",
        "confirm_booking",
        "void_payment",
        "release_hold",
        "fail_booking",
    ];
    ORDER
        .iter()
        .filter_map(|step| {
            let (sum, count) = after.get(*step).copied()?;
            let (sum_before, count_before) = before.get(*step).copied().unwrap_or_default();
            let n = count - count_before;
            (n > 0.0).then(|| ((*step).to_owned(), (sum - sum_before) / n * 1000.0))
        })
        .collect()
}
