"""The bench-peer: the hand-written Express + SQLite handler a merchant would otherwise deploy
(../shared/bench-peer, read-only), run from a writable copy against the same token endpoint."""

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

# Its callback page names the token it stored.
TOKEN_ID = re.compile(rb"tok_[0-9a-f]{32}")


def _modules(source, cache_root):
    """node_modules for the peer's package-lock.json, installed once and kept under
    target/bench-peer/<key>: `npm ci` builds better-sqlite3 from source (minutes), so reruns reuse
    it. The key is the lock file and Node's version (the native module is built for one ABI)."""
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    lock = (source / "package-lock.json").read_bytes()
    key = hashlib.sha256(lock + node.encode()).hexdigest()[:16]
    cache = cache_root / key
    if (cache / "node_modules").is_dir():
        return cache / "node_modules"
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=cache_root))
    for name in ("package.json", "package-lock.json"):
        shutil.copyfile(source / name, staging / name)
    print(f"bench-peer: npm ci into {cache} (once per package-lock.json; builds better-sqlite3)", flush=True)
    try:
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=staging, check=True, stdout=subprocess.DEVNULL)
        if not (cache / "node_modules").is_dir():
            # What an interrupted install may have left.
            shutil.rmtree(cache, ignore_errors=True)
            staging.rename(cache)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cache / "node_modules"


def durability_note(modules):
    """What the peer's commits promise, read from how its better-sqlite3 builds SQLite: with
    SQLITE_DEFAULT_WAL_SYNCHRONOUS=1 a connection in WAL mode commits with synchronous=NORMAL,
    which syncs at checkpoints, not at each commit."""
    defines = modules / "better-sqlite3" / "deps" / "defines.gypi"
    if defines.exists() and "SQLITE_DEFAULT_WAL_SYNCHRONOUS=1" in defines.read_text():
        return ("The bench-peer's better-sqlite3 builds SQLite with SQLITE_DEFAULT_WAL_SYNCHRONOUS=1, so its WAL "
                "commits run with synchronous=NORMAL: a token is not synced before its page is sent (a crash of the "
                "machine can lose acknowledged tokens), while the service syncs every write before it answers.")
    return None


def start(source, cache_root, work, token_url, api_key, public_port, internal_port):
    """Starts the peer from a copy of `source` in `work`; returns its process and a note on its
    durability (or None)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise SystemExit("the bench-peer needs Node.js and npm (Debian: apt-get install -y nodejs npm)")
    modules = _modules(source, cache_root)
    directory = Path(work) / "bench-peer"
    shutil.copytree(source, directory, ignore=shutil.ignore_patterns("node_modules"))
    (directory / "node_modules").symlink_to(modules, target_is_directory=True)
    env = {
        **os.environ,
        "TOKEN_URL": token_url,
        "CLIENT_ID": "bench",
        "CLIENT_SECRET": "bench-secret",
        "REDIRECT_URI": "https://shop.example/thanks",
        "API_KEY": api_key,
        "PEER_DB": str(Path(work) / "peer.db"),
        "PUBLIC_PORT": str(public_port),
        "INTERNAL_PORT": str(internal_port),
        "NODE_ENV": "production",
    }
    return subprocess.Popen(["node", "server.js"], cwd=directory, env=env), durability_note(modules)
