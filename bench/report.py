"""Renders one run's figures as BENCHMARKS.md's table, and the list of ratios against targets."""

import os
import platform
import statistics
from pathlib import Path

BENCH = Path(__file__).resolve().parent


class Figures:
    """Every figure as the list of its runs (one, or --runs N for the headline pairs)."""

    def __init__(self):
        self.runs = {}

    def add(self, name, figure):
        self.runs.setdefault(name, []).append(figure)

    def has(self, *names):
        return all(name in self.runs for name in names)

    def values(self, name, key="rate"):
        return [figure[key] for figure in self.runs[name]]

    def median(self, name, key="rate"):
        return statistics.median(self.values(name, key))

    def bad(self):
        """(name, bad answers, socket errors) of every run that had either."""
        return [(name, figure["bad"], figure["socket_errors"]) for name, figures in self.runs.items()
                for figure in figures if figure["bad"] or figure["socket_errors"]]

    def ratios(self, a, b):
        """a's rate over b's: per run when both ran as often (paired), else of their medians."""
        if len(self.runs[a]) == len(self.runs[b]):
            return [x / y if y else 0.0 for x, y in zip(self.values(a), self.values(b))]
        return [self.median(a) / self.median(b)]


def spread(values, fmt):
    shown = fmt(statistics.median(values))
    if len(values) > 1:
        shown += f" ({fmt(min(values))}–{fmt(max(values))})"
    return shown


def rate(f, name):
    return spread(f.values(name), lambda v: f"{v:,.0f}") + " req/s"


def latency(f, name):
    return f"{spread(f.values(name, 'p50'), lambda v: f'{v:.2f}')} / {spread(f.values(name, 'p99'), lambda v: f'{v:.2f}')} ms"


def times(values):
    return spread(values, lambda v: f"{v:.2f}×")


class Table:
    def __init__(self):
        self.rows, self.checks = [], []

    def row(self, figure, measured, reference="", reference_value="", ratio=None, target="—"):
        self.rows.append((figure, measured, reference, reference_value, times(ratio) if ratio else "", target))

    def check(self, label, value, at_least=None, at_most=None, unit="×"):
        """A figure with its target, for the summary printed at the end."""
        if at_least is not None:
            verdict = f"target ≥ {at_least}{unit}: {'met' if value >= at_least else 'missed'}"
        elif at_most is not None:
            verdict = f"target ≤ {at_most}{unit}: {'met' if value <= at_most else 'missed'}"
        else:
            verdict = "no target"
        self.checks.append(f"{label}: {value:.2f}{unit} ({verdict})")


def build(f, extra, cores):
    """The table rows and the checks, from the figures that ran (the peer and PostgreSQL may not)."""
    t = Table()
    med = statistics.median
    if f.has("callbacks", "peer_callbacks"):
        ratio = f.ratios("callbacks", "peer_callbacks")
        t.row("durable callbacks, fresh code each, 64 conns", rate(f, "callbacks"), "bench-peer callbacks, same wrk",
              rate(f, "peer_callbacks"), ratio, "≥ 5× (stretch 10×)")
        t.check("callbacks ÷ bench-peer callbacks", med(ratio), at_least=5)
    else:
        t.row("durable callbacks, fresh code each, 64 conns", rate(f, "callbacks"))
    t.row("callbacks p50 / p99, 64 conns", latency(f, "callbacks"), "bench-peer p50 / p99" if f.has("peer_callbacks") else "",
          latency(f, "peer_callbacks") if f.has("peer_callbacks") else "", None, "p99 ≤ 20 ms")
    t.check("callbacks p99", f.median("callbacks", "p99"), at_most=20, unit=" ms")

    ratio = f.ratios("lookups", "static")
    t.row("lookups by id, GET /v1/tokens/{id}, 64 conns", rate(f, "lookups"), f"static nginx ({cores} workers), same body size",
          rate(f, "static"), ratio, "≥ 0.7×")
    t.check(f"lookups ÷ static nginx ({cores} workers), 64 conns", med(ratio), at_least=0.7)
    t.row("lookups p50 / p99, 64 conns", latency(f, "lookups"), "static nginx p50 / p99", latency(f, "static"), None, "p99 ≤ 5 ms")
    t.check("lookups p99, 64 conns", f.median("lookups", "p99"), at_most=5, unit=" ms")
    if f.has("peer_lookups"):
        ratio = f.ratios("lookups", "peer_lookups")
        t.row("lookups by id, 64 conns", rate(f, "lookups"), "bench-peer lookups by id", rate(f, "peer_lookups"), ratio)
        t.check("lookups ÷ bench-peer lookups", med(ratio))
    ratio = f.ratios("lookups_256", "static_256")
    t.row("lookups by id, 256 conns", f"{rate(f, 'lookups_256')}, p99 {f.median('lookups_256', 'p99'):.2f} ms",
          "static nginx, 256 conns", f"{rate(f, 'static_256')}, p99 {f.median('static_256', 'p99'):.2f} ms", ratio, "≥ 0.7×")
    t.check(f"lookups ÷ static nginx ({cores} workers), 256 conns", med(ratio), at_least=0.7)
    t.row("RSS idle / peak under 256 conns", f"{extra['rss_idle'] / 1024:.1f} / {extra['rss_peak'] / 1024:.1f} MiB", target="≤ 24 MiB (stretch 20)")
    t.check("peak RSS, 256 conns", extra["rss_peak"] / 1024, at_most=24, unit=" MiB")

    if f.has("pg_callbacks"):
        peer = f.has("peer_callbacks")
        ratio = f.ratios("pg_callbacks", "peer_callbacks") if peer else None
        t.row("PostgreSQL, 1 replica: callbacks, 64 conns", f"{rate(f, 'pg_callbacks')}, {latency(f, 'pg_callbacks')}",
              "bench-peer callbacks" if peer else "", rate(f, "peer_callbacks") if peer else "", ratio)
        if peer:
            t.check("PostgreSQL 1 replica callbacks ÷ bench-peer callbacks", med(ratio))
        ratio = f.ratios("pg_lookups", "static")
        t.row("PostgreSQL, 1 replica: lookups by id, 64 conns", f"{rate(f, 'pg_lookups')}, {latency(f, 'pg_lookups')}",
              "static nginx", rate(f, "static"), ratio)
        t.check("PostgreSQL 1 replica lookups ÷ static nginx", med(ratio))
        ratio = f.ratios("pg2_callbacks", "pg_callbacks")
        t.row("PostgreSQL, 2 replicas: callbacks, 2 × 32 conns (summed; worse p50 / p99)",
              f"{rate(f, 'pg2_callbacks')}, {latency(f, 'pg2_callbacks')}", "1 replica, 64 conns", rate(f, "pg_callbacks"), ratio)
        t.check("PostgreSQL callbacks, 2 replicas ÷ 1 replica", med(ratio))
        ratio = f.ratios("pg2_lookups", "pg_lookups")
        t.row("PostgreSQL, 2 replicas: lookups by id, 2 × 32 conns (summed; worse p50 / p99)",
              f"{rate(f, 'pg2_lookups')}, {latency(f, 'pg2_lookups')}", "1 replica, 64 conns", rate(f, "pg_lookups"), ratio)
        t.check("PostgreSQL lookups, 2 replicas ÷ 1 replica", med(ratio))

    ratio = f.ratios("callbacks", "upstream")
    t.row("callbacks (informational)", rate(f, "callbacks"), "stand-in token endpoint called directly", rate(f, "upstream"), ratio)
    t.check("callbacks ÷ stand-in token endpoint called directly (informational)", med(ratio))
    commits = [extra["commits"]]
    callbacks_per_commit = [f.median("callbacks") / extra["commits"]]
    t.row("callbacks (informational)", rate(f, "callbacks"), "durable one-row SQLite commits in a loop", f"{extra['commits']:,.0f} /s",
          callbacks_per_commit)
    t.check("callbacks ÷ one-row commit loop (informational)", callbacks_per_commit[0])
    notifications = f.median("notifications") / commits[0]
    t.row("notifications, a new event each, 64 conns", f"{rate(f, 'notifications')}, p99 {f.median('notifications', 'p99'):.2f} ms",
          "durable one-row SQLite commits in a loop", f"{commits[0]:,.0f} /s", [notifications])
    t.check("notifications ÷ one-row commit loop (informational)", notifications)
    added = f.median("exchange_1", "p50") - f.median("upstream_1", "p50")
    t.row("exchange p50, 1 conn (POST /v1/exchange)", f"{f.median('exchange_1', 'p50'):.3f} ms", "token endpoint p50, 1 conn",
          f"{f.median('upstream_1', 'p50'):.3f} ms", None, f"added ≤ 1 ms: {added:.3f} ms")
    t.check("exchange added latency p50", added, at_most=1, unit=" ms")
    added = f.median("purchase_1", "p50") - f.median("prepare_1", "p50")
    t.row("purchase p50, 1 conn (POST /v1/purchases, client token cached)", f"{f.median('purchase_1', 'p50'):.3f} ms",
          "Prepare Purchase p50, 1 conn", f"{f.median('prepare_1', 'p50'):.3f} ms", None, f"added ≤ 1 ms: {added:.3f} ms")
    t.check("purchase added latency p50", added, at_most=1, unit=" ms")
    t.row("start to ready (process start → /readyz 200)", f"{extra['ready_ms']:.0f} ms", target="≤ 100 ms")
    t.check("start to ready", extra["ready_ms"], at_most=100, unit=" ms")
    t.row("release binary (its symbol table, never loaded, included)", f"{extra['binary_kib'] / 1024:.1f} MiB")
    if extra["hot_functions"]:
        found, listed = extra["hot_functions"]
        t.row("functions of layout/hot-functions.txt present in the binary (build.rs places them first)", f"{found:,} of {listed:,}")
    return t


def render(f, extra, command, duration, runs, notes):
    cores = os.cpu_count()
    table = build(f, extra, cores)
    runs_text = ("each figure measured once" if runs == 1 else
                 f"the headline pairs (service callbacks and bench-peer callbacks; service lookups and static nginx) "
                 f"measured {runs} times, alternating, shown as median (min–max) with the ratio of each pair per run")
    parts = [
        f"Measured by `{command}` on this machine: {cores} cores, {platform.machine()}, "
        f"Linux {platform.release()}; wrk with 2 threads for {duration} per figure ({runs_text}). "
        f"nginx with {cores} workers (as many as cores) is both the zero-latency MondiaPay stand-in and the static "
        "ceiling.",
    ]
    if f.has("peer_callbacks"):
        parts.append("The bench-peer (`../shared/bench-peer`: Express 5 + better-sqlite3, the handler a merchant would "
                     "otherwise write) runs against the same token endpoint with the same wrk settings.")
    parts.append("The service runs on SQLite (WAL, every write synced before it is acknowledged)")
    if f.has("pg_callbacks"):
        parts[-1] += (", then on a throwaway local PostgreSQL cluster (its defaults: fsync and synchronous_commit on) "
                      "with one replica and then two, all on the same disk. Two replicas are two processes on one "
                      "database, each loaded by its own wrk process (1 thread, 32 connections) at the same time: rates "
                      "summed, the worse p50 and p99 shown.")
    else:
        parts[-1] += "."
    parts.append("Load generator, ceilings" + (", peer" if f.has("peer_callbacks") else "") + " and service share the same cores, so every ratio compares figures "
                 "taken under the same conditions in one run.")
    lines = ["# Benchmarks", "", " ".join(parts)]
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    lines += [
        "",
        "| figure | measured | reference | reference value | ratio | target |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in table.rows:
        lines.append("| " + " | ".join(row) + " |")
    analysis = BENCH / "analysis.md"
    if analysis.exists():
        lines += ["", analysis.read_text().rstrip()]
    return "\n".join(lines) + "\n", table.checks
