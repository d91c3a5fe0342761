//! MondiaPay's notifications, stored once per `eventUUID`, and the event feed read by cursor.
//!
//! The cursor is the row's `seq`. A consumer that asks for "after n" must never later find an
//! event numbered n or below it had not seen, so an event must become visible only after every
//! event with a smaller `seq`. SQLite has one writer connection: its commits, and so the
//! numbers, come in that order. On PostgreSQL several replicas insert at once, and a sequence
//! hands out numbers when a row is inserted, not when it commits: 12 could be visible while 11
//! is still uncommitted, and a reader passing 12 would skip 11 for good. So every insert first
//! takes one transaction-scoped advisory lock, before its row draws a number, and holds it until
//! its commit is visible (PostgreSQL releases a transaction's locks after making its commit
//! visible): inserts are serialised across replicas, and a visible event has every smaller
//! number visible (or rolled back) before it. The price is one event insert at a time across
//! all replicas, each its own commit: as many a second as the database syncs commits, far above
//! what MondiaPay sends.

use rusqlite::OptionalExtension;
use sqlx::AssertSqlSafe;

use super::pool::on_pool;
use super::{Backend, StoreError, TokenStore, now_unix, writer};
use crate::domain::{Notification, StoredEvent};

/// The advisory lock that serialises event inserts on PostgreSQL ("events" in ASCII); no other
/// lock of this service uses it (the migrator's is derived from the database name).
const EVENT_INSERT_LOCK: i64 = 0x6576_656e_7473;

/// Inserts the event unless its `eventUUID` is stored; the purchase its `purchaseToken` names,
/// if any, gives its id and `ref`.
const INSERT: &str = "INSERT INTO events (event_uuid, received_at, event, reason, status, \
         sub_state, uuid, subscription_id, subscription_type_id, event_time, purchase_token, \
         purchase_id, ref, raw) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
         (SELECT id FROM purchases WHERE purchase_token = $11), \
         (SELECT ref FROM purchases WHERE purchase_token = $11), $12) \
     ON CONFLICT (event_uuid) DO NOTHING \
     RETURNING seq";

/// The purchase a notification names learns its user for certain (the uuid MondiaPay itself
/// sent) and its subscription's id.
const CONFIRM_PURCHASE: &str = "UPDATE purchases SET uuid = COALESCE($2, uuid), \
         uuid_confirmed = (uuid_confirmed OR $3), \
         subscription_id = COALESCE($4, subscription_id), updated_at = $5 \
     WHERE purchase_token = $1";

const PURGE: &str = "DELETE FROM events WHERE received_at < $1";

const COLUMNS: &str = "seq, received_at, event_uuid, event, reason, status, sub_state, uuid, \
     subscription_id, subscription_type_id, event_time, purchase_token, purchase_id, ref, raw";

/// Whether a notification was new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// Stored now, under this cursor.
    New(i64),
    /// Its `eventUUID` was already stored: nothing changed.
    Duplicate,
}

/// `events`: one stored notification.
#[derive(sqlx::FromRow)]
struct EventRow {
    seq: i64,
    received_at: i64,
    event_uuid: String,
    event: String,
    reason: Option<String>,
    status: Option<String>,
    sub_state: Option<String>,
    uuid: Option<String>,
    subscription_id: Option<String>,
    subscription_type_id: Option<String>,
    event_time: Option<String>,
    purchase_token: Option<String>,
    purchase_id: Option<String>,
    #[sqlx(rename = "ref")]
    reference: Option<String>,
    raw: String,
}

impl From<EventRow> for StoredEvent {
    fn from(row: EventRow) -> Self {
        Self {
            cursor: row.seq,
            received_at: row.received_at,
            notification: Notification {
                event_uuid: row.event_uuid,
                event: row.event,
                reason: row.reason,
                status: row.status,
                sub_state: row.sub_state,
                uuid: row.uuid,
                subscription_id: row.subscription_id,
                subscription_type_id: row.subscription_type_id,
                event_time: row.event_time,
                purchase_token: row.purchase_token,
                raw: row.raw,
            },
            purchase_id: row.purchase_id,
            reference: row.reference,
        }
    }
}

impl TokenStore {
    /// Stores a notification once per `eventUUID`, and confirms the purchase it names in the
    /// same transaction; durable when this returns.
    pub async fn store_event(&self, notification: &Notification) -> Result<Stored, StoreError> {
        // The disk's last MiB is kept for the tokens of codes MondiaPay has already spent; a
        // notification refused now (503) is sent again by MondiaPay.
        self.ensure_room()?;
        let new = notification.clone();
        let now = now_unix();
        // A duplicate is answered once durable too: its first delivery may be in the same batch.
        let seq = match &self.backend {
            Backend::Sqlite(sqlite) => {
                sqlite
                    .writer
                    .write(move |db| {
                        // One savepoint: the purchase is confirmed only with its new event.
                        let seq: Option<i64> = writer::prepare(db, INSERT)?
                            .query_row(
                                rusqlite::params![
                                    new.event_uuid,
                                    now,
                                    new.event,
                                    new.reason,
                                    new.status,
                                    new.sub_state,
                                    new.uuid,
                                    new.subscription_id,
                                    new.subscription_type_id,
                                    new.event_time,
                                    new.purchase_token,
                                    new.raw
                                ],
                                |row| row.get(0),
                            )
                            .optional()?;
                        if let (Some(_), Some(token)) = (seq, &new.purchase_token) {
                            writer::prepare(db, CONFIRM_PURCHASE)?.execute(rusqlite::params![
                                token,
                                new.uuid,
                                new.uuid.is_some(),
                                new.subscription_id,
                                now
                            ])?;
                        }
                        Ok(seq)
                    })
                    .await?
            }
            Backend::Postgres(_) => {
                self.to_completion(move |store| async move {
                    let seq = {
                        let pool = store.postgres();

                        let mut tx = pool.begin().await?;
                        sqlx::query("SELECT pg_advisory_xact_lock($1)")
                            .bind(EVENT_INSERT_LOCK)
                            .execute(&mut *tx)
                            .await?;
                        let seq: Option<(i64,)> = sqlx::query_as(INSERT)
                            .bind(&new.event_uuid)
                            .bind(now)
                            .bind(&new.event)
                            .bind(new.reason.as_deref())
                            .bind(new.status.as_deref())
                            .bind(new.sub_state.as_deref())
                            .bind(new.uuid.as_deref())
                            .bind(new.subscription_id.as_deref())
                            .bind(new.subscription_type_id.as_deref())
                            .bind(new.event_time.as_deref())
                            .bind(new.purchase_token.as_deref())
                            .bind(&new.raw)
                            .fetch_optional(&mut *tx)
                            .await?;
                        if let (Some(_), Some(token)) = (seq, &new.purchase_token) {
                            sqlx::query(CONFIRM_PURCHASE)
                                .bind(token)
                                .bind(new.uuid.as_deref())
                                .bind(new.uuid.is_some())
                                .bind(new.subscription_id.as_deref())
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                        }
                        tx.commit().await?;
                        seq.map(|(seq,)| seq)
                    };
                    Ok(seq)
                })
                .await?
            }
        };
        Ok(seq.map_or(Stored::Duplicate, Stored::New))
    }

    /// At most `limit` events after `cursor`, oldest first; handed out only once on disk, or a
    /// crash could take back an event a consumer has seen and give its number to another. No
    /// wait for a sync: on SQLite every event is written by the writer thread, whose commits
    /// readers see only once synced.
    pub async fn events_after(
        &self,
        cursor: i64,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM events WHERE seq > $1 ORDER BY seq LIMIT $2");
        let rows: Vec<EventRow> = on_pool!(self.pool(), pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(cursor)
                .bind(limit)
                .fetch_all(pool)
                .await?
        });
        Ok(rows.into_iter().map(StoredEvent::from).collect())
    }

    /// Deletes events received before `cutoff` (`store.retention_secs`).
    pub async fn purge_events(&self, cutoff: i64) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sqlite(sqlite) => {
                sqlite
                    .writer
                    .write(move |db| Ok(writer::prepare(db, PURGE)?.execute([cutoff])? as u64))
                    .await
            }
            Backend::Postgres(_) => {
                self.to_completion(move |store| async move {
                    let purged = {
                        let pool = store.postgres();

                        sqlx::query(PURGE)
                            .bind(cutoff)
                            .execute(pool)
                            .await?
                            .rows_affected()
                    };
                    Ok(purged)
                })
                .await
            }
        }
    }
}
