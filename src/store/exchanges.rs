//! The exchange of each code: claimed before MondiaPay is called, completed with its verdict.

use std::sync::Arc;

use sqlx::AssertSqlSafe;

use super::now_unix;

use super::callbacks::{record_in_postgres, trim_all_on_postgres};
use super::rows::{ClaimRow, ExchangeStateRow, sqlite as sqlite_rows};
use super::tokens::NewToken;
use super::{Backend, Claim, ExchangeRow, ReplayKey, StoreError, TokenStore, writer};
use crate::crypto::{CodeHash, time_ordered_id};
use crate::domain::{
    CallbackOutcome, ExchangeState, NewCallback, Owner, TokenRecord, UpstreamError, UserToken,
};
use rusqlite::OptionalExtension;

/// The claim, with `$NOW` for the database's clock. The lease is taken and compared on that one
/// clock: replicas whose own clocks disagree cannot both hold a code. The first claim's `ref`
/// and `uuid` stay on the row, and are what a claim returns: a code's token belongs to the
/// request that first claimed the code, not to whoever replays it after a failed attempt.
///
/// The first claim also names the key the code's callback outcome is recorded under
/// (`outcome_key`, `$OUTCOME_KEY`), which later claims keep.
macro_rules! claim {
    ($now:literal, $outcome_key:literal) => {
        concat!(
            "INSERT INTO exchanges (code_hash, state, lease_until, attempt, ref, uuid, outcome_key, \
                 created_at, updated_at) \
             VALUES ($1, 'pending', ", $now, " + $2, 1, $3, $4, ", $outcome_key, ", \
                 ", $now, ", ", $now, ") \
             ON CONFLICT (code_hash) DO UPDATE SET state = 'pending', lease_until = excluded.lease_until, \
                 attempt = exchanges.attempt + 1, updated_at = excluded.updated_at \
             WHERE exchanges.state = 'failed' \
                 OR (exchanges.state = 'pending' AND exchanges.lease_until <= excluded.updated_at) \
             RETURNING attempt, ref, uuid"
        )
    };
}

/// On SQLite a new time-ordered key (`$5`), or the code's hash when an outcome was recorded
/// under it before the code had an exchange (no room for one, say), so that the final outcome
/// replaces that one.
const CLAIM_SQLITE: &str = claim!(
    "unixepoch()",
    "CASE WHEN EXISTS (SELECT 1 FROM callbacks WHERE replay_key = $1) THEN $1 ELSE $5 END"
);
/// On PostgreSQL the code's hash, as before `outcome_key`: a replica recording an outcome for a
/// code that has no exchange yet and another claiming the code do not see each other's
/// uncommitted rows, and only a shared key makes the unique index order them. (SQLite's one
/// writer runs them in turn.)
const CLAIM_POSTGRES: &str = claim!("CAST(FLOOR(EXTRACT(EPOCH FROM now())) AS BIGINT)", "$1");

impl TokenStore {
    /// Claims `code` for one exchange, atomically, also across replicas: a new code, a code
    /// whose last exchange got no usable answer, or a code whose claim outlived its lease (its
    /// process died). Anything else is `Taken`. The claim holds for `lease_secs` seconds of
    /// the database's clock.
    pub async fn claim(
        &self,
        code: &CodeHash,
        owner: &Owner,
        lease_secs: i64,
    ) -> Result<Claim, StoreError> {
        self.ensure_room()?;
        let (code_hash, owner) = (code.clone(), owner.clone());
        if let Backend::Sqlite(sqlite) = &self.backend {
            let outcome_key = new_outcome_key();
            // The claim is on disk before MondiaPay sees the code; a code taken already is read
            // in the same write, with its callback's outcome.
            return sqlite
                .writer
                .write(move |db| {
                    let claimed = writer::prepare(db, CLAIM_SQLITE)?
                        .query_row(
                            rusqlite::params![
                                code_hash.as_str(),
                                lease_secs,
                                owner.reference,
                                owner.uuid,
                                outcome_key
                            ],
                            sqlite_rows::claim,
                        )
                        .optional()?;
                    if let Some(row) = claimed {
                        return Ok(Claim::Claimed {
                            attempt: row.attempt,
                            owner: Owner::from(row.owner),
                        });
                    }
                    let row = writer::prepare(db, EXCHANGE)?
                        .query_row([code_hash.as_str()], sqlite_rows::exchange_state)
                        .optional()?
                        .map(exchange_row)
                        .transpose()?;
                    let callback =
                        super::callbacks::outcome_for_code_on_sqlite(db, code_hash.as_str())?;
                    Ok(Claim::Taken(taken(row, callback)))
                })
                .await;
        }
        let claimed = self
            .to_completion(move |store| async move {
                // An explicit transaction: with `RETURNING`, PostgreSQL's answer is seen to
                // commit before the code goes out.
                let mut tx = store.postgres().begin().await?;
                let row = sqlx::query_as::<_, ClaimRow>(CLAIM_POSTGRES)
                    .bind(code_hash.as_str())
                    .bind(lease_secs)
                    .bind(owner.reference.as_deref())
                    .bind(owner.uuid.as_deref())
                    .fetch_optional(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(row.map(|row| (row.attempt, Owner::from(row.owner))))
            })
            .await?;
        if let Some((attempt, owner)) = claimed {
            return Ok(Claim::Claimed { attempt, owner });
        }
        let row = self.exchange(code).await?;
        let callback = self.callback_for(&ReplayKey::exchange(code)).await?;
        Ok(Claim::Taken(taken(row, callback)))
    }

    pub async fn exchange(&self, code: &CodeHash) -> Result<Option<ExchangeRow>, StoreError> {
        let row = self
            .pool()
            .fetch_optional(EXCHANGE.to_owned(), code.as_str())
            .await?;
        row.map(exchange_row).transpose()
    }

    /// Records MondiaPay's verdict on a code this caller claimed (`attempt`) and, for a browser
    /// callback, the callback's outcome (`callback`), in one write: when this returns, all of it
    /// is durable. A token is stored sealed under its record's id and marks the code succeeded,
    /// whatever happened to the claim meanwhile (success is final); a rejection or a release ends
    /// only the claim that made the attempt. Returns the callback's outcome that stands.
    pub async fn settle(
        &self,
        code: &CodeHash,
        attempt: i64,
        verdict: &Verdict,
        callback: Option<&NewCallback>,
    ) -> Result<Option<CallbackOutcome>, StoreError> {
        let key = ReplayKey::exchange(code);
        let recording = callback.map(|new| self.recording(Some(&key), new));
        let claim = ClaimKey {
            table: ClaimTable::Exchanges,
            key: code.as_str().to_owned(),
            attempt,
        };
        let write = match verdict {
            Verdict::Issued(record) => VerdictWrite::Token(self.new_token(record, code.as_str())),
            Verdict::Rejected(error) => VerdictWrite::Claim(Finish::new(
                claim,
                ExchangeState::Rejected.as_str(),
                None,
                Some(error),
            )),
            // No verdict: the claim is released, a later request may try the code again.
            Verdict::Released => VerdictWrite::Claim(Finish::new(
                claim,
                ExchangeState::Failed.as_str(),
                None,
                None,
            )),
        };
        // Taken before the token is visible: a deletion of it from then on keeps it out of the
        // cache.
        let generation = self.cache().map(|cache| cache.generation());
        let recorded = match &self.backend {
            Backend::Sqlite(sqlite) => {
                sqlite
                    .writer
                    .write(move |db| {
                        write.on_sqlite(db)?;
                        recording
                            .as_ref()
                            .map(|recording| super::callbacks::record_on_sqlite(db, recording))
                            .transpose()
                    })
                    .await?
            }
            Backend::Postgres(_) => {
                let recorded = self
                    .to_completion(move |store| async move {
                        let pool = store.postgres();
                        let mut tx = pool.begin().await?;
                        write.in_postgres(&mut tx).await?;
                        let recorded = match &recording {
                            Some(recording) => record_in_postgres(&mut tx, recording).await?,
                            None => None,
                        };
                        tx.commit().await?;
                        if let Some(recording) = &recording {
                            trim_all_on_postgres(pool, recording, recorded.as_ref()).await;
                        }
                        Ok(recorded)
                    })
                    .await?;
                match (recorded, callback) {
                    (Some(recorded), _) => Some(recorded),
                    // The outcome for this code was already final: that one stands.
                    (None, Some(_)) => Some(self.standing_outcome(&key).await?),
                    (None, None) => None,
                }
            }
        };
        if let (Verdict::Issued(record), Some(cache), Some(generation)) =
            (verdict, self.cache(), generation)
        {
            cache.put(Arc::new(record.clone()), generation);
        }
        Ok(recorded)
    }

    /// A record for a token MondiaPay just issued to `owner`, under a new id.
    pub fn issued_record(&self, token: &UserToken, owner: &Owner) -> TokenRecord {
        TokenRecord::issued(new_token_id(), token, owner, now_unix())
    }

    /// Ends the claim `claim` in `state`, naming its token or MondiaPay's error, if the claim
    /// still holds: only the claim that made the attempt may finish it.
    pub(super) async fn finish_claim(
        &self,
        claim: ClaimKey,
        state: &'static str,
        token_id: Option<&str>,
        error: Option<&UpstreamError>,
    ) -> Result<(), StoreError> {
        let finish = Finish::new(claim, state, token_id, error);
        match &self.backend {
            Backend::Sqlite(sqlite) => sqlite.writer.write(move |db| finish.on_sqlite(db)).await,
            Backend::Postgres(_) => {
                self.to_completion(move |store| async move {
                    let mut connection = store.postgres().acquire().await?;
                    finish.in_postgres(&mut connection).await
                })
                .await
            }
        }
    }
}

/// What MondiaPay's answer to a claimed code leaves behind.
pub enum Verdict {
    /// A token, stored under this record.
    Issued(TokenRecord),
    /// MondiaPay's final rejection of the code.
    Rejected(UpstreamError),
    /// No usable verdict: the code may be tried again.
    Released,
}

/// A verdict's own write: the token (which marks its exchange succeeded, migration 4), or the
/// claim's end.
enum VerdictWrite {
    Token(NewToken),
    Claim(Finish),
}

impl VerdictWrite {
    fn on_sqlite(&self, db: &rusqlite::Connection) -> Result<(), StoreError> {
        match self {
            Self::Token(token) => token.on_sqlite(db),
            Self::Claim(finish) => finish.on_sqlite(db),
        }
    }

    async fn in_postgres(&self, db: &mut sqlx::PgConnection) -> Result<(), StoreError> {
        match self {
            Self::Token(token) => token.in_postgres(db).await,
            Self::Claim(finish) => finish.in_postgres(db).await,
        }
    }
}

/// The end of a leased claim, ready to write (see `TokenStore::finish_claim`).
pub(super) struct Finish {
    sql: String,
    claim: ClaimKey,
    state: &'static str,
    token_id: Option<String>,
    error_code: Option<String>,
    http_status: Option<i64>,
    now: i64,
}

impl Finish {
    fn new(
        claim: ClaimKey,
        state: &'static str,
        token_id: Option<&str>,
        error: Option<&UpstreamError>,
    ) -> Self {
        let (table, key_column) = match claim.table {
            ClaimTable::Exchanges => ("exchanges", "code_hash"),
            ClaimTable::Renewals => ("renewals", "uuid"),
        };
        Self {
            sql: format!(
                "UPDATE {table} SET state = $3, lease_until = NULL, token_id = $4, error = $5, \
                     http_status = $6, updated_at = $7 \
                 WHERE {key_column} = $1 AND attempt = $2 AND state = 'pending'"
            ),
            claim,
            state,
            token_id: token_id.map(str::to_owned),
            // MondiaPay's error code and status only: its free-text `message` may carry
            // anything (even what was sent to it) and is never stored.
            error_code: error.map(|e| e.error.clone()),
            http_status: error.map(|e| i64::from(e.http_status)),
            now: now_unix(),
        }
    }

    fn on_sqlite(&self, db: &rusqlite::Connection) -> Result<(), StoreError> {
        writer::prepare(db, &self.sql)?.execute(rusqlite::params![
            self.claim.key,
            self.claim.attempt,
            self.state,
            self.token_id,
            self.error_code,
            self.http_status,
            self.now
        ])?;
        Ok(())
    }

    async fn in_postgres(&self, db: &mut sqlx::PgConnection) -> Result<(), StoreError> {
        sqlx::query(AssertSqlSafe(self.sql.clone()))
            .bind(&self.claim.key)
            .bind(self.claim.attempt)
            .bind(self.state)
            .bind(self.token_id.as_deref())
            .bind(self.error_code.as_deref())
            .bind(self.http_status)
            .bind(self.now)
            .execute(db)
            .await?;
        Ok(())
    }
}

/// The tables of leased claims: a code's exchange, a user's renewal.
#[derive(Debug, Clone, Copy)]
pub(super) enum ClaimTable {
    Exchanges,
    Renewals,
}

/// One claim: its table, its key there (a code's keyed hash, a uuid) and its attempt.
pub(super) struct ClaimKey {
    pub table: ClaimTable,
    pub key: String,
    pub attempt: i64,
}

const EXCHANGE: &str = "SELECT state, lease_until, token_id, error, http_status FROM exchanges \
                        WHERE code_hash = $1";

/// A code found taken: its exchange, and its callback's outcome. Should the row have vanished
/// since the claim did nothing, the caller sees a released code and claims again.
fn taken(row: Option<ExchangeRow>, callback: Option<CallbackOutcome>) -> ExchangeRow {
    let mut row = row.unwrap_or(ExchangeRow {
        state: ExchangeState::Failed,
        lease_until: None,
        token_id: None,
        rejection: None,
        callback: None,
    });
    row.callback = callback.map(Box::new);
    row
}

fn exchange_row(row: ExchangeStateRow) -> Result<ExchangeRow, StoreError> {
    let http_status = row.http_status;
    Ok(ExchangeRow {
        state: ExchangeState::parse(&row.state)?,
        lease_until: row.lease_until,
        token_id: row.token_id,
        rejection: row.error.map(|error| UpstreamError {
            http_status: u16::try_from(http_status.unwrap_or_default()).unwrap_or_default(),
            error,
            message: None,
        }),
        callback: None,
    })
}

/// The key a new exchange's callback outcome is recorded under: `out_` and the time first, so
/// that recording outcomes appends to the replay index (see `CLAIM_SQLITE`).
fn new_outcome_key() -> String {
    time_ordered_id("out_")
}

/// `tok_`, the time and 128 random bits, URL-safe (see `time_ordered_id`): unguessable, so an
/// id alone reveals nothing.
pub fn new_token_id() -> String {
    time_ordered_id("tok_")
}

#[cfg(test)]
mod tests {
    use super::*;

    // The id's form is `crypto::time_ordered_id`'s, tested there.
    #[test]
    fn token_ids_carry_their_prefix() {
        assert!(new_token_id().starts_with("tok_"));
    }

    use crate::domain::{Code, OutcomeKind, UnavailableCause};
    use crate::store::Pool;

    async fn sqlite_store() -> (tempfile::TempDir, TokenStore) {
        let dir = tempfile::tempdir().unwrap();
        let backend = crate::settings::StoreBackend::Sqlite {
            path: dir.path().join("tokens.db"),
        };
        let store = TokenStore::open(&backend, crate::crypto::Keyring::new(&[9; 32]))
            .await
            .unwrap();
        (dir, store)
    }

    /// A callback's outcome when MondiaPay gave no answer: the user is asked to try again.
    fn unavailable() -> NewCallback {
        NewCallback {
            kind: OutcomeKind::Unavailable,
            cause: Some(UnavailableCause::NoAnswer),
            request_id: "req".into(),
            reference: None,
            uuid: None,
            status: None,
            error: None,
            token_id: None,
        }
    }

    /// Claims `code` and releases the claim as MondiaPay gave no answer: the callback's outcome
    /// asks the user to try again.
    async fn claim_and_release(store: &TokenStore, code: &CodeHash) -> CallbackOutcome {
        let Claim::Claimed { attempt, .. } =
            store.claim(code, &Owner::default(), 60).await.unwrap()
        else {
            panic!("not claimed")
        };
        store
            .settle(code, attempt, &Verdict::Released, Some(&unavailable()))
            .await
            .unwrap()
            .expect("the callback's outcome")
    }

    /// Callbacks' outcomes are recorded under their codes' exchanges' time-ordered keys, in the
    /// order of the claims, never under the codes' random hashes.
    #[tokio::test]
    async fn outcomes_are_recorded_under_time_ordered_keys() {
        let (_dir, store) = sqlite_store().await;
        let mut hashes = Vec::new();
        for code in ["Azulu", "Aalpha", "Amike"] {
            let code = store.keys().hash_code(&Code::parse(code, "A").unwrap());
            claim_and_release(&store, &code).await;
            hashes.push(code.as_str().to_owned());
            // Apart by a millisecond at least: the keys' order is the claims'.
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let Pool::Sqlite(pool) = store.pool() else {
            unreachable!("a SQLite store")
        };
        let keys: Vec<String> =
            sqlx::query_scalar("SELECT replay_key FROM callbacks ORDER BY rowid")
                .fetch_all(pool)
                .await
                .unwrap();
        assert_eq!(keys.len(), 3);
        assert!(
            keys.iter()
                .all(|key| key.starts_with("out_") && !hashes.contains(key)),
            "{keys:?}"
        );
        assert!(keys.is_sorted(), "{keys:?}");
        store.close().await;
    }

    /// An exchange whose outcome is still stored outlives the retention period with it: it is
    /// how the code finds that outcome, and the verdict of a later claim finishes it.
    #[tokio::test]
    async fn the_purge_keeps_an_exchange_while_its_outcome_is_stored() {
        let (dir, store) = sqlite_store().await;
        let code = store.keys().hash_code(&Code::parse("Aaged", "A").unwrap());
        let released = claim_and_release(&store, &code).await;
        // The outcome was touched later than its exchange (a retry refused for want of room for
        // another exchange refreshes it): the exchange is past the cutoff, the outcome is not.
        rusqlite::Connection::open(dir.path().join("tokens.db"))
            .unwrap()
            .execute("UPDATE exchanges SET updated_at = updated_at - 100", [])
            .unwrap();
        let purged = store.purge(now_unix() - 50).await.unwrap();
        assert_eq!((purged.exchanges, purged.callbacks), (0, 0));
        let Claim::Claimed { attempt, .. } =
            store.claim(&code, &Owner::default(), 60).await.unwrap()
        else {
            panic!("not claimed again")
        };
        let rejected = store
            .settle(
                &code,
                attempt,
                &Verdict::Rejected(UpstreamError::invalid_grant()),
                Some(&NewCallback {
                    kind: OutcomeKind::CodeRejected,
                    cause: None,
                    error: Some("invalid_grant".into()),
                    ..unavailable()
                }),
            )
            .await
            .unwrap()
            .expect("the callback's outcome");
        assert_eq!(
            (rejected.id.as_str(), rejected.outcome.kind),
            (released.id.as_str(), OutcomeKind::CodeRejected)
        );
        // Once the outcome goes, its exchange goes with it.
        let purged = store.purge(now_unix() + 1).await.unwrap();
        assert_eq!((purged.exchanges, purged.callbacks), (1, 1));
        store.close().await;
    }
}
