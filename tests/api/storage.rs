//! What lands on disk: sealed tokens, hashed codes, a key file only when none is configured.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::helpers::*;

fn files_contain(dir: &Path, needle: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            std::fs::read(path)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
        })
        .map(|path| path.display().to_string())
        .collect()
}

#[tokio::test]
async fn the_database_holds_no_token_and_no_code_in_clear() {
    let mut app = spawn_app().await;
    app.mondiapay_issues_tokens(3).await;
    let mut secrets = Vec::new();
    for reference in ["ORDER-S1", "ORDER-S2", "ORDER-S3"] {
        let code = new_code();
        let record = json(app.exchange_code(&code, reference).await).await;
        secrets.push(code);
        secrets.push(record["access_token"].as_str().unwrap().to_owned());
        secrets.push(record["refresh_token"].as_str().unwrap().to_owned());
    }
    let dir = app.dir.path().to_owned();
    assert!(
        dir.join("tokens.db-wal").exists(),
        "the store runs in WAL mode"
    );
    for secret in &secrets {
        assert_eq!(
            files_contain(&dir, secret),
            Vec::<String>::new(),
            "{secret} in clear while running"
        );
    }
    assert_eq!(
        files_contain(&dir, "ORDER-S1").len(),
        1,
        "the scan does see plain columns"
    );
    app.stop().await;
    for secret in &secrets {
        assert_eq!(
            files_contain(&dir, secret),
            Vec::<String>::new(),
            "{secret} in clear after stop"
        );
    }
}

#[tokio::test]
async fn without_a_configured_key_one_is_generated_once_with_owner_only_access() {
    let mut app = spawn_app().await;
    let key_file = app.dir.path().join("encryption.key");
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let key = std::fs::read_to_string(&key_file).unwrap();
    app.restart().await;
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        key,
        "the key is kept across restarts"
    );
}

#[tokio::test]
async fn a_configured_key_is_used_and_no_key_file_is_made() {
    let key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    let mut app = spawn_app_with(&[("STORE__ENCRYPTION_KEY", key)]).await;
    app.mondiapay_issues_tokens(1).await;
    let record = json(app.exchange_code(&new_code(), "ORDER-K").await).await;
    app.restart().await;
    let again = json(
        app.get(&format!("/v1/tokens/{}", record["id"].as_str().unwrap()))
            .await,
    )
    .await;
    assert_eq!(again["access_token"], record["access_token"]);
    assert!(!app.dir.path().join("encryption.key").exists());
}
