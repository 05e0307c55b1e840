//! The obvious design, kept as the benchmark's yardstick: one transaction per hold, with the same guarded update
//! and the same rows (hold, lines, holder counter, event) as the engine writes. Correct, and limited to one commit
//! per hold; on a hot bucket every transaction also waits for the one before it to release the row.

use phoenix_db::{Pool, Timestamp, dispatch};
use uuid::Uuid;

use crate::Error;
use crate::hold::{Hold, NewHold, Status};

/// Holds `request` in a transaction of its own. `Ok(None)`: not enough units.
pub async fn hold(pool: &Pool, request: &NewHold, now: Timestamp) -> Result<Option<Uuid>, Error> {
    let mut tx = pool.begin().await?;
    let id = Uuid::now_v7();
    let expires_at = now + time::Duration::seconds(request.ttl_secs as i64);
    for line in &request.lines {
        let taken = dispatch!(&mut tx, conn => {
            sqlx::query(
                "UPDATE buckets SET held = held + $1, updated_at = $2
                 WHERE item_id = $3 AND held + sold + $1 <= capacity + overbooking_limit",
            )
            .bind(line.quantity)
            .bind(now)
            .bind(line.item_id.as_str())
            .execute(conn)
            .await
            .map(|done| done.rows_affected())
        })?;
        if taken == 0 {
            return Ok(None);
        }
    }
    dispatch!(&mut tx, conn => {
        sqlx::query(
            "INSERT INTO holds (id, holder_id, organization_id, reference, status, created_at, expires_at, managed)
             VALUES ($1, $2, $3, $4, 'held', $5, $6, $7)",
        )
        .bind(id)
        .bind(request.holder_id)
        .bind(request.organization_id)
        .bind(&request.reference)
        .bind(now)
        .bind(expires_at)
        .bind(request.managed)
        .execute(&mut *conn)
        .await?;
        for line in &request.lines {
            sqlx::query(
                "INSERT INTO hold_lines (hold_id, item_id, quantity, active, expires_at) VALUES ($1, $2, $3, TRUE, $4)",
            )
            .bind(id)
            .bind(line.item_id.as_str())
            .bind(line.quantity)
            .bind(expires_at)
            .execute(&mut *conn)
            .await?;
        }
        sqlx::query(
            "INSERT INTO holders (holder_id, active_holds) VALUES ($1, 1)
             ON CONFLICT (holder_id) DO UPDATE SET active_holds = holders.active_holds + 1",
        )
        .bind(request.holder_id)
        .execute(&mut *conn)
        .await
        .map(|_| ())
    })?;
    let hold = Hold {
        id,
        holder_id: request.holder_id,
        organization_id: request.organization_id,
        reference: request.reference.clone(),
        status: Status::Held,
        lines: request.lines.clone(),
        created_at: now,
        expires_at,
        closed_at: None,
        managed: request.managed,
    };
    let mut event = hold.created_event()?;
    event.occurred_at = now;
    tx.append_event(&event).await?;
    tx.commit().await?;
    Ok(Some(id))
}
