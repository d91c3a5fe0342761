"""A throwaway local PostgreSQL cluster for the replica figures, started from Debian's server
binaries as tests/api/postgres.rs does (as the `postgres` user when we are root: the server
refuses to run as root). Durable as shipped: fsync and synchronous_commit stay on."""

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path


def server_binaries():
    """The newest /usr/lib/postgresql/<version>/bin holding initdb, or None."""
    root = Path("/usr/lib/postgresql")
    found = [d / "bin" for d in root.iterdir() if (d / "bin" / "initdb").exists()] if root.is_dir() else []
    key = lambda path: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.parent.name)]
    return sorted(found, key=key)[-1] if found else None


class Cluster:
    def __init__(self, binaries, port):
        self.bin, self.port = binaries, port
        self.root = os.geteuid() == 0
        # Its own directory: the bench's work directory is root's only, the server runs as postgres.
        self.dir = Path(tempfile.mkdtemp(prefix="token-proxy-bench-pg-"))
        self.data = self.dir / "data"
        if self.root:
            shutil.chown(self.dir, "postgres", "postgres")
        self.started = False

    def _run(self, program, *args, check=True):
        command = [str(self.bin / program), *args]
        if self.root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise SystemExit(f"{program} failed: {result.stderr.strip()}")

    def start(self):
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir}"
        # Marked first: a start that timed out may still leave a server to stop.
        self.started = True
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "-o", options, "start")

    @property
    def url(self):
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self):
        if self.started:
            self.started = False
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)
