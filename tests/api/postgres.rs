//! A real PostgreSQL server for the tests: a throwaway cluster per test on a free loopback port,
//! started from Debian's server binaries (as the `postgres` user when the tests run as root),
//! stopped when the test ends. Missing binaries fail the test: nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::helpers::ENCRYPTION_KEY;

pub struct PgCluster {
    pub port: u16,
    bin: PathBuf,
    data: PathBuf,
    _dir: tempfile::TempDir,
}

fn server_binaries() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| {
            dirs.filter_map(|d| d.ok())
                .map(|d| d.path().join("bin"))
                .filter(|b| b.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().expect(
        "these tests need Debian's PostgreSQL server: apt-get install -y postgresql (.ci/run does)",
    )
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// Runs a server binary, as `postgres` when we are root (the server refuses to run as root).
fn run(bin: &Path, program: &str, args: &[&str]) {
    let mut command = if running_as_root() {
        let mut command = Command::new("runuser");
        command
            .args(["-u", "postgres", "--"])
            .arg(bin.join(program));
        command
    } else {
        Command::new(bin.join(program))
    };
    let output = command.args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn give_to_postgres(path: &Path) {
    if running_as_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

/// `initdb` once per test binary; each cluster starts from a copy.
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &TEMPLATE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            give_to_postgres(dir.path());
            let data = dir.path().join("data");
            let bin = server_binaries();
            run(
                &bin,
                "initdb",
                &[
                    "-D",
                    data.to_str().unwrap(),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            );
            (dir, data)
        })
        .1
}

impl PgCluster {
    pub fn start() -> Self {
        let bin = server_binaries();
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let status = Command::new("cp")
            .arg("-a")
            .arg(template())
            .arg(&data)
            .status()
            .unwrap();
        assert!(status.success());
        give_to_postgres(dir.path());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Self {
            port,
            bin,
            data,
            _dir: dir,
        };
        cluster.start_again();
        cluster
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn start_again(&self) {
        let socket_dir = self.data.parent().unwrap().to_str().unwrap().to_owned();
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {socket_dir} -c fsync=off",
            self.port
        );
        let log = self.data.parent().unwrap().join("log");
        run(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-o",
                &options,
                "start",
            ],
        );
    }

    pub fn stop(&self) {
        run(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The settings of a store in this cluster (PostgreSQL needs an encryption key set).
    pub fn store_settings(&self) -> String {
        format!(
            "STORE__URL={} STORE__ENCRYPTION_KEY={ENCRYPTION_KEY}",
            self.url()
        )
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = Command::new(if running_as_root() { "runuser" } else { "true" })
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
        if !running_as_root() {
            let _ = Command::new(self.bin.join("pg_ctl"))
                .args(["-D", self.data.to_str().unwrap(), "-m", "immediate", "stop"])
                .output();
        }
    }
}
