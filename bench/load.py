"""Load generation with wrk, and the resident memory of a process while it is loaded."""

import os
import re
import subprocess
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def to_ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _command(url, duration, connections, threads, script, headers):
    # wrk's default 2 s timeout drops slower answers from the latency figures and fails the run; under
    # a shared machine's load the bench-peer's p99 nears a second, so a slow answer is measured instead.
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}", "--timeout", "10s", "--latency"]
    for header in headers:
        command += ["-H", header]
    if script:
        command += ["-s", str(BENCH / script)]
    command.append(url)
    return command


def _parse(output):
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = to_ms(re.search(r"^\s+50%\s+(\S+)", output, re.M).group(1))
    p99 = to_ms(re.search(r"^\s+99%\s+(\S+)", output, re.M).group(1))
    # wrk counts answers above 399 here; every figure must have none.
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    # A script that checks every answer's status reports what it refused (see peer-callback.lua).
    refused = re.search(r"Answers other than 200: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {
        "rate": rate,
        "p50": p50,
        "p99": p99,
        "bad": max(int(errors.group(1)) if errors else 0, int(refused.group(1)) if refused else 0),
        "socket_errors": socket_errors.group(1) if socket_errors else None,
    }


def _settle_disk():
    """Writes back what the last figure left dirty in the page cache (the bench-peer syncs rarely;
    SQLite's checkpoints leave the database's pages to the kernel), so that no figure pays for
    the one before it."""
    os.sync()


def wrk(url, duration, connections, script=None, headers=(), env=None, threads=None):
    """One wrk run: requests per second, p50 and p99 in ms, bad answers and socket errors."""
    threads = threads or min(2, connections)
    command = _command(url, duration, connections, threads, script, headers)
    _settle_disk()
    output = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=True).stdout
    return _parse(output)


def wrk_split(urls, duration, connections_each, script=None, headers=(), env=None):
    """One wrk process per URL (one thread each), all at once: the summed rate, the worse p50 and
    p99, every bad answer. How load is spread over several replicas without a balancer in between."""
    _settle_disk()
    processes = [subprocess.Popen(_command(url, duration, connections_each, 1, script, headers), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}) for url in urls]
    parts = []
    for process in processes:
        output, error = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"wrk failed: {error.strip()}")
        parts.append(_parse(output))
    socket_errors = [part["socket_errors"] for part in parts if part["socket_errors"]]
    return {
        "rate": sum(part["rate"] for part in parts),
        "p50": max(part["p50"] for part in parts),
        "p99": max(part["p99"] for part in parts),
        "bad": sum(part["bad"] for part in parts),
        "socket_errors": "; ".join(socket_errors) or None,
        "parts": [part["rate"] for part in parts],
    }


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class PeakRss(threading.Thread):
    """Samples a process's resident memory every 50 ms while it runs; `peak` is the highest seen."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self):
        while self.running:
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.05)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *_):
        self.running = False
        self.join()
