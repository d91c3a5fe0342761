//! The store's migrations carry what an earlier version recorded: a database left by that
//! version, written with its own SQL, still shows every result page as it did. And a row this
//! version cannot read is a fault it answers as one (`500`), never a guess nor a panic.

use base64::Engine;
use mondiapay_token_proxy::crypto::Keyring;
use mondiapay_token_proxy::domain::Code;
use reqwest::StatusCode;
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AssertSqlSafe, PgPool, SqlitePool};

use crate::helpers::*;
use crate::postgres::PgCluster;

/// The last schema that kept the result page's HTTP status (`page_status`) in the store.
const WITH_PAGE_STATUS: i64 = 5;

/// Outcomes as that schema recorded them, and the status their result page answers.
const RECORDED_BEFORE: &[(&str, &str, i64, StatusCode)] = &[
    (
        "res_timed_out",
        "unavailable",
        504,
        StatusCode::GATEWAY_TIMEOUT,
    ),
    ("res_no_answer", "unavailable", 502, StatusCode::BAD_GATEWAY),
    (
        "res_rejected",
        "code_rejected",
        400,
        StatusCode::BAD_REQUEST,
    ),
    ("res_succeeded", "succeeded", 200, StatusCode::OK),
    ("res_failed", "purchase_failed", 200, StatusCode::OK),
];

async fn migrations(backend: &str) -> Migrator {
    let dir = format!("{}/migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
    Migrator::new(std::path::Path::new(&dir)).await.unwrap()
}

/// Unix time now, as the store records it.
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A new SQLite file for an earlier version's database, and a pool on it.
async fn earlier_sqlite_database(dir: &tempfile::TempDir) -> (std::path::PathBuf, SqlitePool) {
    let path = dir.path().join("earlier.db");
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let db = SqlitePool::connect_with(options).await.unwrap();
    (path, db)
}

/// `RECORDED_BEFORE` as that version's insert wrote them: SQL both databases take.
fn recorded_the_old_way() -> AssertSqlSafe<String> {
    let now = now();
    AssertSqlSafe(
        RECORDED_BEFORE
            .iter()
            .map(|(id, outcome, page_status, _)| {
                format!(
                    "INSERT INTO callbacks (id, replay_key, outcome, page_status, request_id, ref, \
                     created_at, updated_at) \
                     VALUES ('{id}', '{id}', '{outcome}', {page_status}, 'req-old', 'ORDER-OLD', \
                     {now}, {now});"
                )
            })
            .collect(),
    )
}

/// Brings `db` to the schema that kept `page_status`, and records there what that version did.
async fn record_the_old_way<DB: sqlx::Database>(backend: &str, db: &sqlx::Pool<DB>)
where
    DB::Connection: sqlx::migrate::Migrate,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let migrations = migrations(backend).await;
    migrations.run_to(WITH_PAGE_STATUS, db).await.unwrap();
    sqlx::raw_sql(recorded_the_old_way())
        .execute(db)
        .await
        .unwrap();
}

/// Every page recorded before answers with the status it had, and the list still has them all.
async fn assert_pages_as_before(app: &TestApp) {
    for (id, _, _, status) in RECORDED_BEFORE {
        let page = app.browser_get(&format!("/oauth/result/{id}")).await;
        assert_eq!(page.status(), *status, "{id}");
    }
    let listed = app.callbacks("ORDER-OLD").await;
    assert_eq!(listed.as_array().unwrap().len(), RECORDED_BEFORE.len());
}

/// What the migration made of the old `page_status`: the cause of each `unavailable` outcome.
const CAUSES: &str = "SELECT id, cause FROM callbacks WHERE outcome = 'unavailable' ORDER BY id";

fn assert_causes(causes: &[(String, Option<String>)]) {
    let expected = [
        ("res_no_answer", "no_answer"),
        ("res_timed_out", "timed_out"),
    ];
    let causes: Vec<_> = causes
        .iter()
        .map(|(id, cause)| (id.as_str(), cause.as_deref().unwrap_or("NULL")))
        .collect();
    assert_eq!(causes, expected);
}

#[tokio::test]
async fn outcomes_recorded_with_their_page_status_show_the_same_page_after_the_upgrade_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (path, db) = earlier_sqlite_database(&dir).await;
    record_the_old_way("sqlite", &db).await;
    db.close().await;

    let url = format!("sqlite://{}", path.display());
    let app = spawn_app_with(&format!("STORE__URL={url}")).await;
    assert_pages_as_before(&app).await;

    let db = SqlitePool::connect(&url).await.unwrap();
    assert_causes(&sqlx::query_as(CAUSES).fetch_all(&db).await.unwrap());
    assert_page_status_dropped(
        sqlx::query("SELECT page_status FROM callbacks")
            .fetch_all(&db)
            .await,
    );
}

#[tokio::test]
async fn outcomes_recorded_with_their_page_status_show_the_same_page_after_the_upgrade_on_postgresql()
 {
    let cluster = PgCluster::start();
    let db = PgPool::connect(&cluster.url()).await.unwrap();
    record_the_old_way("postgres", &db).await;

    let app = spawn_app_with(&cluster.store_settings()).await;
    assert_pages_as_before(&app).await;

    assert_causes(&sqlx::query_as(CAUSES).fetch_all(&db).await.unwrap());
    assert_page_status_dropped(
        sqlx::query("SELECT page_status FROM callbacks")
            .fetch_all(&db)
            .await,
    );
}

#[tokio::test]
async fn a_stored_outcome_this_version_does_not_know_is_answered_as_a_fault() {
    let app = spawn_app().await;
    let url = format!("sqlite://{}/tokens.db", app.dir.path().display());
    let db = SqlitePool::connect(&url).await.unwrap();
    // A newer version's outcome, a cause no version wrote, and an unavailable outcome without
    // its cause.
    sqlx::raw_sql(
        "INSERT INTO callbacks (id, replay_key, outcome, cause, request_id, ref, created_at, \
             updated_at) \
         VALUES ('res_newer', 'res_newer', 'refunded', NULL, 'req', 'ORDER-NEW', unixepoch(), \
             unixepoch()), \
         ('res_odd', 'res_odd', 'unavailable', 'overloaded', 'req', 'ORDER-NEW', unixepoch(), \
             unixepoch()), \
         ('res_causeless', 'res_causeless', 'unavailable', NULL, 'req', 'ORDER-NEW', \
             unixepoch(), unixepoch())",
    )
    .execute(&db)
    .await
    .unwrap();

    let listed = app.get("/v1/callbacks?ref=ORDER-NEW").await;
    assert_eq!(listed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(listed.headers().get("retry-after").is_none());
    let problem = json(listed).await;
    assert_problem_kind(&problem, "internal");
    assert!(!problem.to_string().contains("refunded"), "{problem}");
    for id in ["res_newer", "res_odd", "res_causeless"] {
        let page = app.browser_get(&format!("/oauth/result/{id}")).await;
        assert_eq!(page.status(), StatusCode::INTERNAL_SERVER_ERROR, "{id}");
        assert!(page.text().await.unwrap().contains("try again"), "{id}");
    }
    // The rows this version knows are served as before.
    let (_, status, _) = app
        .callback_page("error=INSUFFICIENT_FUNDS&ref=ORDER-NEW")
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// The old column is gone: reading it fails for that reason, not another.
fn assert_page_status_dropped<T>(read: Result<T, sqlx::Error>) {
    let Err(error) = read else {
        panic!("page_status can still be read")
    };
    let error = error.to_string();
    assert!(
        error.contains("no such column") || error.contains("does not exist"),
        "{error}"
    );
}

/// The last schema under which a code's callback outcome was keyed by the code's hash, and
/// under which that hash was all 256 bits of the code's HMAC.
const WITH_HASH_KEYS: i64 = 9;

/// The master key the tests' services run with.
fn master_key() -> [u8; 32] {
    base64::engine::general_purpose::STANDARD
        .decode(ENCRYPTION_KEY)
        .unwrap()
        .try_into()
        .unwrap()
}

/// `code`'s hash as that version stored it: the whole HMAC-SHA256, in 64 hex digits, under the
/// key derived from the master key — written out here, apart from the service's own code.
fn full_code_hash(code: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let hmac = |key: &[u8], message: &[u8]| {
        let mut mac = <Hmac<sha2::Sha256>>::new_from_slice(key).unwrap();
        mac.update(message);
        mac.finalize().into_bytes()
    };
    let key = hmac(&master_key(), b"mondiapay-token-proxy/code-hash/v1");
    hmac(&key, code.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `code`'s hash as this version stores it.
fn code_hash(code: &str) -> String {
    Keyring::new(&master_key())
        .hash_code(&Code::parse(code, "").unwrap())
        .as_str()
        .to_owned()
}

/// A callback that succeeded under that schema, as that version wrote it: the code's exchange,
/// its token, and the outcome keyed by the code's hash (under `ENCRYPTION_KEY`). `sealed` is a
/// byte string literal in the backend's SQL.
fn succeeded_the_old_way(code: &str, sealed: &str) -> AssertSqlSafe<String> {
    let hash = full_code_hash(code);
    let now = now();
    let expires = now + 43_200;
    AssertSqlSafe(format!(
        "INSERT INTO exchanges (code_hash, state, attempt, token_id, ref, created_at, updated_at) \
         VALUES ('{hash}', 'succeeded', 1, 'tok_old', 'ORDER-HASHED', {now}, {now}); \
         INSERT INTO tokens (id, sealed, token_type, obtained_at, expires_at, ref, code_hash) \
         VALUES ('tok_old', {sealed}, 'bearer', {now}, {expires}, 'ORDER-HASHED', '{hash}'); \
         INSERT INTO callbacks (id, replay_key, outcome, request_id, ref, token_id, created_at, \
             updated_at) \
         VALUES ('res_hashed', '{hash}', 'succeeded', 'req-old', 'ORDER-HASHED', 'tok_old', {now}, \
             {now});"
    ))
}

/// The same callback again gets the outcome recorded before the upgrade: the same result page,
/// and no call of MondiaPay (the code is spent).
async fn assert_replayed_as_before(app: &TestApp, code: &str) {
    let query = format!("ref=ORDER-HASHED&code={code}&status=200");
    let (location, status, _) = app.callback_page(&query).await;
    assert!(location.ends_with("/oauth/result/res_hashed"), "{location}");
    assert_eq!(status, StatusCode::OK);
    assert!(app.mondiapay.calls().await.is_empty());
    assert_eq!(
        app.callbacks("ORDER-HASHED")
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// What the upgrade left of the code's hash in each place it was stored.
const STORED_HASHES: &str = "SELECT code_hash FROM exchanges UNION ALL \
     SELECT code_hash FROM tokens UNION ALL \
     SELECT replay_key FROM callbacks WHERE id = 'res_hashed'";

/// Every copy of the old hash was cut to the hash this version makes: its first 32 digits.
fn assert_hashes_cut(stored: Vec<String>, code: &str) {
    let hash = code_hash(code);
    assert_eq!(hash, full_code_hash(code)[..32]);
    assert_eq!(stored, vec![hash.clone(), hash.clone(), hash]);
}

#[tokio::test]
async fn a_callback_recorded_under_its_codes_hash_is_replayed_after_the_upgrade_on_sqlite() {
    let code = new_code();
    let (app, stored, _dir) = upgraded_sqlite(&SUCCEEDED, &code, STORED_HASHES).await;
    assert_hashes_cut(stored, &code);
    assert_replayed_as_before(&app, &code).await;
}

#[tokio::test]
async fn a_callback_recorded_under_its_codes_hash_is_replayed_after_the_upgrade_on_postgresql() {
    let code = new_code();
    let (app, stored, _cluster) = upgraded_postgresql(&SUCCEEDED, &code, STORED_HASHES).await;
    assert_hashes_cut(stored, &code);
    assert_replayed_as_before(&app, &code).await;
}

/// The last schema under which a code's hash was all 256 bits of its HMAC.
const WITH_FULL_HASHES: i64 = 10;

/// The purchase `bought_the_old_way` records.
const OLD_PURCHASE: &str = "pur_BBBBBBBBBBBBBBBBBBBBBB";

/// A purchase that succeeded under that schema, as PostgreSQL's version wrote it (SQLite's did
/// too when an outcome was already stored under the hash): the purchase bound to its code, the
/// code's exchange naming its outcome by the code's hash, the token, the outcome; and an outcome
/// of a failure, keyed by the failure, not by a code.
fn bought_the_old_way(code: &str, sealed: &str) -> AssertSqlSafe<String> {
    let hash = full_code_hash(code);
    let now = now();
    let expires = now + 43_200;
    AssertSqlSafe(format!(
        "INSERT INTO purchases (id, ref, state, subscription_type_id, redirect_url, code_hash, \
             token_id, created_at, expires_at, updated_at) \
         VALUES ('{OLD_PURCHASE}', 'ORDER-BOUGHT', 'succeeded', 12345, \
             'https://gateway.example/i', '{hash}', 'tok_bought', {now}, {expires}, {now}); \
         INSERT INTO exchanges (code_hash, state, attempt, token_id, ref, outcome_key, \
             created_at, updated_at) \
         VALUES ('{hash}', 'succeeded', 1, 'tok_bought', 'ORDER-BOUGHT', '{hash}', {now}, {now}); \
         INSERT INTO tokens (id, sealed, token_type, obtained_at, expires_at, ref, code_hash) \
         VALUES ('tok_bought', {sealed}, 'bearer', {now}, {expires}, 'ORDER-BOUGHT', '{hash}'); \
         INSERT INTO callbacks (id, replay_key, outcome, request_id, ref, token_id, created_at, \
             updated_at) \
         VALUES ('res_bought', '{hash}', 'succeeded', 'req-old', 'ORDER-BOUGHT', 'tok_bought', \
             {now}, {now}), \
             ('res_declined', 'failure:{hash}', 'purchase_failed', 'req-old', 'ORDER-DECLINED', \
             NULL, {now}, {now});"
    ))
}

/// The purchase's callback again is its replay: the purchase still admits its own code, and the
/// exchange still names its outcome. MondiaPay is not called.
async fn assert_purchase_replayed(app: &TestApp, code: &str) {
    let query = format!("code={code}&status=200&purchase={OLD_PURCHASE}");
    let (location, status, _) = app.callback_page(&query).await;
    assert!(location.ends_with("/oauth/result/res_bought"), "{location}");
    assert_eq!(status, StatusCode::OK);
    assert!(app.mondiapay.calls().await.is_empty());
}

/// Each copy of the purchase's code hash, in the order `assert_hashes_cut_everywhere` expects,
/// then the failure's key.
const BOUGHT_KEYS: &str = "SELECT code_hash FROM purchases UNION ALL \
     SELECT code_hash FROM exchanges UNION ALL \
     SELECT outcome_key FROM exchanges UNION ALL \
     SELECT code_hash FROM tokens UNION ALL \
     SELECT replay_key FROM callbacks WHERE id = 'res_bought' UNION ALL \
     SELECT replay_key FROM callbacks WHERE id = 'res_declined'";

/// Five copies of the hash cut to this version's; the failure's key, which only holds a hash
/// after its prefix, left as it was.
fn assert_hashes_cut_everywhere(stored: Vec<String>, code: &str) {
    let hash = code_hash(code);
    let mut expected = vec![hash; 5];
    expected.push(format!("failure:{}", full_code_hash(code)));
    assert_eq!(stored, expected);
}

#[tokio::test]
async fn a_purchase_bound_to_a_codes_full_hash_is_replayed_after_the_upgrade_on_sqlite() {
    let code = new_code();
    let (app, stored, _dir) = upgraded_sqlite(&BOUGHT, &code, BOUGHT_KEYS).await;
    assert_hashes_cut_everywhere(stored, &code);
    assert_purchase_replayed(&app, &code).await;
}

#[tokio::test]
async fn a_purchase_bound_to_a_codes_full_hash_is_replayed_after_the_upgrade_on_postgresql() {
    let code = new_code();
    let (app, stored, _cluster) = upgraded_postgresql(&BOUGHT, &code, BOUGHT_KEYS).await;
    assert_hashes_cut_everywhere(stored, &code);
    assert_purchase_replayed(&app, &code).await;
}

/// What an earlier version left in its database: the schema it ran, and the rows it wrote for a
/// code (SQL both databases take, given the backend's literal for a sealed blob).
struct Earlier {
    schema: i64,
    rows: fn(&str, &str) -> AssertSqlSafe<String>,
}

/// A callback that succeeded while outcomes were keyed by the code's hash.
const SUCCEEDED: Earlier = Earlier {
    schema: WITH_HASH_KEYS,
    rows: succeeded_the_old_way,
};

/// A purchase that succeeded while a code's hash was all 256 bits.
const BOUGHT: Earlier = Earlier {
    schema: WITH_FULL_HASHES,
    rows: bought_the_old_way,
};

/// Brings `db` to `earlier`'s schema and writes there its rows for `code`.
async fn leave<DB: sqlx::Database>(
    earlier: &Earlier,
    backend: &str,
    db: &sqlx::Pool<DB>,
    code: &str,
    sealed: &str,
) where
    DB::Connection: sqlx::migrate::Migrate,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    migrations(backend)
        .await
        .run_to(earlier.schema, db)
        .await
        .unwrap();
    sqlx::raw_sql((earlier.rows)(code, sealed))
        .execute(db)
        .await
        .unwrap();
}

/// This version started on a SQLite file that `earlier` left with `code`: the service, what
/// `query` then finds in the file, and the file's directory (kept while the test runs).
async fn upgraded_sqlite(
    earlier: &Earlier,
    code: &str,
    query: &'static str,
) -> (TestApp, Vec<String>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let (path, db) = earlier_sqlite_database(&dir).await;
    leave(earlier, "sqlite", &db, code, "X'00'").await;
    db.close().await;
    let url = format!("sqlite://{}", path.display());
    let app = spawn_app_with(&format!(
        "STORE__URL={url} STORE__ENCRYPTION_KEY={ENCRYPTION_KEY}"
    ))
    .await;
    let db = SqlitePool::connect(&url).await.unwrap();
    let stored = sqlx::query_scalar(query).fetch_all(&db).await.unwrap();
    (app, stored, dir)
}

/// The same on a PostgreSQL database (the cluster kept while the test runs).
async fn upgraded_postgresql(
    earlier: &Earlier,
    code: &str,
    query: &'static str,
) -> (TestApp, Vec<String>, PgCluster) {
    let cluster = PgCluster::start();
    let db = PgPool::connect(&cluster.url()).await.unwrap();
    leave(earlier, "postgres", &db, code, "'\\x00'::bytea").await;
    let app = spawn_app_with(&cluster.store_settings()).await;
    let stored = sqlx::query_scalar(query).fetch_all(&db).await.unwrap();
    (app, stored, cluster)
}
