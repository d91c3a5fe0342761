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
    app.mondiapay.issues_tokens(3).await;
    let mut secrets = Vec::new();
    for reference in ["ORDER-S1", "ORDER-S2", "ORDER-S3"] {
        let code = new_code();
        let record = json(app.exchange(&code, reference).await).await;
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
    // In the WAL, and in the database too once the checkpointer has copied it there.
    assert!(
        !files_contain(&dir, "ORDER-S1").is_empty(),
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
    let key = ENCRYPTION_KEY;
    let mut app = spawn_app_with(&format!("STORE__ENCRYPTION_KEY={key}")).await;
    app.mondiapay.issues_tokens(1).await;
    let record = json(app.exchange(&new_code(), "ORDER-K").await).await;
    app.restart().await;
    let again = app.stored_token(&record).await;
    assert_eq!(again["access_token"], record["access_token"]);
    assert!(!app.dir.path().join("encryption.key").exists());
}

/// A small filesystem of its own, unmounted when the test ends.
struct SmallDisk {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "this test mounts a small tmpfs and needs root (CI runs as root)"
        );
        Self { path, _dir: dir }
    }

    /// Fills the disk to the last byte; returns the filler file.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        while file.write_all(&[0]).is_ok() {}
        let _ = file.sync_all();
        filler
    }
}

/// Detaches the file system mounted at `path`, even while files on it are still open.
fn unmount_lazily(path: &Path) {
    let _ = std::process::Command::new("umount")
        .arg("-l")
        .arg(path)
        .status();
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        unmount_lazily(&self.path);
    }
}

#[tokio::test]
async fn a_full_disk_refuses_exchanges_before_mondiapay_sees_the_code_and_damages_nothing() {
    let disk = SmallDisk::mount("4m");
    let url = format!("sqlite://{}/tokens.db", disk.path.display());
    let mut app = spawn_app_with(&format!("STORE__URL={url}")).await;
    let blocked_code = code_for_after_the_fault(&app).await;
    app.mondiapay.issues_tokens(1).await;
    let before = json(app.exchange(&new_code(), "ORDER-BEFORE").await).await;

    let filler = disk.fill();
    assert_store_refuses(&app, &blocked_code).await;
    let stored = app.stored_token(&before).await;
    assert_eq!(
        stored["access_token"], before["access_token"],
        "reads go on while the disk is full"
    );

    std::fs::remove_file(filler).unwrap();
    assert_store_recovers(&app, &blocked_code).await;
    app.stop().await;
}

/// A small ext4 filesystem on a loop device, whose files can be made immutable: even root
/// cannot write them then, which is how a store turns read-only under a running service.
struct Ext4Disk {
    path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Ext4Disk {
    fn mount() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("disk.img");
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).unwrap();
        let run = |program: &str, args: &[&std::ffi::OsStr]| {
            let status = std::process::Command::new(program)
                .args(args)
                .status()
                .unwrap();
            assert!(
                status.success(),
                "{program}: this test needs root, losetup and e2fsprogs (CI has them)"
            );
        };
        run(
            "truncate",
            &["-s".as_ref(), "32M".as_ref(), image.as_os_str()],
        );
        run(
            "mkfs.ext4",
            &["-q".as_ref(), "-F".as_ref(), image.as_os_str()],
        );
        run(
            "mount",
            &[
                "-o".as_ref(),
                "loop".as_ref(),
                image.as_os_str(),
                path.as_os_str(),
            ],
        );
        Self { path, _dir: dir }
    }

    fn set_immutable(&self, immutable: bool, files: &[&str]) {
        let flag = if immutable { "+i" } else { "-i" };
        let status = std::process::Command::new("chattr")
            .arg(flag)
            .args(files.iter().map(|file| self.path.join(file)))
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Ext4Disk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-R")
            .arg("-i")
            .arg(&self.path)
            .status();
        unmount_lazily(&self.path);
    }
}

#[tokio::test]
async fn a_store_turned_read_only_refuses_exchanges_before_mondiapay_and_recovers() {
    let disk = Ext4Disk::mount();
    let url = format!("sqlite://{}/tokens.db", disk.path.display());
    let mut app = spawn_app_with(&format!("STORE__URL={url}")).await;
    let blocked_code = code_for_after_the_fault(&app).await;
    app.mondiapay.issues_tokens(1).await;
    let before = json(app.exchange(&new_code(), "ORDER-RO").await).await;

    // The shared-memory index stays writable: SQLite maps it, and a read-only map would crash.
    disk.set_immutable(true, &["tokens.db", "tokens.db-wal"]);
    assert_store_refuses(&app, &blocked_code).await;
    let by_ref = json(app.tokens_by_ref("ORDER-RO").await).await;
    assert_eq!(
        by_ref["access_token"], before["access_token"],
        "reads go on from a read-only store"
    );

    disk.set_immutable(false, &["tokens.db", "tokens.db-wal"]);
    // After repeated write errors SQLite does not take writes again on the open files; a restart
    // (what an orchestrator does when /readyz stays 503) brings the store back.
    app.restart().await;
    assert_store_recovers(&app, &blocked_code).await;
    app.stop().await;
}

/// The disk's last MiB is kept for the tokens of codes MondiaPay has spent: a notification is
/// refused with a `503` (MondiaPay sends it again), not stored into that reserve, and accepted
/// once there is room.
#[tokio::test]
async fn a_full_disk_refuses_notifications_with_503_and_takes_them_once_there_is_room() {
    use crate::notifications::{NOTIFICATION_SECRET, notification};
    let disk = SmallDisk::mount("4m");
    let url = format!("sqlite://{}/tokens.db", disk.path.display());
    let mut app = spawn_app_with(&format!(
        "STORE__URL={url} NOTIFICATIONS__SECRET={NOTIFICATION_SECRET}"
    ))
    .await;
    let filler = disk.fill();
    // Half a MiB free: room enough for SQLite to write, but inside the reserve.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap();
    let length = file.metadata().unwrap().len();
    file.set_len(length - 512 * 1024).unwrap();
    drop(file);
    let refused = app
        .notify(NOTIFICATION_SECRET, &notification("evt-disk-full"))
        .await;
    assert_eq!(refused.status(), reqwest::StatusCode::SERVICE_UNAVAILABLE);
    std::fs::remove_file(filler).unwrap();
    let taken = app
        .notify(NOTIFICATION_SECRET, &notification("evt-disk-full"))
        .await;
    assert_eq!(taken.status(), reqwest::StatusCode::OK);
    let feed = app.events_json("").await;
    assert_eq!(feed["events"].as_array().unwrap().len(), 1, "{feed}");
    app.stop().await;
}
