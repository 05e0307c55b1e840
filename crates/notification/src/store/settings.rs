//! What users and admins set: each user's locale and opt-outs, and admins' replacements of built-in templates.

use std::collections::HashMap;

use phoenix_db::{Timestamp, Tx, dispatch};
use serde::{Deserialize, Serialize};
use sqlx::types::Json;
use uuid::Uuid;

use super::{Channel, Store};
use crate::Error;
use crate::template::Template;

/// A user's preferences as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPreferences {
    pub locale: String,
    /// `(kind, channel)` pairs the user does not want.
    pub opt_outs: Vec<(String, Channel)>,
}

impl StoredPreferences {
    pub fn opted_out(&self, kind: &str, channel: Channel) -> bool {
        self.opt_outs.iter().any(|(k, c)| k == kind && *c == channel)
    }
}

/// `(locale, opt_outs)` as stored.
type PreferenceRow = (String, Json<Vec<(String, Channel)>>);

/// An admin's replacement of a built-in template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTemplate {
    pub kind: String,
    pub channel: Channel,
    pub locale: String,
    pub template: Template,
    pub updated_by: Uuid,
    pub updated_at: Timestamp,
}

impl Store {
    /// The stored preferences of those of `user_ids` that have any: one statement on PostgreSQL, one per user on
    /// SQLite (where a statement is a function call).
    pub async fn preferences_of_in(tx: &mut Tx, user_ids: &[Uuid]) -> Result<HashMap<Uuid, StoredPreferences>, Error> {
        let mut found = HashMap::with_capacity(user_ids.len());
        match tx {
            Tx::Postgres(conn) => {
                let rows: Vec<(Uuid, String, Json<_>)> =
                    sqlx::query_as("SELECT user_id, locale, opt_outs FROM preferences WHERE user_id = ANY($1)")
                        .bind(user_ids)
                        .fetch_all(&mut **conn)
                        .await?;
                for (user_id, locale, opt_outs) in rows {
                    found.insert(
                        user_id,
                        StoredPreferences {
                            locale,
                            opt_outs: opt_outs.0,
                        },
                    );
                }
            }
            Tx::Sqlite(_) => {
                for &user_id in user_ids {
                    if let Some(stored) = Store::preferences_in(tx, user_id).await? {
                        found.insert(user_id, stored);
                    }
                }
            }
        }
        Ok(found)
    }

    pub async fn preferences_in(tx: &mut Tx, user_id: Uuid) -> Result<Option<StoredPreferences>, Error> {
        let row: Option<PreferenceRow> = dispatch!(tx, conn => {
            sqlx::query_as("SELECT locale, opt_outs FROM preferences WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(conn)
                .await
        })?;
        Ok(row.map(|(locale, opt_outs)| StoredPreferences {
            locale,
            opt_outs: opt_outs.0,
        }))
    }

    // --- preferences ---

    pub async fn preferences(&self, user_id: Uuid) -> Result<Option<StoredPreferences>, Error> {
        let mut tx = self.pool.begin().await?;
        Store::preferences_in(&mut tx, user_id).await
    }

    pub async fn put_preferences(&self, user_id: Uuid, preferences: &StoredPreferences) -> Result<(), Error> {
        dispatch!(&self.pool, conn => {
            sqlx::query(
                "INSERT INTO preferences (user_id, locale, opt_outs, updated_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (user_id) DO UPDATE SET locale = $2, opt_outs = $3, updated_at = $4",
            )
            .bind(user_id)
            .bind(&preferences.locale)
            .bind(Json(&preferences.opt_outs))
            .bind(Timestamp::now())
            .execute(conn)
            .await
            .map(|_| ())
        })?;
        Ok(())
    }

    // --- templates ---

    pub async fn templates(&self) -> Result<Vec<StoredTemplate>, Error> {
        let rows: Vec<TemplateRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(
                "SELECT kind, channel, locale, subject, text_body, html_body, updated_by, updated_at FROM templates
                 ORDER BY kind, channel, locale LIMIT 1000",
            )
            .fetch_all(conn)
            .await
        })?;
        rows.into_iter().map(StoredTemplate::try_from).collect()
    }

    pub async fn template(&self, kind: &str, channel: Channel, locale: &str) -> Result<Option<Template>, Error> {
        let row: Option<TemplateRow> = dispatch!(&self.pool, conn => {
            sqlx::query_as(
                "SELECT kind, channel, locale, subject, text_body, html_body, updated_by, updated_at FROM templates
                 WHERE kind = $1 AND channel = $2 AND locale = $3",
            )
            .bind(kind)
            .bind(channel.as_str())
            .bind(locale)
            .fetch_optional(conn)
            .await
        })?;
        Ok(row.map(StoredTemplate::try_from).transpose()?.map(|t| t.template))
    }

    /// Replaces (or adds) a template with its `notification.template_changed.v1` event, in one transaction.
    pub async fn put_template(&self, stored: &StoredTemplate) -> Result<(), Error> {
        let event = crate::events::template_changed(&stored.kind, stored.channel, &stored.locale, stored.updated_by)?;
        let mut tx = self.pool.begin().await?;
        dispatch!(&mut tx, conn => {
            sqlx::query(
                "INSERT INTO templates (kind, channel, locale, subject, text_body, html_body, updated_by, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (kind, channel, locale) DO UPDATE SET subject = $4, text_body = $5, html_body = $6,
                     updated_by = $7, updated_at = $8",
            )
            .bind(&stored.kind)
            .bind(stored.channel.as_str())
            .bind(&stored.locale)
            .bind(&stored.template.subject)
            .bind(&stored.template.text)
            .bind(&stored.template.html)
            .bind(stored.updated_by)
            .bind(stored.updated_at)
            .execute(conn)
            .await
            .map(|_| ())
        })?;
        tx.append_event(&event).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[derive(sqlx::FromRow)]
struct TemplateRow {
    kind: String,
    channel: String,
    locale: String,
    subject: Option<String>,
    text_body: String,
    html_body: Option<String>,
    updated_by: Uuid,
    updated_at: Timestamp,
}

impl TryFrom<TemplateRow> for StoredTemplate {
    type Error = Error;

    fn try_from(row: TemplateRow) -> Result<StoredTemplate, Error> {
        Ok(StoredTemplate {
            kind: row.kind,
            channel: Channel::parse(&row.channel).ok_or(Error::Corrupt {
                what: "template channel",
            })?,
            locale: row.locale,
            template: Template {
                subject: row.subject,
                text: row.text_body,
                html: row.html_body,
            },
            updated_by: row.updated_by,
            updated_at: row.updated_at,
        })
    }
}
