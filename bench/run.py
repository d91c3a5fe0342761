#!/usr/bin/env python3
"""The benchmark harness of mondiapay-token-proxy.

Builds the release binary and measures with wrk, in one run, each figure beside a reference
measured on the same machine at the same time:

  nginx with as many workers as cores: the zero-latency MondiaPay token endpoint (and Prepare
  Purchase), and the static ceiling answering a record-sized JSON body;
  the bench-peer (../shared/bench-peer, Express + better-sqlite3), copied to a temporary directory
  (its node_modules cached under target/bench-peer), against the same token endpoint;
  the service on SQLite:
    callbacks  fresh code per request, 64 conns   vs  the bench-peer's callbacks (target >= 5x)
    lookups    GET /v1/tokens/{id}, 64 conns      vs  static nginx (>= 0.7x), the bench-peer's lookups
    lookups at 256 conns vs static nginx at 256 conns, and the service's peak RSS meanwhile
    notifications, the exchange's and a purchase's added latency, start to ready, binary size
  the service on a throwaway local PostgreSQL cluster: callbacks and lookups with one replica, then
  with two (two processes on one database, each loaded by its own wrk process at once).

--runs N repeats the headline pairs (service and peer callbacks; service lookups and static nginx)
N times, alternating, and shows median and min-max. Writes BENCHMARKS.md (or prints only, with
--smoke: a short run on SQLite only, without the peer and PostgreSQL, that checks the harness and
the service work, for CI; its numbers mean nothing). With --profile it records the service (the
release binary keeps its symbol table) with `perf record -g` during the lookup and callback runs
and the PostgreSQL callback run, and writes the hottest functions to bench/profile-*.txt.

Needs: cargo, wrk and nginx (Debian: apt-get install -y wrk nginx-light), python3; for a full run
also Node.js with npm (the peer) and Debian's PostgreSQL server (skipped with a printed line when
missing, except under CI).
"""

import argparse
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ beside the harness's modules
import peer  # noqa: E402
import pgcluster  # noqa: E402
import report  # noqa: E402
from load import PeakRss, rss_kib, wrk, wrk_split  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "target" / "release" / "mondiapay-token-proxy"
PEER_SOURCE = ROOT.parent / "shared" / "bench-peer"
API_KEY = "bQ8mZ3vK7xR2tW9nL4cH6jP1sF5gY0dA"
NOTIFICATION_SECRET = "bench-notification-secret-0123456789abcdef"
# nginx's `$request_id` (32 random hex digits) makes each purchase token a new one, as MondiaPay's are.
PREPARED_BODY = '{"purchaseToken":"$request_id","expiresIn":"300","_links":{"initiatePurchase":{"href":"https://gateway.mondiapay.example/v1/web/purchase/initiate/$request_id"}}}'
TOKEN_BODY = '{"access_token":"U0123456789abcdefghijklmnopqrstuvwx","token_type":"bearer","expires_in":"43200","refresh_token":"R0123456789abcdefghijklmnopqrstuvwx"}'
AUTH_HEADER = f"Authorization: Bearer {API_KEY}"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=10.0, headers=None, any_status=False):
    """Polls until `url` answers 200 (or anything at all, with any_status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=1) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError:
            if any_status:
                return
        except OSError:
            pass
        time.sleep(0.002)
    sys.exit(f"{url} did not answer within {timeout} s")


def http(method, url, body=None, headers=None):
    """One request; an answer of 400 or more stops the run with its status and the start of its body."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        sys.exit(f"{method} {url} answered {error.code}: {error.read()[:200]!r}")


class profiled:
    """`perf record -g` of the service while the block runs; the top of the report goes to
    bench/profile-NAME.txt."""

    def __init__(self, enabled, pid, name):
        self.enabled, self.pid, self.name = enabled, pid, name
        # One file per run: other checkouts may profile at the same time.
        self.data = Path(tempfile.gettempdir()) / f"token-proxy-{name}-{os.getpid()}.perf"

    def __enter__(self):
        if self.enabled:
            self.perf = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-p", str(self.pid), "-o", str(self.data)],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.3)

    def __exit__(self, *_):
        if not self.enabled:
            return
        self.perf.send_signal(2)
        self.perf.wait()
        report_text = subprocess.run(["perf", "report", "-i", str(self.data), "--stdio", "--no-children", "--sort", "symbol",
                                      "--percent-limit", "0.5", "-g", "none"], capture_output=True, text=True).stdout
        lines = [line.split("  -  ")[0].rstrip() for line in report_text.splitlines() if line.strip() and not line.startswith("#")]
        header = f"# perf profile of the service during the {self.name} run (self time, functions over 0.5%)\n"
        (ROOT / "bench" / f"profile-{self.name}.txt").write_text(header + "\n".join(lines[:40]) + "\n")
        self.data.unlink(missing_ok=True)


def hot_functions(binary):
    """How many of the functions layout/hot-functions.txt lists the binary has (and so placed
    first, build.rs): fewer after changes that renamed functions, until the list is written again."""
    listing = ROOT / "layout" / "hot-functions.txt"
    if not listing.exists() or not shutil.which("nm"):
        return None  # the table leaves the row out
    listed = [line for line in listing.read_text().splitlines() if line and not line.startswith("#")]
    names = set(subprocess.run(["nm", "--defined-only", "--format=just-symbols", str(binary)], capture_output=True, text=True,
                               check=True).stdout.split())
    return sum(name in names for name in listed), len(listed)


def sqlite_commit_rate(directory, seconds):
    """Durable one-row transactions in a tight loop: the machine's synchronous-commit rate (informational)."""
    connection = sqlite3.connect(os.path.join(directory, "commits.db"), isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
    count, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        connection.execute("BEGIN")
        connection.execute("INSERT INTO t (v) VALUES (?)", (os.urandom(200),))
        connection.execute("COMMIT")
        count += 1
    return count / (time.monotonic() - started)


NGINX_CONF = """
daemon off;
worker_processes {workers};
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{upstream};
        location = /v1/api/oauth/token {{
            default_type application/json;
            return 200 '{token}';
        }}
        location = /v1/api/purchase/subscription/prepare {{
            default_type application/json;
            return 200 '{prepared}';
        }}
    }}
    server {{
        listen 127.0.0.1:{static};
        location = /record {{
            default_type application/json;
            return 200 '{record}';
        }}
    }}
}}
"""


class Service:
    """One process of the service with its own listeners, on the store at `store_url`."""

    def __init__(self, binary, upstream, store_url, name):
        self.public, self.internal = free_port(), free_port()
        self.env = {
            **os.environ,
            "RUST_LOG": "warn",
            "TOKEN_PROXY__MONDIAPAY__TOKEN_URL": f"http://127.0.0.1:{upstream}/v1/api/oauth/token",
            "TOKEN_PROXY__MONDIAPAY__API_URL": f"http://127.0.0.1:{upstream}",
            "TOKEN_PROXY__MONDIAPAY__CLIENT_ID": "bench",
            "TOKEN_PROXY__MONDIAPAY__CLIENT_SECRET": "bench-secret",
            "TOKEN_PROXY__MONDIAPAY__REDIRECT_URI": "https://shop.example/thanks",
            "TOKEN_PROXY__MONDIAPAY__MAX_CONCURRENT_EXCHANGES": "1024",
            "TOKEN_PROXY__PUBLIC__LISTEN": f"127.0.0.1:{self.public}",
            "TOKEN_PROXY__PUBLIC__RATE_LIMIT_PER_SECOND": "0",
            "TOKEN_PROXY__INTERNAL__LISTEN": f"127.0.0.1:{self.internal}",
            "TOKEN_PROXY__INTERNAL__API_KEYS": API_KEY,
            "TOKEN_PROXY__NOTIFICATIONS__SECRET": NOTIFICATION_SECRET,
            "TOKEN_PROXY__STORE__URL": store_url,
            "TOKEN_PROXY__STORE__ENCRYPTION_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        }
        self.binary, self.name = binary, name

    def start(self):
        """Starts the process and waits for /readyz; returns the milliseconds that took."""
        started = time.monotonic()
        self.process = subprocess.Popen([str(self.binary), "serve"], env=self.env)
        wait_http(f"http://127.0.0.1:{self.internal}/readyz")
        return (time.monotonic() - started) * 1000

    @property
    def pid(self):
        return self.process.pid

    def url(self, path, internal=False):
        return f"http://127.0.0.1:{self.internal if internal else self.public}{path}"

    def seed_token(self, code):
        """Exchanges one code; returns the stored token's id, for the lookups."""
        auth = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
        _, body = http("POST", self.url("/v1/exchange", internal=True), json.dumps({"code": code, "ref": "BENCH-1"}).encode(), auth)
        return json.loads(body)["id"]


def stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a short run for CI on SQLite only (no peer, no PostgreSQL): checks that everything works, writes nothing")
    parser.add_argument("--profile", action="store_true", help="also record perf profiles of the lookup and callback runs (and PostgreSQL's callbacks)")
    parser.add_argument("--runs", type=int, default=1, metavar="N", help="measure the headline pairs N times, alternating, and show median and min-max (default 1)")
    parser.add_argument("--peer", type=Path, default=PEER_SOURCE, metavar="DIR", help=f"the bench-peer's source (default {PEER_SOURCE})")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    duration = "1s" if args.smoke else "10s"
    commit_seconds = 0.5 if args.smoke else 5
    notes = []

    # The release binary keeps its symbol table (Cargo.toml), which is all --profile needs.
    binary = BINARY
    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "mondiapay-token-proxy"], cwd=ROOT, check=True)

    postgres_binaries = None
    if args.smoke:
        print("--smoke: the bench-peer and PostgreSQL are skipped; SQLite figures only, 1 s each", flush=True)
    else:
        postgres_binaries = pgcluster.server_binaries()
        if postgres_binaries is None:
            if os.environ.get("CI"):
                sys.exit("PostgreSQL's server binaries are missing (/usr/lib/postgresql/*/bin/initdb): apt-get install -y postgresql")
            print("PostgreSQL figures skipped: no server binaries under /usr/lib/postgresql (apt-get install -y postgresql)", flush=True)
            notes.append("PostgreSQL figures skipped: its server binaries were missing.")

    work = tempfile.mkdtemp(prefix="token-proxy-bench-")
    upstream, static = free_port(), free_port()
    processes, cluster = [], None
    f = report.Figures()
    try:
        # The static body is a real record's size: the lookup answers it is compared with.
        record = json.dumps({
            "id": "tok_AAAAAAAAAAAAAAAAAAAAAA", "access_token": "U0123456789abcdefghijklmnopqrstuvwx",
            "token_type": "bearer", "expires_at": "2026-11-26T06:00:00Z", "expires_in": 43187,
            "obtained_at": "2026-11-25T18:00:13Z", "ref": "BENCH-1", "uuid": None,
            "refresh_token": "R0123456789abcdefghijklmnopqrstuvwx"}, separators=(",", ":"))
        Path(work, "nginx.conf").write_text(NGINX_CONF.format(workers=os.cpu_count(), work=work, upstream=upstream, static=static,
                                                              token=TOKEN_BODY, prepared=PREPARED_BODY, record=record))
        processes.append(subprocess.Popen(["nginx", "-c", f"{work}/nginx.conf", "-p", work], stderr=subprocess.DEVNULL))
        wait_http(f"http://127.0.0.1:{static}/record")
        token_url = f"http://127.0.0.1:{upstream}/v1/api/oauth/token"

        peer_public = peer_internal = peer_token = None
        if not args.smoke:
            peer_public, peer_internal = free_port(), free_port()
            peer_process, note = peer.start(args.peer, ROOT / "target" / "bench-peer", work, token_url, API_KEY, peer_public, peer_internal)
            processes.append(peer_process)
            if note:
                notes.append(note)
            wait_http(f"http://127.0.0.1:{peer_internal}/v1/tokens/none", headers={"Authorization": f"Bearer {API_KEY}"}, any_status=True)
            # Its callback must answer 200 with the page naming the stored token, which the lookups read.
            status, body = http("GET", f"http://127.0.0.1:{peer_public}/oauth/callback?code=Abenchpeerseed&ref=BENCH-1")
            found = peer.TOKEN_ID.search(body)
            if status != 200 or not found:
                sys.exit(f"the bench-peer's callback answered {status} without a token id: {body[:200]!r}")
            peer_token = found.group().decode()
            status, _ = http("GET", f"http://127.0.0.1:{peer_internal}/v1/tokens/{peer_token}", headers={"Authorization": f"Bearer {API_KEY}"})
            if status != 200:
                sys.exit(f"the bench-peer's lookup answered {status}")

        service = Service(binary, upstream, f"sqlite://{work}/tokens.db", "sqlite")
        ready_ms = service.start()
        processes.append(service.process)
        time.sleep(0.5)
        rss_idle = rss_kib(service.pid)
        token_id = service.seed_token("Abenchseed")

        # The headline pairs, alternating when repeated; the first round is the one profiled.
        lookup = service.url(f"/v1/tokens/{token_id}", internal=True)
        for round_ in range(args.runs):
            if args.runs > 1:
                print(f"headline pairs, run {round_ + 1} of {args.runs}", flush=True)
            f.add("static", wrk(f"http://127.0.0.1:{static}/record", duration, 64))
            with profiled(args.profile and round_ == 0, service.pid, "lookups"):
                f.add("lookups", wrk(lookup, duration, 64, headers=[AUTH_HEADER]))
            if peer_public:
                f.add("peer_callbacks", wrk(f"http://127.0.0.1:{peer_public}/oauth/callback", duration, 64, script="peer-callback.lua"))
            with profiled(args.profile and round_ == 0, service.pid, "callbacks"):
                f.add("callbacks", wrk(service.url("/oauth/callback"), duration, 64, script="callback.lua"))
        if peer_internal:
            f.add("peer_lookups", wrk(f"http://127.0.0.1:{peer_internal}/v1/tokens/{peer_token}", duration, 64, headers=[AUTH_HEADER]))
        f.add("upstream", wrk(token_url, duration, 64, script="upstream.lua"))
        f.add("notifications", wrk(service.url(f"/mondiapay/notifications/{NOTIFICATION_SECRET}"), duration, 64, script="notification.lua"))
        f.add("upstream_1", wrk(token_url, duration, 1, script="upstream.lua"))
        f.add("exchange_1", wrk(service.url("/v1/exchange", internal=True), duration, 1, script="exchange.lua", env={"BENCH_API_KEY": API_KEY}))
        # The first purchase fetches the client token; the measured ones reuse it.
        http("POST", service.url("/v1/purchases", internal=True), b'{"subscription_type_id":12345}',
             {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
        f.add("prepare_1", wrk(f"http://127.0.0.1:{upstream}/v1/api/purchase/subscription/prepare", duration, 1, script="prepare.lua"))
        f.add("purchase_1", wrk(service.url("/v1/purchases", internal=True), duration, 1, script="purchase.lua", env={"BENCH_API_KEY": API_KEY}))
        f.add("static_256", wrk(f"http://127.0.0.1:{static}/record", duration, 256))
        with PeakRss(service.pid) as peak:
            f.add("lookups_256", wrk(lookup, duration, 256, headers=[AUTH_HEADER]))
        # The SQLite service and the peer are done: PostgreSQL's figures get the cores to themselves.
        for process in processes[1:]:
            stop(process)
        del processes[1:]

        if postgres_binaries:
            cluster = pgcluster.Cluster(postgres_binaries, free_port())
            cluster.start()
            first = Service(binary, upstream, cluster.url, "postgres-1")
            first.start()
            processes.append(first.process)
            pg_token = first.seed_token("Abenchpgseed")
            with profiled(args.profile, first.pid, "callbacks-postgres"):
                f.add("pg_callbacks", wrk(first.url("/oauth/callback"), duration, 64, script="callback.lua"))
            f.add("pg_lookups", wrk(first.url(f"/v1/tokens/{pg_token}", internal=True), duration, 64, headers=[AUTH_HEADER]))
            second = Service(binary, upstream, cluster.url, "postgres-2")
            second.start()
            processes.append(second.process)
            both = (first, second)
            f.add("pg2_callbacks", wrk_split([s.url("/oauth/callback") for s in both], duration, 32, script="callback.lua"))
            f.add("pg2_lookups", wrk_split([s.url(f"/v1/tokens/{pg_token}", internal=True) for s in both], duration, 32, headers=[AUTH_HEADER]))

        commits = sqlite_commit_rate(work, commit_seconds)
        for name, bad, socket_errors in f.bad():
            sys.exit(f"{name}: {bad} bad answers, socket errors {socket_errors}")
        extra = {"commits": commits, "rss_idle": rss_idle, "rss_peak": peak.peak, "ready_ms": ready_ms,
                 "binary_kib": binary.stat().st_size // 1024, "hot_functions": hot_functions(binary)}
        command = "python3 bench/run.py" + (" --smoke" if args.smoke else "") + (" --profile" if args.profile else "") + f" --runs {args.runs}"
        text, checks = report.render(f, extra, command, duration, args.runs, notes)
        print(text)
        print("Ratios and targets:")
        for check in checks:
            print(f"  {check}")
        if not args.smoke:
            (ROOT / "BENCHMARKS.md").write_text(text)
            print("written to BENCHMARKS.md")
    finally:
        for process in reversed(processes):
            stop(process)
        if cluster:
            cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
