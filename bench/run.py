#!/usr/bin/env python3
"""The benchmark harness of mondiapay-token-proxy.

Builds the release binary, starts nginx as a zero-latency MondiaPay token endpoint and as a
static responder, starts the service on SQLite, and measures with wrk, in one run, each figure
beside a ceiling measured on the same machine at the same time:

  lookups    GET /v1/tokens/{id}          vs  nginx answering a record-sized JSON body
  callbacks  fresh code per request       vs  the MondiaPay stand-in called directly,
                                              and the rate of durable one-row SQLite commits
  added latency of an exchange (p50, 1 connection) over a direct call of the stand-in
  notifications  a new eventUUID per request, each stored durably  vs  durable one-row SQLite commits
  added latency of a purchase (POST /v1/purchases, p50, 1 connection, client token cached) over a
  direct call of the stand-in's Prepare Purchase
  RSS idle and under 256 connections, start-to-ready time, stripped binary size

Writes BENCHMARKS.md (or prints only, with --smoke: a short run that checks the harness and the
service work, for CI; its numbers mean nothing). With --profile it builds a release binary with
symbols (target/profiling), records the service with `perf record -g` during the lookup and the
callback runs, and writes the hottest functions to bench/profile-lookups.txt and
bench/profile-callbacks.txt.

Needs: cargo, wrk and nginx (Debian: apt-get install -y wrk nginx-light), python3.
"""

import argparse
import json
import os
import platform
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "target" / "release" / "mondiapay-token-proxy"
API_KEY = "bQ8mZ3vK7xR2tW9nL4cH6jP1sF5gY0dA"
NOTIFICATION_SECRET = "bench-notification-secret-0123456789abcdef"
# nginx's `$request_id` (32 random hex digits) makes each purchase token a new one, as MondiaPay's are.
PREPARED_BODY = '{"purchaseToken":"$request_id","expiresIn":"300","_links":{"initiatePurchase":{"href":"https://gateway.mondiapay.example/v1/web/purchase/initiate/$request_id"}}}'
TOKEN_BODY = '{"access_token":"U0123456789abcdefghijklmnopqrstuvwx","token_type":"bearer","expires_in":"43200","refresh_token":"R0123456789abcdefghijklmnopqrstuvwx"}'


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.002)
    sys.exit(f"{url} did not answer within {timeout} s")


def http(method, url, body=None, headers=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read()


def to_ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url, duration, connections, script=None, headers=(), env=None):
    threads = min(2, connections)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}", "--latency"]
    for header in headers:
        command += ["-H", header]
    if script:
        command += ["-s", str(ROOT / "bench" / script)]
    command.append(url)
    output = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {
        "rate": rate,
        "p50": p50,
        "p99": p99,
        "bad": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else None,
    }


class profiled:
    """`perf record -g` of the service while the block runs; the top of the report goes to
    bench/profile-NAME.txt."""

    def __init__(self, enabled, pid, name):
        self.enabled, self.pid, self.name = enabled, pid, name
        self.data = Path(tempfile.gettempdir()) / f"token-proxy-{name}.perf"

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
        report = subprocess.run(["perf", "report", "-i", str(self.data), "--stdio", "--no-children", "--sort", "symbol",
                                 "--percent-limit", "1.5", "-g", "none"], capture_output=True, text=True).stdout
        lines = [line.split("  -  ")[0].rstrip() for line in report.splitlines() if line.strip() and not line.startswith("#")]
        header = f"# perf profile of the service during the {self.name} run (self time, functions over 1.5%)\n"
        (ROOT / "bench" / f"profile-{self.name}.txt").write_text(header + "\n".join(lines[:40]) + "\n")


def sqlite_commit_rate(directory, seconds):
    """Durable one-row transactions in a tight loop: the machine's synchronous-commit ceiling."""
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


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class PeakRss(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self):
        while self.running:
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.05)


NGINX_CONF = """
daemon off;
worker_processes 1;
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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a short run for CI: checks that everything works, writes nothing")
    parser.add_argument("--profile", action="store_true", help="also record perf profiles of the lookup and callback runs")
    args = parser.parse_args()
    duration = "1s" if args.smoke else "10s"
    commit_seconds = 0.5 if args.smoke else 5

    binary = BINARY
    if args.profile:
        binary = ROOT / "target" / "profiling" / "release" / "mondiapay-token-proxy"
        symbols = {"CARGO_PROFILE_RELEASE_STRIP": "false", "CARGO_PROFILE_RELEASE_DEBUG": "line-tables-only"}
        subprocess.run(["cargo", "build", "--release", "--locked", "--target-dir", "target/profiling", "--bin", "mondiapay-token-proxy"],
                       cwd=ROOT, check=True, env={**os.environ, **symbols})
    else:
        subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "mondiapay-token-proxy"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="token-proxy-bench-")
    upstream, static, public, internal = free_port(), free_port(), free_port(), free_port()
    processes = []
    try:
        # The static body is a real record's size: the lookup answers it is compared with.
        record = json.dumps({
            "id": "tok_AAAAAAAAAAAAAAAAAAAAAA", "access_token": "U0123456789abcdefghijklmnopqrstuvwx",
            "token_type": "bearer", "expires_at": "2026-11-26T06:00:00Z", "expires_in": 43187,
            "obtained_at": "2026-11-25T18:00:13Z", "ref": "BENCH-1", "uuid": None,
            "refresh_token": "R0123456789abcdefghijklmnopqrstuvwx"}, separators=(",", ":"))
        Path(work, "nginx.conf").write_text(NGINX_CONF.format(work=work, upstream=upstream, static=static, token=TOKEN_BODY, prepared=PREPARED_BODY, record=record))
        nginx = subprocess.Popen(["nginx", "-c", f"{work}/nginx.conf", "-p", work], stderr=subprocess.DEVNULL)
        processes.append(nginx)
        wait_http(f"http://127.0.0.1:{static}/record")

        env = {
            **os.environ,
            "RUST_LOG": "warn",
            "TOKEN_PROXY__MONDIAPAY__TOKEN_URL": f"http://127.0.0.1:{upstream}/v1/api/oauth/token",
            "TOKEN_PROXY__MONDIAPAY__API_URL": f"http://127.0.0.1:{upstream}",
            "TOKEN_PROXY__MONDIAPAY__CLIENT_ID": "bench",
            "TOKEN_PROXY__MONDIAPAY__CLIENT_SECRET": "bench-secret",
            "TOKEN_PROXY__MONDIAPAY__REDIRECT_URI": "https://shop.example/thanks",
            "TOKEN_PROXY__MONDIAPAY__MAX_CONCURRENT_EXCHANGES": "1024",
            "TOKEN_PROXY__PUBLIC__LISTEN": f"127.0.0.1:{public}",
            "TOKEN_PROXY__PUBLIC__RATE_LIMIT_PER_SECOND": "0",
            "TOKEN_PROXY__INTERNAL__LISTEN": f"127.0.0.1:{internal}",
            "TOKEN_PROXY__INTERNAL__API_KEYS": API_KEY,
            "TOKEN_PROXY__NOTIFICATIONS__SECRET": NOTIFICATION_SECRET,
            "TOKEN_PROXY__STORE__URL": f"sqlite://{work}/tokens.db",
            "TOKEN_PROXY__STORE__ENCRYPTION_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        }
        started = time.monotonic()
        service = subprocess.Popen([str(binary), "serve"], env=env)
        processes.append(service)
        wait_http(f"http://127.0.0.1:{internal}/readyz")
        start_to_ready_ms = (time.monotonic() - started) * 1000
        time.sleep(0.5)
        rss_idle = rss_kib(service.pid)

        auth = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
        status, body = http("POST", f"http://127.0.0.1:{internal}/v1/exchange", b'{"code":"Abenchseed","ref":"BENCH-1"}', auth)
        token_id = json.loads(body)["id"]

        results = {}
        results["static"] = wrk(f"http://127.0.0.1:{static}/record", duration, 64)
        with profiled(args.profile, service.pid, "lookups"):
            results["lookups"] = wrk(f"http://127.0.0.1:{internal}/v1/tokens/{token_id}", duration, 64, headers=[f"Authorization: Bearer {API_KEY}"])
        results["upstream"] = wrk(f"http://127.0.0.1:{upstream}/v1/api/oauth/token", duration, 64, script="upstream.lua")
        with profiled(args.profile, service.pid, "callbacks"):
            results["callbacks"] = wrk(f"http://127.0.0.1:{public}/oauth/callback", duration, 64, script="callback.lua")
        results["notifications"] = wrk(f"http://127.0.0.1:{public}/mondiapay/notifications/{NOTIFICATION_SECRET}", duration, 64, script="notification.lua")
        results["upstream_1"] = wrk(f"http://127.0.0.1:{upstream}/v1/api/oauth/token", duration, 1, script="upstream.lua")
        results["exchange_1"] = wrk(f"http://127.0.0.1:{internal}/v1/exchange", duration, 1, script="exchange.lua", env={"BENCH_API_KEY": API_KEY})
        # The first purchase fetches the client token; the measured ones reuse it.
        http("POST", f"http://127.0.0.1:{internal}/v1/purchases", b'{"subscription_type_id":12345}', auth)
        results["prepare_1"] = wrk(f"http://127.0.0.1:{upstream}/v1/api/purchase/subscription/prepare", duration, 1, script="prepare.lua")
        results["purchase_1"] = wrk(f"http://127.0.0.1:{internal}/v1/purchases", duration, 1, script="purchase.lua", env={"BENCH_API_KEY": API_KEY})
        peak = PeakRss(service.pid)
        peak.start()
        results["lookups_256"] = wrk(f"http://127.0.0.1:{internal}/v1/tokens/{token_id}", duration, 256, headers=[f"Authorization: Bearer {API_KEY}"])
        peak.running = False
        peak.join()
        commits = sqlite_commit_rate(work, commit_seconds)
        binary_kib = binary.stat().st_size // 1024

        for name, figures in results.items():
            if figures["bad"] or figures["socket_errors"]:
                sys.exit(f"{name}: {figures['bad']} bad answers, socket errors {figures['socket_errors']}")
        report = render(results, commits, rss_idle, peak.peak, start_to_ready_ms, binary_kib, duration)
        print(report)
        if not args.smoke:
            (ROOT / "BENCHMARKS.md").write_text(report)
            print("written to BENCHMARKS.md")
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def render(r, commits, rss_idle, rss_peak, ready_ms, binary_kib, duration):
    def ratio(a, b):
        return a / b if b else 0.0

    added_p50 = r["exchange_1"]["p50"] - r["upstream_1"]["p50"]
    purchase_added_p50 = r["purchase_1"]["p50"] - r["prepare_1"]["p50"]
    rows = [
        ("lookups, GET /v1/tokens/{id}, 64 conns", f"{r['lookups']['rate']:.0f} req/s", "static nginx, same body size", f"{r['static']['rate']:.0f} req/s", ratio(r["lookups"]["rate"], r["static"]["rate"]), "≥ 0.7×"),
        ("lookups p50 / p99, 64 conns", f"{r['lookups']['p50']:.2f} / {r['lookups']['p99']:.2f} ms", "static nginx p50 / p99", f"{r['static']['p50']:.2f} / {r['static']['p99']:.2f} ms", None, "p99 ≤ 5 ms"),
        ("callbacks, fresh code each, 64 conns", f"{r['callbacks']['rate']:.0f} req/s", "durable SQLite commits, one row each", f"{commits:.0f} /s", ratio(r["callbacks"]["rate"], commits), "≥ 10×"),
        ("callbacks, same", f"{r['callbacks']['rate']:.0f} req/s", "stand-in token endpoint called directly", f"{r['upstream']['rate']:.0f} req/s", ratio(r["callbacks"]["rate"], r["upstream"]["rate"]), "—"),
        ("callbacks p50 / p99", f"{r['callbacks']['p50']:.2f} / {r['callbacks']['p99']:.2f} ms", "", "", None, "—"),
        ("notifications, a new event each, 64 conns", f"{r['notifications']['rate']:.0f} req/s, p99 {r['notifications']['p99']:.2f} ms", "durable SQLite commits, one row each", f"{commits:.0f} /s", ratio(r["notifications"]["rate"], commits), "—"),
        ("exchange p50, 1 conn (POST /v1/exchange)", f"{r['exchange_1']['p50']:.3f} ms", "token endpoint p50, 1 conn", f"{r['upstream_1']['p50']:.3f} ms", None, f"added ≤ 1 ms: {added_p50:.3f} ms"),
        ("purchase p50, 1 conn (POST /v1/purchases, client token cached)", f"{r['purchase_1']['p50']:.3f} ms", "Prepare Purchase p50, 1 conn", f"{r['prepare_1']['p50']:.3f} ms", None, f"added ≤ 1 ms: {purchase_added_p50:.3f} ms"),
        ("RSS idle / peak under 256 conns", f"{rss_idle / 1024:.1f} / {rss_peak / 1024:.1f} MiB", "", "", None, "≤ 30 MiB"),
        ("lookups, 256 conns", f"{r['lookups_256']['rate']:.0f} req/s, p99 {r['lookups_256']['p99']:.2f} ms", "", "", None, "—"),
        ("start to ready (process start → /readyz 200)", f"{ready_ms:.0f} ms", "", "", None, "≤ 100 ms"),
        ("stripped release binary", f"{binary_kib / 1024:.1f} MiB", "", "", None, "—"),
    ]
    lines = [
        "# Benchmarks",
        "",
        f"Measured by `python3 bench/run.py` on {platform.node() and 'this machine'}: {os.cpu_count()} cores, "
        f"{platform.machine()}, Linux {platform.release()}; wrk with 2 threads for {duration} per figure, "
        "nginx (1 worker) as the zero-latency MondiaPay stand-in and the static ceiling, the service on "
        "SQLite (WAL, group commit: every write synced before it is acknowledged) on the same disk. Load generator, ceilings and service share "
        "the same 2 cores, so every ratio compares figures taken under the same conditions in one run.",
        "",
        "| figure | measured | ceiling | ceiling value | ratio | target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, value, ceiling, ceiling_value, ratio_value, target in rows:
        shown_ratio = f"{ratio_value:.2f}×" if ratio_value is not None else ""
        lines.append(f"| {name} | {value} | {ceiling} | {ceiling_value} | {shown_ratio} | {target} |")
    analysis = ROOT / "bench" / "analysis.md"
    if analysis.exists():
        lines += ["", analysis.read_text().rstrip()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
