#!/usr/bin/env python3
"""Writes layout/hot-functions.txt: the functions the service runs in its usual work, which
release builds place next to each other (see build.rs).

Builds the release binary (its symbol table names the functions) and runs it, with its default
log level, through start-up, the harness's SQLite work (lookups, callbacks with a fresh code each,
notifications, exchanges, purchases) and a stop by SIGTERM, twice: under callgrind, which sees
every function that runs but runs one thread at a time; then at full speed with the harness's
connections, three rounds as the harness runs them, under `perf`, which samples where the
threads are 20,000 times a second (what only runs when threads contend: locks, work stealing,
batches of many writes) and records every page fault (the function whose first run mapped a
chunk of code the list left out: a timer's work, a WAL's restart). Lists every function of the
binary seen in either run, in the order the linker had placed them. Run it twice after a change:
the second run starts from the first one's order and finds what the first missed. Run it after changes
that add or rename many functions; a stale list costs memory (the harness's peak RSS), never
correctness. Takes about five minutes after the build.

Needs: cargo, valgrind, perf, wrk and nginx (as bench/run.py).
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ beside the harness's modules
import run  # noqa: E402
from load import wrk  # noqa: E402

ROOT = run.ROOT
BINARY = run.BINARY
LIST = ROOT / "layout" / "hot-functions.txt"
HEADER = """\
# The functions the service ran in bench/hot_functions.py's work, in the order the linker placed
# them: release builds put them first (build.rs). Written by that script; do not edit.
"""


def build():
    # The very build that the list will order: its symbols' names are the ones the linker sees.
    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "mondiapay-token-proxy"], cwd=ROOT, check=True)


def load(*args, **kwargs):
    """One wrk run, whose every answer must be good: a run of refusals would list the wrong code."""
    result = wrk(*args, **kwargs)
    if result["bad"] or result["socket_errors"]:
        sys.exit(f"{args[0]}: {result['bad']} bad answers, socket errors {result['socket_errors']}")


def work(service, connections, rounds=1):
    """The harness's SQLite work, short (every function it runs is wanted, not its speed), and
    what a deployment runs besides: a result page after a callback, the probes, a scrape."""
    token_id = service.seed_token("Ahotfunctions")
    # urllib follows the callback's 303 to its result page, as a browser does.
    run.http("GET", service.url("/oauth/callback?ref=HOT-1&code=Ahotpage&status=200&message=OK"))
    for path in ("/healthz", "/readyz", "/metrics"):
        run.http("GET", service.url(path, internal=True))
    seconds = "4s"
    for _ in range(rounds):
        load(service.url(f"/v1/tokens/{token_id}", internal=True), seconds, connections, headers=[run.AUTH_HEADER])
        load(service.url("/oauth/callback"), seconds, connections, script="callback.lua")
    load(service.url(f"/mondiapay/notifications/{run.NOTIFICATION_SECRET}"), seconds, connections, script="notification.lua")
    load(service.url("/v1/exchange", internal=True), seconds, 1, script="exchange.lua", env={"BENCH_API_KEY": run.API_KEY})
    run.http("POST", service.url("/v1/purchases", internal=True), b'{"subscription_type_id":12345}',
             {"Authorization": f"Bearer {run.API_KEY}", "Content-Type": "application/json"})
    load(service.url("/v1/purchases", internal=True), seconds, 1, script="purchase.lua", env={"BENCH_API_KEY": run.API_KEY})
    load(service.url(f"/v1/tokens/{token_id}", internal=True), seconds, 4 * connections, headers=[run.AUTH_HEADER])


def under_callgrind(service, out):
    """The work under callgrind: every function that runs, one thread at a time."""
    service.process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--demangle=no", f"--callgrind-out-file={out}", str(BINARY), "serve"],
        env=service.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run.wait_http(service.url("/readyz", internal=True), timeout=120)
    work(service, 16)
    service.process.terminate()
    service.process.wait(timeout=120)
    return ran(out)


def sampled(service, out):
    """The work at full speed with the harness's connections and rounds, sampled and its page
    faults recorded by perf."""
    # perf starts the service itself, so that start-up's faults are recorded too (code chosen by
    # the CPU's features, such as AES with AVX-512, runs natively only, not under callgrind).
    service.process = subprocess.Popen(
        ["perf", "record", "-e", "cpu-clock/freq=20000/", "-e", "page-faults/period=1/", "-o", str(out), "--",
         str(BINARY), "serve"], env=service.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run.wait_http(service.url("/readyz", internal=True))
    work(service, 64, rounds=3)
    # perf passes SIGINT on to the service, and writes its data once the service has stopped.
    service.process.send_signal(signal.SIGINT)
    service.process.wait(timeout=300)
    report = subprocess.run(["perf", "report", "-i", str(out), "--no-demangle", "--stdio", "--sort", "symbol",
                             "--percent-limit", "0"], capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"\[\.\] (\S+)", report))


def ran(callgrind_out):
    """The (mangled) names of the functions callgrind saw run."""
    names, ran_ids = {}, set()
    for line in Path(callgrind_out).read_text(errors="replace").splitlines():
        found = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?$", line)
        if found:
            kind, number, name = found.groups()
            if name:
                names[number] = re.sub(r"'\d+$", "", name)  # callgrind marks recursion as name'2
            if kind == "fn":
                ran_ids.add(number)
    return {names[number] for number in ran_ids if number in names}


def placed(binary):
    """The binary's functions and their addresses."""
    listing = subprocess.run(["nm", "--defined-only", str(binary)], capture_output=True, text=True, check=True).stdout
    return {parts[2]: int(parts[0], 16) for parts in (line.split() for line in listing.splitlines())
            if len(parts) == 3 and parts[1] in "tTwW"}


def main():
    for tool in ("cargo", "valgrind", "perf", "wrk", "nginx", "nm"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is needed: see the docstring")
    build()
    scratch = Path(tempfile.mkdtemp(prefix="token-proxy-hot-"))
    upstream, static = run.free_port(), run.free_port()
    (scratch / "body").mkdir()
    (scratch / "nginx.conf").write_text(run.NGINX_CONF.format(
        workers=os.cpu_count(), work=scratch, upstream=upstream, static=static,
        token=run.TOKEN_BODY, prepared=run.PREPARED_BODY, record="{}"))
    nginx = subprocess.Popen(["nginx", "-c", str(scratch / "nginx.conf"), "-p", str(scratch)])
    seen = set()
    try:
        run.wait_http(f"http://127.0.0.1:{static}/record")
        for name, observe in (("callgrind", under_callgrind), ("perf", sampled)):
            service = run.Service(BINARY, upstream, f"sqlite://{scratch}/{name}.db", name)
            # The default log level, as deployed: the harness's `warn` would leave logging out.
            service.env.pop("RUST_LOG", None)
            try:
                found = observe(service, scratch / f"{name}.out")
                print(f"{name}: {len(found)} functions, {len(found - seen)} not seen before")
                seen |= found
            finally:
                if getattr(service, "process", None):
                    run.stop(service.process)
    finally:
        run.stop(nginx)
        shutil.rmtree(scratch, ignore_errors=True)
    addresses = placed(BINARY)
    hot = sorted((name for name in seen if name in addresses), key=addresses.get)
    LIST.parent.mkdir(exist_ok=True)
    LIST.write_text(HEADER + "".join(f"{name}\n" for name in hot))
    print(f"{len(hot)} of the binary's {len(addresses)} functions ran: written to {LIST.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
