//! One suite of store behaviour, run against both backends: SQLite and PostgreSQL.

use mondiapay_token_proxy::crypto::{CodeHash, Keyring};
use mondiapay_token_proxy::domain::{
    CallbackOutcome, Code, ExchangeState, NewCallback, OutcomeKind, Owner, RenewalState,
    TokenRecord, UnavailableCause, UpstreamError, UserToken,
};
use mondiapay_token_proxy::mondiapay::{Answer, read_answer};
use mondiapay_token_proxy::settings::StoreBackend;
use mondiapay_token_proxy::store::{
    Claim, OwnerColumn, RenewalClaim, ReplayKey, TokenStore, Verdict, now_unix,
};

use crate::postgres::PgCluster;

fn token(access: &str) -> UserToken {
    match read_answer(
        200,
        format!(r#"{{"access_token":"{access}","refresh_token":"R{access}"}}"#).as_bytes(),
    ) {
        Answer::Issued(token) => token,
        other => panic!("{other:?}"),
    }
}

fn owner(reference: &str) -> Owner {
    Owner {
        reference: Some(reference.to_owned()),
        uuid: Some(format!("user-{reference}")),
    }
}

/// An outcome as the exchanger records it: an unavailable one always with its cause.
fn outcome(kind: OutcomeKind, reference: &str) -> NewCallback {
    NewCallback {
        kind,
        cause: (kind == OutcomeKind::Unavailable).then_some(UnavailableCause::TimedOut),
        request_id: "req".to_owned(),
        reference: Some(reference.to_owned()),
        uuid: None,
        status: None,
        error: None,
        token_id: None,
    }
}

/// MondiaPay's token for the claim `attempt` on `code`, stored under `reference`.
async fn issue(
    store: &TokenStore,
    code: &CodeHash,
    attempt: i64,
    reference: &str,
    access_token: &str,
) -> TokenRecord {
    let record = store.issued_record(&token(access_token), &owner(reference));
    let recorded = store
        .settle(code, attempt, &Verdict::Issued(record.clone()), None)
        .await
        .unwrap();
    assert!(recorded.is_none(), "no callback, no outcome");
    record
}

/// Claims `code` and settles it with a token and a succeeded callback for `reference`.
async fn settle_succeeded(store: &TokenStore, code: &CodeHash, reference: &str) -> CallbackOutcome {
    let Claim::Claimed { attempt, .. } = store.claim(code, &owner(reference), 60).await.unwrap()
    else {
        panic!("{reference}: not claimed")
    };
    let issued = store.issued_record(&token("Usucceeded"), &owner(reference));
    let new = NewCallback {
        token_id: Some(issued.id.clone()),
        ..outcome(OutcomeKind::Succeeded, reference)
    };
    store
        .settle(code, attempt, &Verdict::Issued(issued), Some(&new))
        .await
        .unwrap()
        .expect("the callback's outcome")
}

async fn exercise(store: &TokenStore) {
    let store = &store.clone().with_expiry_margin(60);
    let keys = store.keys();
    let hash = |code: &str| -> CodeHash { keys.hash_code(&Code::parse(code, "A").unwrap()) };
    let lease = 60;
    store.ping().await.unwrap();

    // A new code is claimed once; a held claim is Taken; a released one is claimed again.
    let a = hash("Asuite1");
    assert!(matches!(
        store.claim(&a, &owner("R1"), lease).await.unwrap(),
        Claim::Claimed { attempt: 1, .. }
    ));
    let Claim::Taken(row) = store.claim(&a, &owner("R1"), lease).await.unwrap() else {
        panic!("claimed twice")
    };
    assert_eq!(row.state, ExchangeState::Pending);
    store.settle(&a, 1, &Verdict::Released, None).await.unwrap();
    assert!(matches!(
        store.claim(&a, &owner("R1"), lease).await.unwrap(),
        Claim::Claimed { attempt: 2, .. }
    ));
    // A stale attempt cannot finish the newer claim.
    store.settle(&a, 1, &Verdict::Released, None).await.unwrap();
    assert_eq!(
        store.exchange(&a).await.unwrap().unwrap().state,
        ExchangeState::Pending
    );

    // Success is stored with its token; the outcome is final.
    let first = issue(store, &a, 2, "R1", "Ufirst").await;
    let Claim::Taken(row) = store.claim(&a, &owner("R1"), lease).await.unwrap() else {
        panic!()
    };
    assert_eq!(
        (row.state, row.token_id.as_deref()),
        (ExchangeState::Succeeded, Some(first.id.as_str()))
    );
    let read = store.live_token(&first.id).await.unwrap().unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&read.access_token),
        "Ufirst"
    );
    assert_eq!(read.uuid.as_deref(), Some("user-R1"));

    // The first of two live tokens for one ref, even within the same second.
    let b = hash("Asuite2");
    assert!(matches!(
        store.claim(&b, &owner("R1"), lease).await.unwrap(),
        Claim::Claimed { .. }
    ));
    let second = issue(store, &b, 1, "R1", "Usecond").await;
    assert_eq!(
        store.first_for_ref("R1").await.unwrap().unwrap().id,
        first.id
    );
    assert_eq!(
        store.first_for_uuid("user-R1").await.unwrap().unwrap().id,
        first.id
    );
    assert_eq!(store.count_live_tokens().await.unwrap(), 2);
    let live_within = async |margin| {
        let store = store.clone().with_expiry_margin(margin);
        store.live_token(&first.id).await.unwrap().is_some()
    };
    assert!(!live_within(50_000).await, "inside the margin is expired");

    // A rejection is final and keeps MondiaPay's error code, never its free text.
    let c = hash("Asuite3");
    let Claim::Claimed { attempt, .. } = store.claim(&c, &owner("R2"), lease).await.unwrap() else {
        panic!()
    };
    let rejection = UpstreamError {
        http_status: 400,
        error: "invalid_grant".into(),
        message: Some("used".into()),
    };
    store
        .settle(&c, attempt, &Verdict::Rejected(rejection.clone()), None)
        .await
        .unwrap();
    let Claim::Taken(row) = store.claim(&c, &owner("R2"), lease).await.unwrap() else {
        panic!()
    };
    assert_eq!(row.state, ExchangeState::Rejected);
    assert_eq!(
        row.rejection.unwrap(),
        UpstreamError {
            message: None,
            ..rejection
        }
    );

    // A claim whose lease ran out is taken over.
    let d = hash("Asuite4");
    assert!(matches!(
        store.claim(&d, &owner("R3"), -1).await.unwrap(),
        Claim::Claimed { attempt: 1, .. }
    ));
    assert!(matches!(
        store.claim(&d, &owner("R3"), lease).await.unwrap(),
        Claim::Claimed { attempt: 2, .. }
    ));

    // A verdict and its callback's outcome are one write; a claim that finds the code taken
    // reads that outcome back with it.
    let e = hash("Asuite8");
    let Claim::Claimed { attempt, .. } = store.claim(&e, &owner("R6"), lease).await.unwrap() else {
        panic!()
    };
    let issued = store.issued_record(&token("Usettled"), &owner("R6"));
    let new = NewCallback {
        token_id: Some(issued.id.clone()),
        ..outcome(OutcomeKind::Succeeded, "R6")
    };
    let settled = store
        .settle(&e, attempt, &Verdict::Issued(issued.clone()), Some(&new))
        .await
        .unwrap()
        .expect("the callback's outcome");
    assert_eq!(settled.outcome.token_id, Some(issued.id.clone()));
    let Claim::Taken(row) = store.claim(&e, &owner("R6"), lease).await.unwrap() else {
        panic!()
    };
    assert_eq!(row.state, ExchangeState::Succeeded);
    assert_eq!(
        row.callback.map(|callback| callback.id.clone()),
        Some(settled.id)
    );
    assert!(store.live_token(&issued.id).await.unwrap().is_some());

    // Deleting is idempotent.
    store.delete_token(&first.id).await.unwrap();
    store.delete_token(&first.id).await.unwrap();
    assert!(!live_within(0).await);

    // Callback outcomes: a final one stands for its code, an unavailable one is replaced; a
    // failed purchase or rejected code is one row per (ref, outcome, error).
    let record = async |key: Option<&ReplayKey>, kind: OutcomeKind| {
        store
            .record_callback(key, &outcome(kind, "R5"))
            .await
            .unwrap()
    };
    let key = ReplayKey::exchange(&hash("Asuite5"));
    let unavailable = record(Some(&key), OutcomeKind::Unavailable).await;
    assert_eq!(
        store
            .callback(&unavailable.id)
            .await
            .unwrap()
            .unwrap()
            .outcome
            .cause,
        Some(UnavailableCause::TimedOut)
    );
    let succeeded = record(Some(&key), OutcomeKind::Succeeded).await;
    assert_eq!(succeeded.id, unavailable.id);
    assert_eq!(succeeded.outcome.kind, OutcomeKind::Succeeded);
    let again = record(Some(&key), OutcomeKind::Succeeded).await;
    assert_eq!(
        (again.id.as_str(), again.outcome.kind),
        (succeeded.id.as_str(), OutcomeKind::Succeeded)
    );
    let rejected_key = ReplayKey::exchange(&hash("Asuite6"));
    let rejected = record(Some(&rejected_key), OutcomeKind::CodeRejected).await;
    let other_key = ReplayKey::exchange(&hash("Asuite7"));
    let rejected_again = record(Some(&other_key), OutcomeKind::CodeRejected).await;
    assert_eq!(
        rejected_again.id, rejected.id,
        "one row per (ref, outcome, error)"
    );
    record(None, OutcomeKind::PurchaseFailed).await;
    let listed = store.callbacks_for_ref("R5").await.unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(
        listed[0].outcome.kind,
        OutcomeKind::PurchaseFailed,
        "newest first"
    );
    assert_eq!(
        store
            .callback(&succeeded.id)
            .await
            .unwrap()
            .unwrap()
            .outcome
            .kind,
        OutcomeKind::Succeeded
    );

    // An outcome recorded before its code had an exchange (no room for one, say) is the one the
    // exchange's verdict finishes: the same result page, found again by the code.
    let f = hash("Asuite9");
    let waiting = record(Some(&ReplayKey::exchange(&f)), OutcomeKind::Unavailable).await;
    let finished = settle_succeeded(store, &f, "R5").await;
    assert_eq!(
        (finished.id.as_str(), finished.outcome.kind),
        (waiting.id.as_str(), OutcomeKind::Succeeded)
    );
    // So is one a released claim recorded, by the verdict of the next claim.
    let g = hash("Asuite10");
    let Claim::Claimed { attempt, .. } = store.claim(&g, &owner("R5"), lease).await.unwrap() else {
        panic!()
    };
    let released = store
        .settle(
            &g,
            attempt,
            &Verdict::Released,
            Some(&outcome(OutcomeKind::Unavailable, "R5")),
        )
        .await
        .unwrap()
        .expect("the callback's outcome");
    let finished = settle_succeeded(store, &g, "R5").await;
    assert_eq!(
        (finished.id.as_str(), finished.outcome.kind),
        (released.id.as_str(), OutcomeKind::Succeeded)
    );
    for code in [&f, &g] {
        let Claim::Taken(row) = store.claim(code, &owner("R5"), lease).await.unwrap() else {
            panic!()
        };
        assert_eq!(
            row.callback.map(|callback| callback.outcome.kind),
            Some(OutcomeKind::Succeeded)
        );
    }
    // The three before, and these two: none of them twice.
    assert_eq!(store.callbacks_for_ref("R5").await.unwrap().len(), 5);

    // The purge keeps live tokens and their exchanges.
    let purged = store.purge(now_unix() + 1).await.unwrap();
    assert_eq!(purged.tokens, 0);
    assert!(store.live_token(&second.id).await.unwrap().is_some());
    assert!(store.exchange(&b).await.unwrap().is_some());
    assert!(
        store.exchange(&c).await.unwrap().is_none(),
        "a finished exchange without a token goes"
    );
    store.close().await;
}

/// Forged failures: one row per (ref, outcome, error), 20 per ref, a cap in all; a success stays.
async fn forged_failures(store: &TokenStore) {
    let keys = store.keys();
    let code = keys.hash_code(&Code::parse("Aforged1", "A").unwrap());
    let genuine = store
        .record_callback(
            Some(&ReplayKey::exchange(&code)),
            &outcome(OutcomeKind::Succeeded, "ORDER-77"),
        )
        .await
        .unwrap();
    let failure = |error: String, reference: &str| NewCallback {
        error: Some(error),
        ..outcome(OutcomeKind::PurchaseFailed, reference)
    };
    let once = store
        .record_callback(None, &failure("SAME".into(), "ORDER-77"))
        .await
        .unwrap();
    let twice = store
        .record_callback(None, &failure("SAME".into(), "ORDER-77"))
        .await
        .unwrap();
    assert_eq!(once.id, twice.id, "a repeat is the same outcome");
    for n in 0..110 {
        store
            .record_callback(None, &failure(format!("FORGED_{n}"), "ORDER-77"))
            .await
            .unwrap();
    }
    let listed = store.callbacks_for_ref("ORDER-77").await.unwrap();
    assert!(
        listed.iter().any(|o| o.id == genuine.id),
        "the success was pushed out"
    );
    let failures = listed
        .iter()
        .filter(|o| o.outcome.kind != OutcomeKind::Succeeded)
        .count();
    assert_eq!(failures, 20, "a ref keeps its newest 20 failures");
    assert_eq!(listed[0].outcome.error.as_deref(), Some("FORGED_109"));

    // Across refs: a cap in all (here 10), enforced every 64 outcomes and by the purge.
    let capped = store.clone().with_max_failure_outcomes(10);
    for n in 0..200 {
        capped
            .record_callback(None, &failure("X".into(), &format!("REF-{n}")))
            .await
            .unwrap();
    }
    let kept_across_refs = async || {
        let mut kept = 0;
        for n in 0..200 {
            let listed = capped.callbacks_for_ref(&format!("REF-{n}")).await;
            kept += listed.unwrap().len();
        }
        kept
    };
    let kept = kept_across_refs().await;
    assert!(kept <= 10 + 64, "{kept} failures kept across refs");
    capped.purge(0).await.unwrap();
    let kept = kept_across_refs().await;
    assert!(kept <= 10, "{kept} failures kept after the purge");
    assert!(
        capped
            .callbacks_for_ref("ORDER-77")
            .await
            .unwrap()
            .iter()
            .any(|o| o.id == genuine.id),
        "a success is never trimmed"
    );
    store.close().await;
}

/// A user's renewal claims: one holder, waiters read its outcome, the next need claims again;
/// a retired token is served by no lookup, while its owner is still known for a renewal.
async fn renewals_and_retirement(store: &TokenStore) {
    let store = &store.clone().with_expiry_margin(60);
    let lease = 60;
    let Ok(RenewalClaim::Claimed { attempt: 1 }) = store.claim_renewal("user-X", 0, lease).await
    else {
        panic!("a user never renewed is claimed")
    };
    let Ok(RenewalClaim::Taken(Some(held))) = store.claim_renewal("user-X", 0, lease).await else {
        panic!("claimed twice")
    };
    assert_eq!(held.state, RenewalState::Pending);
    let refusal = UpstreamError {
        http_status: 400,
        error: "INVALID_PARAMETERS".to_owned(),
        message: None,
    };
    store
        .finish_renewal("user-X", 1, RenewalState::Refused, None, Some(&refusal))
        .await
        .unwrap();
    // A request that saw no attempt waited on attempt 1: its outcome is the answer.
    let Ok(RenewalClaim::Taken(Some(outcome))) = store.claim_renewal("user-X", 0, lease).await
    else {
        panic!("a waiter claimed again")
    };
    assert_eq!(outcome.state, RenewalState::Refused);
    assert_eq!(outcome.error.unwrap().error, "INVALID_PARAMETERS");
    // One that saw attempt 1 needs a new renewal.
    let Ok(RenewalClaim::Claimed { attempt: 2 }) = store.claim_renewal("user-X", 1, lease).await
    else {
        panic!("a new need is claimed")
    };
    let owner = owner("RX");
    let renewed = store
        .store_renewed_token(&owner, &token("Urenewed"))
        .await
        .unwrap();
    store
        .finish_renewal(
            "user-X",
            2,
            RenewalState::Succeeded,
            Some(&renewed.id),
            None,
        )
        .await
        .unwrap();
    let row = store.renewal("user-X").await.unwrap().unwrap();
    assert_eq!((row.state, row.attempt), (RenewalState::Succeeded, 2));
    assert_eq!(row.token_id.as_deref(), Some(renewed.id.as_str()));

    // Retired: no lookup serves it; whom it belonged to is still known.
    let uuid = owner.uuid.clone().unwrap();
    assert!(store.first_for_ref("RX").await.unwrap().is_some());
    let live_before = store.count_live_tokens().await.unwrap();
    store.retire_token(&renewed.id).await.unwrap();
    store.retire_token(&renewed.id).await.unwrap();
    assert!(store.live_token(&renewed.id).await.unwrap().is_none());
    assert!(store.first_for_ref("RX").await.unwrap().is_none());
    assert!(store.first_for_uuid(&uuid).await.unwrap().is_none());
    assert_eq!(store.count_live_tokens().await.unwrap(), live_before - 1);
    for (column, value) in [
        (OwnerColumn::Id, renewed.id.as_str()),
        (OwnerColumn::Ref, "RX"),
        (OwnerColumn::Uuid, uuid.as_str()),
    ] {
        let last = store.last_owner(column, value).await.unwrap().unwrap();
        assert_eq!(
            (last.reference, last.uuid),
            (owner.reference.clone(), owner.uuid.clone()),
            "{column:?}"
        );
    }

    // The purge forgets finished renewals.
    store.purge(now_unix() + 1).await.unwrap();
    assert!(store.renewal("user-X").await.unwrap().is_none());
    store.close().await;
}

fn keyring() -> Keyring {
    Keyring::new(&[9; 32])
}

/// A store in a fresh SQLite file under `dir`.
async fn open_on_sqlite(dir: &tempfile::TempDir) -> TokenStore {
    let backend = StoreBackend::Sqlite {
        path: dir.path().join("tokens.db"),
    };
    TokenStore::open(&backend, keyring()).await.unwrap()
}

/// A store in `cluster`'s PostgreSQL database.
async fn open_on_postgresql(cluster: &PgCluster) -> TokenStore {
    let backend = StoreBackend::Postgres { url: cluster.url() };
    TokenStore::open(&backend, keyring()).await.unwrap()
}

/// On PostgreSQL a code's outcome stays under the code's hash (on SQLite its exchange names a
/// time-ordered key, see the store's own tests): replicas recording an outcome for a code that has
/// no exchange yet and claiming it are then ordered by the unique index on that one key.
#[tokio::test]
async fn on_postgresql_a_codes_outcome_stays_under_the_codes_hash() {
    let cluster = PgCluster::start();
    let store = open_on_postgresql(&cluster).await;
    let code = store
        .keys()
        .hash_code(&Code::parse("Ahashed", "A").unwrap());
    settle_succeeded(&store, &code, "R-HASHED").await;
    let db = sqlx::PgPool::connect(&cluster.url()).await.unwrap();
    let key: String = sqlx::query_scalar("SELECT replay_key FROM callbacks WHERE ref = 'R-HASHED'")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(key, code.as_str());
    store.close().await;
}

/// Each suite as two tests, `…::on_sqlite` and `…::on_postgresql`: one suite, both backends.
macro_rules! on_both_backends {
    ($($name:ident => $suite:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn on_sqlite() {
                let dir = tempfile::tempdir().unwrap();
                super::$suite(&super::open_on_sqlite(&dir).await).await;
            }

            #[tokio::test]
            async fn on_postgresql() {
                let cluster = crate::postgres::PgCluster::start();
                super::$suite(&super::open_on_postgresql(&cluster).await).await;
            }
        }
    )*};
}

on_both_backends! {
    the_store_behaves_the_same => exercise,
    forged_failures_stay_bounded_and_never_push_out_a_success => forged_failures,
    one_renewal_claim_per_user_and_retired_tokens_are_never_served => renewals_and_retirement,
}
