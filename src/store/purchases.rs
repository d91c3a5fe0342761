//! Purchases this service started: an `Idempotency-Key` claimed before MondiaPay is called, the
//! record once Prepare Purchase answered, the binding of the one code that may end it, its state
//! after the callback, its expiry and its purge.

use sqlx::AssertSqlSafe;

use super::pool::on_pool;
use super::{Backend, StoreError, TokenStore, now_unix, writer};
use crate::domain::{NewCallback, Purchase, PurchaseState};

/// An `Idempotency-Key` names its purchase for this long.
pub const IDEMPOTENCY_KEY_SECS: i64 = 24 * 3600;

const COLUMNS: &str = "id, ref, state, subscription_type_id, redirect_url, code_hash, token_id, \
    uuid, uuid_confirmed, subscription_id, mondiapay_error, created_at, expires_at, updated_at, \
    request_hash";

/// `purchases`, as read.
#[derive(sqlx::FromRow)]
struct PurchaseRow {
    id: String,
    #[sqlx(rename = "ref")]
    reference: Option<String>,
    state: String,
    subscription_type_id: i64,
    redirect_url: Option<String>,
    code_hash: Option<String>,
    token_id: Option<String>,
    uuid: Option<String>,
    uuid_confirmed: bool,
    subscription_id: Option<String>,
    mondiapay_error: Option<String>,
    created_at: i64,
    expires_at: i64,
    updated_at: i64,
    request_hash: Option<String>,
}

impl PurchaseRow {
    fn into_purchase(self) -> Result<(Purchase, Option<String>), StoreError> {
        let purchase = Purchase {
            id: self.id,
            reference: self.reference,
            state: PurchaseState::parse(&self.state)?,
            subscription_type_id: self.subscription_type_id,
            redirect_url: self.redirect_url,
            code_hash: self.code_hash,
            token_id: self.token_id,
            uuid: self.uuid,
            uuid_confirmed: self.uuid_confirmed,
            subscription_id: self.subscription_id,
            mondiapay_error: self.mondiapay_error,
            created_at: self.created_at,
            expires_at: self.expires_at,
            updated_at: self.updated_at,
        };
        Ok((purchase, self.request_hash))
    }
}

/// A statement with `$NOW` for the database's clock, in Unix seconds: leases are taken and
/// compared on it, the same for every replica. One text per backend.
macro_rules! on_db_clock {
    ($name:ident, $sqlite:ident, $postgres:ident) => {
        const $sqlite: &str = $name!("unixepoch()");
        const $postgres: &str = $name!("CAST(FLOOR(EXTRACT(EPOCH FROM now())) AS BIGINT)");
    };
}

/// Forgets the key if it is older than 24 hours, so that the claim below may take it.
const FORGET_OLD_KEY: &str = "UPDATE purchases SET idempotency_key = NULL, request_hash = NULL \
     WHERE idempotency_key = $1 AND created_at < $2";

macro_rules! claim_key {
    ($now:literal) => {
        concat!(
            "INSERT INTO purchases (id, ref, state, subscription_type_id, idempotency_key, \
                 request_hash, lease_until, created_at, expires_at, updated_at) \
             VALUES ($1, $2, 'preparing', $3, $4, $5, ",
            $now,
            " + $6, $7, $7, $7) \
             ON CONFLICT (idempotency_key) DO NOTHING"
        )
    };
}
on_db_clock!(claim_key, CLAIM_KEY_SQLITE, CLAIM_KEY_POSTGRES);

macro_rules! take_over {
    ($now:literal) => {
        concat!(
            "UPDATE purchases SET lease_until = ",
            $now,
            " + $2 \
             WHERE id = $1 AND state = 'preparing' AND lease_until <= ",
            $now
        )
    };
}
on_db_clock!(take_over, TAKE_OVER_SQLITE, TAKE_OVER_POSTGRES);

const START_CLAIMED: &str = "UPDATE purchases SET state = 'started', purchase_token = $2, \
         redirect_url = $3, lease_until = NULL, created_at = $4, expires_at = $5, updated_at = $4 \
     WHERE id = $1 AND state = 'preparing'";

const START_NEW: &str = "INSERT INTO purchases (id, purchase_token, redirect_url, created_at, \
         expires_at, updated_at, ref, subscription_type_id, state) \
     VALUES ($1, $2, $3, $4, $5, $4, $6, $7, 'started')";

const RELEASE_CLAIM: &str = "DELETE FROM purchases WHERE id = $1 AND state = 'preparing'";

const BIND_CODE: &str = "UPDATE purchases SET code_hash = $2, updated_at = $3, \
         state = CASE WHEN $2 IS NULL THEN 'purchase_failed' ELSE state END \
     WHERE id = $1 AND state = 'started' AND code_hash IS NULL AND expires_at > $3";

const SETTLE: &str = "UPDATE purchases SET state = $2, token_id = COALESCE($3, token_id), \
         uuid = CASE WHEN uuid_confirmed THEN uuid ELSE COALESCE($4, uuid) END, \
         mondiapay_error = $5, updated_at = $6 \
     WHERE id = $1 AND state <> 'succeeded'";

const EXPIRE: &str = "UPDATE purchases SET state = 'expired', updated_at = $1 \
     WHERE state = 'started' AND code_hash IS NULL AND expires_at <= $1";

/// A callback binds its code before the exchange and records the outcome after: a purchase still
/// `started` with a bound code an hour on lost its outcome (the process died in between). Its
/// code's exchange says how it ended.
const SETTLE_LOST: &str = "UPDATE purchases SET \
         state = COALESCE((SELECT CASE e.state WHEN 'succeeded' THEN 'succeeded' \
             WHEN 'rejected' THEN 'code_rejected' ELSE 'unavailable' END \
             FROM exchanges e WHERE e.code_hash = purchases.code_hash), 'unavailable'), \
         token_id = COALESCE(token_id, (SELECT e.token_id FROM exchanges e \
             WHERE e.code_hash = purchases.code_hash)), \
         updated_at = $1 \
     WHERE state = 'started' AND code_hash IS NOT NULL AND updated_at <= $2";

/// A succeeded purchase is kept: its subscription's later notifications (months on) find their
/// order by it, and its confirmed uuid renews the order's token.
const PURGE: &str = "DELETE FROM purchases WHERE updated_at < $1 \
     AND state NOT IN ('started', 'preparing', 'succeeded')";

const DROP_ABANDONED: &str = "DELETE FROM purchases WHERE state = 'preparing' AND lease_until < $1";

const FORGET_OLD_KEYS: &str = "UPDATE purchases SET idempotency_key = NULL, request_hash = NULL \
     WHERE idempotency_key IS NOT NULL AND created_at < $1 AND state <> 'preparing'";

/// A unique violation, read as sqlx reads one (`is_unique_violation`): on a new purchase only its
/// purchase token can collide (its id is random), so MondiaPay gave that token before.
fn purchase_token_taken(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.code == rusqlite::ErrorCode::ConstraintViolation
                && matches!(
                    failure.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
        {
            StoreError::PurchaseTokenTaken
        }
        _ => StoreError::from(error),
    }
}

/// A purchase about to be claimed or stored.
#[derive(Debug, Clone)]
pub struct NewPurchase {
    pub id: String,
    pub reference: Option<String>,
    pub subscription_type_id: i64,
}

/// What claiming an `Idempotency-Key` found.
#[derive(Debug)]
pub enum KeyClaim {
    /// This request holds the key: the purchase is `preparing` under the new id.
    Claimed,
    /// The key names an earlier purchase, with the hash of that request's body.
    Taken(Box<Purchase>, Option<String>),
    /// The key's holder released it (its Prepare Purchase failed) just now: claim again.
    Released,
}

/// How long after its code was bound a purchase still `started` counts as having lost its
/// callback's outcome: far longer than any exchange.
const OUTCOME_LOST_SECS: i64 = 3600;

/// What one purchase housekeeping round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PurchasesTidied {
    pub expired: u64,
    /// Purchases whose callback bound a code but never recorded its outcome (the process died in
    /// between), moved on from their code's exchange.
    pub settled: u64,
    pub purged: u64,
    pub keys_forgotten: u64,
}

impl TokenStore {
    /// The uuid MondiaPay itself named for `reference`: from a notification about one of its
    /// purchases (`uuid_confirmed`), the newest if several. A redirect's `uuid` is not that.
    pub async fn confirmed_uuid(&self, reference: &str) -> Result<Option<String>, StoreError> {
        let sql = "SELECT uuid FROM purchases WHERE ref = $1 AND uuid_confirmed = TRUE \
                   AND uuid IS NOT NULL ORDER BY updated_at DESC LIMIT 1";
        let row: Option<(String,)> = self
            .pool()
            .fetch_optional(sql.to_owned(), reference)
            .await?;
        Ok(row.map(|(uuid,)| uuid))
    }

    /// Claims `key` for `new` (a `preparing` row held for `lease_secs` of the database's clock),
    /// atomically across replicas; or finds the purchase the key already names. A key older than
    /// 24 hours is forgotten first.
    pub async fn claim_idempotency_key(
        &self,
        key: &str,
        request_hash: &str,
        new: &NewPurchase,
        lease_secs: i64,
    ) -> Result<KeyClaim, StoreError> {
        let (key_owned, hash, new) = (key.to_owned(), request_hash.to_owned(), new.clone());
        let now = now_unix();
        // The claim is on disk before MondiaPay is called: durable when the write returns.
        let claimed = match &self.backend {
            Backend::Sqlite(sqlite) => {
                sqlite
                    .writer
                    .write(move |db| {
                        // One savepoint: the old key is forgotten only if the claim stands.
                        writer::prepare(db, FORGET_OLD_KEY)?
                            .execute(rusqlite::params![key_owned, now - IDEMPOTENCY_KEY_SECS])?;
                        let inserted =
                            writer::prepare(db, CLAIM_KEY_SQLITE)?.execute(rusqlite::params![
                                new.id,
                                new.reference,
                                new.subscription_type_id,
                                key_owned,
                                hash,
                                lease_secs,
                                now
                            ])?;
                        Ok(inserted == 1)
                    })
                    .await?
            }
            Backend::Postgres(_) => {
                self.to_completion(move |store| async move {
                    let inserted = {
                        let pool = store.postgres();

                        let mut tx = pool.begin().await?;
                        sqlx::query(FORGET_OLD_KEY)
                            .bind(&key_owned)
                            .bind(now - IDEMPOTENCY_KEY_SECS)
                            .execute(&mut *tx)
                            .await?;
                        let inserted = sqlx::query(CLAIM_KEY_POSTGRES)
                            .bind(&new.id)
                            .bind(new.reference.as_deref())
                            .bind(new.subscription_type_id)
                            .bind(&key_owned)
                            .bind(&hash)
                            .bind(lease_secs)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        tx.commit().await?;
                        inserted
                    };
                    Ok(inserted == 1)
                })
                .await?
            }
        };
        if claimed {
            return Ok(KeyClaim::Claimed);
        }
        let sql = format!("SELECT {COLUMNS} FROM purchases WHERE idempotency_key = $1");
        let row: Option<PurchaseRow> = self.pool().fetch_optional(sql, key).await?;
        match row {
            Some(row) => {
                let (purchase, hash) = row.into_purchase()?;
                Ok(KeyClaim::Taken(Box::new(purchase), hash))
            }
            // Released (its Prepare Purchase failed) since: the caller claims again.
            None => Ok(KeyClaim::Released),
        }
    }

    /// Takes over a `preparing` purchase whose lease ran out (its process died): true if this
    /// caller now holds it.
    pub async fn take_over_purchase(&self, id: &str, lease_secs: i64) -> Result<bool, StoreError> {
        let id = id.to_owned();
        let taken = match &self.backend {
            Backend::Sqlite(sqlite) => {
                sqlite
                    .writer
                    .write(move |db| {
                        Ok(writer::prepare(db, TAKE_OVER_SQLITE)?
                            .execute(rusqlite::params![id, lease_secs])?
                            as u64)
                    })
                    .await?
            }
            Backend::Postgres(_) => {
                self.to_completion(move |store| async move {
                    let taken = {
                        let pool = store.postgres();
                        sqlx::query(TAKE_OVER_POSTGRES)
                            .bind(&id)
                            .bind(lease_secs)
                            .execute(pool)
                            .await?
                            .rows_affected()
                    };
                    Ok(taken)
                })
                .await?
            }
        };
        Ok(taken == 1)
    }

    /// Stores a prepared purchase: the claimed `preparing` row becomes `started`, or (without an
    /// `Idempotency-Key`) a new row is inserted. Durable when this returns.
    pub async fn store_started_purchase(
        &self,
        new: &NewPurchase,
        claimed: bool,
        purchase_token: &str,
        redirect_url: &str,
        ttl_secs: i64,
    ) -> Result<Purchase, StoreError> {
        let (new, token, url) = (
            new.clone(),
            purchase_token.to_owned(),
            redirect_url.to_owned(),
        );
        let id = new.id.clone();
        let now = now_unix();
        let sql = if claimed { START_CLAIMED } else { START_NEW };
        let written = match &self.backend {
            Backend::Sqlite(sqlite) => {
                sqlite
                    .writer
                    .write(move |db| {
                        // SQLite refuses parameters a statement does not number: the update
                        // has five.
                        let mut statement = writer::prepare(db, sql)?;
                        let written = if claimed {
                            statement.execute(rusqlite::params![
                                new.id,
                                token,
                                url,
                                now,
                                now.saturating_add(ttl_secs)
                            ])
                        } else {
                            statement.execute(rusqlite::params![
                                new.id,
                                token,
                                url,
                                now,
                                now.saturating_add(ttl_secs),
                                new.reference,
                                new.subscription_type_id
                            ])
                        };
                        Ok(written.map_err(purchase_token_taken)? as u64)
                    })
                    .await?
            }
            Backend::Postgres(_) => {
                self.to_completion(move |store| async move {
                    let written = {
                        let pool = store.postgres();
                        sqlx::query(sql)
                            .bind(&new.id)
                            .bind(&token)
                            .bind(&url)
                            .bind(now)
                            .bind(now.saturating_add(ttl_secs))
                            .bind(new.reference.as_deref())
                            .bind(new.subscription_type_id)
                            .execute(pool)
                            .await
                            .map_err(|error| match &error {
                                sqlx::Error::Database(db) if db.is_unique_violation() => {
                                    StoreError::PurchaseTokenTaken
                                }
                                _ => StoreError::from(error),
                            })?
                            .rows_affected()
                    };
                    Ok(written)
                })
                .await?
            }
        };
        if written != 1 {
            // The claim was taken over after its lease: the other holder's purchase stands.
            return Err(StoreError::OutcomeMissing);
        }
        self.purchase(&id).await?.ok_or(StoreError::OutcomeMissing)
    }

    /// Releases a claimed key whose Prepare Purchase failed: the same key may be tried again.
    pub async fn release_purchase_claim(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        match &self.backend {
            Backend::Sqlite(sqlite) => {
                sqlite
                    .writer
                    .write(move |db| {
                        writer::prepare(db, RELEASE_CLAIM)?.execute([id])?;
                        Ok(())
                    })
                    .await
            }
            Backend::Postgres(_) => {
                self.to_completion(move |store| async move {
                    {
                        let pool = store.postgres();
                        sqlx::query(RELEASE_CLAIM)
                            .bind(&id)
                            .execute(pool)
                            .await
                            .map(drop)
                    }?;
                    Ok(())
                })
                .await
            }
        }
    }

    /// The purchase `id`, in whatever state. No wait for a sync: on SQLite every write to
    /// purchases goes through the writer thread, whose commits readers see only once synced.
    pub async fn purchase(&self, id: &str) -> Result<Option<Purchase>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM purchases WHERE id = $1");
        let row: Option<PurchaseRow> = self.pool().fetch_optional(sql, id).await?;
        row.map(|row| row.into_purchase().map(|(purchase, _)| purchase))
            .transpose()
    }

    /// The purchases for `reference`, newest first, at most `limit` (none still `preparing`). No
    /// wait for a sync, as for `purchase`.
    pub async fn purchases_for_ref(
        &self,
        reference: &str,
        limit: i64,
    ) -> Result<Vec<Purchase>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM purchases WHERE ref = $1 AND state <> 'preparing' \
             ORDER BY created_at DESC, {} DESC LIMIT $2",
            self.pool().newest_first()
        );
        let rows: Vec<PurchaseRow> = on_pool!(self.pool(), pool => sqlx::query_as(AssertSqlSafe(sql))
            .bind(reference).bind(limit).fetch_all(pool).await?);
        rows.into_iter()
            .map(|row| row.into_purchase().map(|(p, _)| p))
            .collect()
    }

    /// Binds the code (its keyed hash) of the callback that ends a `started` purchase, if it is
    /// still waiting at `now`; a failure redirect without a code ends it as `purchase_failed`
    /// at once. False: someone else bound it first, or it expired.
    pub async fn bind_purchase_code(
        &self,
        id: &str,
        code_hash: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (id, code_hash) = (id.to_owned(), code_hash.map(str::to_owned));
        let bound = match &self.backend {
            Backend::Sqlite(sqlite) => {
                sqlite
                    .writer
                    .write(move |db| {
                        Ok(writer::prepare(db, BIND_CODE)?
                            .execute(rusqlite::params![id, code_hash, now])?
                            as u64)
                    })
                    .await?
            }
            Backend::Postgres(_) => {
                self.to_completion(move |store| async move {
                    let bound = {
                        let pool = store.postgres();
                        sqlx::query(BIND_CODE)
                            .bind(&id)
                            .bind(code_hash.as_deref())
                            .bind(now)
                            .execute(pool)
                            .await?
                            .rows_affected()
                    };
                    Ok(bound)
                })
                .await?
            }
        };
        // Nothing written: another callback bound it first.
        Ok(bound == 1)
    }

    /// Records what the callback ended in: the state, and for a success the token and the
    /// redirect's uuid (unless a notification confirmed one already). A succeeded purchase stays
    /// succeeded.
    pub async fn settle_purchase(&self, id: &str, outcome: &NewCallback) -> Result<(), StoreError> {
        let id = id.to_owned();
        let state = PurchaseState::after(outcome.kind);
        let (token_id, uuid, error) = (
            outcome.token_id.clone(),
            outcome.uuid.clone(),
            outcome.error.clone(),
        );
        let now = now_unix();
        match &self.backend {
            Backend::Sqlite(sqlite) => {
                sqlite
                    .writer
                    .write(move |db| {
                        writer::prepare(db, SETTLE)?.execute(rusqlite::params![
                            id,
                            state.as_str(),
                            token_id,
                            uuid,
                            error,
                            now
                        ])?;
                        Ok(())
                    })
                    .await
            }
            Backend::Postgres(_) => {
                self.to_completion(move |store| async move {
                    {
                        let pool = store.postgres();
                        sqlx::query(SETTLE)
                            .bind(&id)
                            .bind(state.as_str())
                            .bind(token_id.as_deref())
                            .bind(uuid.as_deref())
                            .bind(error.as_deref())
                            .bind(now)
                            .execute(pool)
                            .await
                            .map(drop)
                    }?;
                    Ok(())
                })
                .await
            }
        }
    }

    /// Housekeeping: `started` purchases past `expires_at` become `expired` (not one whose
    /// callback is under way: its code is bound); purchases last
    /// touched before `cutoff` are deleted (none still waiting for a callback); keys older than
    /// 24 hours are forgotten; `preparing` claims whose process died long ago are dropped.
    pub async fn tidy_purchases(&self, cutoff: i64) -> Result<PurchasesTidied, StoreError> {
        let now = now_unix();
        let (lost, old) = (now - OUTCOME_LOST_SECS, now - IDEMPOTENCY_KEY_SECS);
        match &self.backend {
            Backend::Sqlite(sqlite) => {
                sqlite
                    .writer
                    .write(move |db| {
                        let run = |sql, params: &[&dyn rusqlite::ToSql]| {
                            writer::prepare(db, sql)?.execute(params).map(|n| n as u64)
                        };
                        // One savepoint: all of it, or none.
                        let expired = run(EXPIRE, &[&now])?;
                        let settled = run(SETTLE_LOST, &[&now, &lost])?;
                        let purged = run(PURGE, &[&cutoff])?;
                        let abandoned = run(DROP_ABANDONED, &[&old])?;
                        let keys_forgotten = run(FORGET_OLD_KEYS, &[&old])?;
                        Ok(PurchasesTidied {
                            expired,
                            settled,
                            purged: purged + abandoned,
                            keys_forgotten,
                        })
                    })
                    .await
            }
            Backend::Postgres(_) => {
                self.to_completion(move |store| async move {
                    let tidied = {
                        let pool = store.postgres();

                        let mut tx = pool.begin().await?;
                        let expired = sqlx::query(EXPIRE)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        let settled = sqlx::query(SETTLE_LOST)
                            .bind(now)
                            .bind(lost)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        let purged = sqlx::query(PURGE)
                            .bind(cutoff)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        let abandoned = sqlx::query(DROP_ABANDONED)
                            .bind(old)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        let keys_forgotten = sqlx::query(FORGET_OLD_KEYS)
                            .bind(old)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        tx.commit().await?;
                        PurchasesTidied {
                            expired,
                            settled,
                            purged: purged + abandoned,
                            keys_forgotten,
                        }
                    };
                    Ok(tidied)
                })
                .await
            }
        }
    }
}
