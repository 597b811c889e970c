"""Streaming benchmark: segstream's worker against the Kafka clients' ceilings and its peers.

1. Throughput: a backlog of N flat JSON purchase messages (keyed by customer) is produced
   into one topic first, so producing is out of the way. Then, one after another, each
   consumer reads the whole backlog in its own consumer group and is timed from its first
   message to its last: the raw aiokafka and confluent-kafka clients counting only (the
   ceiling), `segstream worker` with the benchmark's rules and with one rule (timed by its
   /health counters), a Quix Streams app and a Pathway program keeping per-customer ltv,
   orders and last purchase, and `stream_baseline.py`, a plain Faust app with a table.
   Each one's count is checked: a consumer that dropped messages would flatter itself.
2. Latency: a fresh worker, events produced live at half segstream's measured rate (and
   again at 5,000/s) by `stream_producer.py` in its own process, with a probe purchase (a
   new customer who enters `big_spender` at once) every 20 ms; the time from handing a
   probe to the producer to receiving its change gives p50 and p99.
3. Scale by partitions: two workers in one group on the 4-partition backlog; the total rate
   once the group is settled, and each worker's share.

The broker is `scripts/kafka.sh` on $KAFKA_PORT if one is running there, else one started
(and removed) on a free port. Timings depend on the machine, and on a small one the
broker, the consumer and the producer share the cores; the ratios are the result.

    python benches/stream_throughput.py [--events 300000] [--runs 1] [--only quix,pathway]

(`make bench-stream ARGS="--runs 3"`.) With SEGSTREAM_BENCH_KEEP set, the consumers' logs
are kept and their folder printed.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from segstream.service.topics import ensure_topics
from stream_backlog import Totals, preload, purchase_messages
from stream_latency import measure_latency
from stream_processes import (
    PARTITIONS,
    Broker,
    Process,
    baseline_worker,
    run_peer,
    segstream_worker,
    wait_until,
)

RULES = """
currency_scale: 2
traits: {industry: string, company_size: int, newsletter: bool}
segments:
  - {name: dormant, rule: "orders >= 2 AND last_purchase_at < now() - INTERVAL '90 days'"}
  - {name: big_spender, rule: "ltv >= 500"}
  - name: browser
    rule: "events('page_view', within => INTERVAL '30 days') >= 5 AND orders <= 1"
  - {name: kitchen_no_tableware, rule: "has_category('kitchen') AND NOT has_category('tableware')"}
  - name: trade_buyer
    rule: "industry IN ('manufacturing', 'wholesale', 'logistics') AND company_size >= 100"
lifecycles:
  - name: vip_tier
    stages:
      - {name: gold, rule: "ltv >= 2000"}
      - {name: silver, rule: "ltv >= 800"}
      - {name: bronze, rule: "ltv >= 200"}
      - {name: regular, rule: "orders >= 1"}
"""
ONE_RULE = """
currency_scale: 2
segments:
  - {name: big_spender, rule: "ltv >= 500"}
"""
#: A second latency point, well below saturation, for reference.
LIGHT_RATE = 5_000.0
SEGSTREAM = "`segstream worker`, the stream benchmark's rules"
CONSUMERS = ("aiokafka", "confluent", "segstream", "one-rule", "quix", "pathway", "faust")


@dataclass
class Peer:
    """One row of the table: a consumer's rate in each run, and what its counts showed."""

    name: str
    rates: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.rates) if self.rates else float("nan")


class Bench:
    """The measurements, each in its own consumer group (and topics) on the one backlog."""

    def __init__(self, args: argparse.Namespace, broker: Broker, tmp: Path) -> None:
        self.args, self.broker, self.tmp = args, broker, tmp
        self.run_id = uuid.uuid4().hex[:8]
        self.topic = f"sb{self.run_id}-backlog"
        self.seq = 0

    def tag(self, what: str) -> str:
        self.seq += 1
        return f"sb{self.run_id}-{what}{self.seq}"

    def ensure(self, tag: str) -> None:
        names = [f"{tag}-traits", f"{tag}-changes", f"{tag}-dead"]
        asyncio.run(ensure_topics(self.broker.url, names, PARTITIONS))

    def timeout(self, n: int) -> float:
        return 120 + n / 500

    # -- one measurement each ---------------------------------------------------------

    def raw_client(self, client: str, totals: Totals) -> tuple[float, str | None]:
        tag = self.tag(client)
        report = run_peer(
            "stream_ceilings.py",
            [client, self.broker.bootstrap, self.topic, tag, totals.messages],
            self.tmp / f"{tag}.log",
            self.timeout(totals.messages),
        )
        return rate_of(report), count_problem(report["count"], totals.messages)

    def worker(self, rules: Path, totals: Totals) -> tuple[float, str | None]:
        tag = self.tag("seg")
        self.ensure(tag)
        worker = segstream_worker(
            self.broker, tag, self.topic, rules, self.tmp / tag, self.tmp / f"{tag}.log"
        )
        return measure_worker(worker, totals.messages, self.timeout(totals.messages))

    def baseline(self, n: int) -> tuple[float, str | None]:
        tag = self.tag("faust")
        self.ensure(tag)
        worker = baseline_worker(self.broker, tag, self.topic, self.tmp / f"{tag}.log")
        return measure_worker(worker, n, self.timeout(n) * 4, exact=False)

    def quix(self, totals: Totals) -> tuple[float, str | None]:
        tag = self.tag("quix")
        report = run_peer(
            "stream_quix.py",
            [self.broker.bootstrap, self.topic, tag, totals.messages, self.tmp / tag],
            self.tmp / f"{tag}.log",
            self.timeout(totals.messages) * 2,
        )
        problem = count_problem(report["count"], totals.messages)
        if problem is None and report["customers"] != totals.customers:
            problem = f"state for {report['customers']:,} customers, not {totals.customers:,}"
        return rate_of(report), problem

    def pathway(self, totals: Totals) -> tuple[float, str | None]:
        tag = self.tag("pathway")
        report = run_peer(
            "stream_pathway.py",
            [self.broker.bootstrap, self.topic, tag, totals.messages],
            self.tmp / f"{tag}.log",
            self.timeout(totals.messages),
            env={"PATHWAY_THREADS": str(self.args.pathway_threads)},
        )
        problem = count_problem(report["count"], totals.messages)
        ltv_cents = report["ltv"]
        if problem is None and report["customers"] != totals.customers:
            problem = f"{report['customers']:,} customers, not {totals.customers:,}"
        elif problem is None and ltv_cents != totals.ltv_cents:
            problem = f"ltv adds up to {ltv_cents:,} cents, not {totals.ltv_cents:,}"
        return rate_of(report), problem

    def scale(self, rules: Path, backlog: list[tuple[bytes, bytes]], one: float) -> None:
        """Two workers in one group on 4 partitions: total rate and each one's share.

        A worker that starts alone takes every partition and eats the backlog before the
        second has joined, so here the group settles on an empty topic first and the
        backlog is then sent in one burst (a few times faster than the two consume it).
        """
        tag = self.tag("scale")
        self.ensure(tag)
        events = f"{tag}-events"
        asyncio.run(ensure_topics(self.broker.url, [events], PARTITIONS))
        state = self.tmp / tag  # shared, as a handover between the two needs
        workers = [
            segstream_worker(self.broker, tag, events, rules, state, self.tmp / f"{tag}-{i}.log")
            for i in range(2)
        ]
        try:
            scale_run(self.broker, events, workers, backlog, one, self.timeout(len(backlog)))
        finally:
            for w in workers:
                w.stop()


def rate_of(report: dict[str, float]) -> float:
    """Messages/s after the first batch; NaN when there was nothing after it."""
    if report["timed"] <= 0 or report["seconds"] <= 0:
        return float("nan")
    return report["timed"] / report["seconds"]


def count_problem(count: int, expected: int) -> str | None:
    return None if count == expected else f"saw {count:,} of {expected:,} messages"


def applied(worker: Process) -> int:
    return int((worker.health() or {}).get("applied", 0))


def measure_worker(
    worker: Process, total: int, timeout: float, exact: bool = True
) -> tuple[float, str | None]:
    """events/s from the first applied message to the `total`-th; start-up is not counted."""
    try:
        first = wait_until(lambda: applied(worker), 180, "the first message to be applied", 0.02)
        started = time.perf_counter()
        done = wait_until(
            lambda: (n := applied(worker)) >= total and n, timeout, f"{total} applied", 0.05
        )
        seconds = time.perf_counter() - started
        health = worker.health() or {}
    finally:
        worker.stop()
    problem = None
    if exact and (done != total or health.get("applied") != total):
        problem = f"applied {health.get('applied'):,} of {total:,} messages"
    elif health.get("dead_letters"):
        problem = f"{health['dead_letters']:,} messages dead-lettered"
    return (done - first) / seconds, problem


def scale_run(
    broker: Broker,
    topic: str,
    workers: list[Process],
    backlog: list[tuple[bytes, bytes]],
    one: float,
    timeout: float,
) -> None:
    total = len(backlog)

    def settled() -> list[int] | None:
        owned = [len((w.health() or {}).get("partitions", {})) for w in workers]
        return owned if sum(owned) == PARTITIONS and min(owned) > 0 else None

    split = wait_until(settled, 180, "both workers to own partitions", 0.05)
    # The clock starts with the burst: the workers consume while it is being sent.
    started = time.perf_counter()
    produced = preload(broker.bootstrap, topic, backlog)
    wait_until(lambda: sum(applied(w) for w in workers) >= total, timeout, f"{total} applied")
    seconds = time.perf_counter() - started
    done = [applied(w) for w in workers]
    rate = sum(done) / seconds
    print(
        f"\nscale by partitions: 2 workers in one group, {PARTITIONS} partitions "
        f"({'+'.join(map(str, split))}), {os.cpu_count()} cores, the bench rules"
    )
    print(f"  backlog of {total:,} sent in one burst at {produced:,.0f}/s once the group settled")
    print(
        f"  total: {rate:,.0f} events/s from the start of the burst to the last message "
        f"({rate / one:.2f}× one worker's median above)"
    )
    for i, n in enumerate(done):
        print(f"  worker {i + 1}: {n / sum(done):.0%} of the messages ({n:,})")
    if sum(done) != total:
        print(f"  warning: applied {sum(done):,} of {total:,} in all")


def short_rate(rate: float) -> str:
    if rate >= 999_500:
        return f"{rate / 1e6:.2f}M"
    return f"{rate / 1000:,.0f}k" if rate >= 10_000 else f"{rate:,.0f}"


def print_table(peers: list[Peer], n: int) -> None:
    seg = next((p for p in peers if p.name == SEGSTREAM), None)
    print(f"\nthroughput on one backlog of {n:,} flat JSON purchase messages")
    print("| consumer | events/s per run | segstream (bench rules) ÷ this |")
    print("| --- | --- | --- |")
    for p in peers:
        runs = " / ".join(map(short_rate, p.rates)) or "-"
        ratio = (
            f"{seg.median / p.median:,.2f}×"
            if seg and seg.rates and p is not seg and p.rates
            else ""
        )
        name = f"{p.name} {p.note}".strip()
        print(f"| {name} | {runs} | {ratio} |")
    for p in peers:
        for problem in p.problems:
            print(f"  check failed, {p.name}: {problem}")
    if not any(p.problems for p in peers):
        print("every consumer's count matched the backlog (the peers' aggregates too)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000, help="backlog size")
    parser.add_argument("--runs", type=int, default=1, help="measurements per consumer")
    parser.add_argument(
        "--baseline-events",
        type=int,
        default=20_000,
        help="time the plain Faust app on the first N of the backlog only (0: all); it "
        "runs at a few hundred purchases/s, so the whole backlog would take long",
    )
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--pathway-threads", type=int, default=2)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument(
        "--latency-rate", type=float, default=None, help="events/s (default: half the max)"
    )
    parser.add_argument(
        "--only",
        type=lambda text: set(text.split(",")),
        default=set(CONSUMERS),
        help=f"comma-separated consumers to time (default: all of {','.join(CONSUMERS)})",
    )
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args()
    if unknown := args.only - set(CONSUMERS):
        parser.error(f"unknown consumers {sorted(unknown)}: pick from {', '.join(CONSUMERS)}")

    tmp = Path(tempfile.mkdtemp(prefix="segstream-bench-"))
    rules, one_rule = tmp / "rules.yaml", tmp / "one_rule.yaml"
    rules.write_text(RULES)
    one_rule.write_text(ONE_RULE)
    broker = Broker()
    try:
        print(
            f"broker 127.0.0.1:{broker.port} ({'started' if broker.owned else 'existing'}), "
            f"{PARTITIONS} partitions, {os.cpu_count()} cores"
        )
        bench = Bench(args, broker, tmp)
        backlog = purchase_messages(args.customers, args.events, seed=21)
        totals = Totals.of(backlog)
        asyncio.run(ensure_topics(broker.url, [bench.topic], PARTITIONS))
        rate = preload(broker.bootstrap, bench.topic, backlog)
        print(
            f"preloaded {totals.messages:,} messages of {totals.customers:,} customers "
            f"({rate:,.0f}/s produce)"
        )
        n_base = min(args.baseline_events or totals.messages, totals.messages)
        peers = [
            Peer("raw aiokafka `getmany(max_records=5000)`, counting only"),
            Peer(
                "raw confluent-kafka `consume(10000)`, `fetch.queue.backoff.ms=10`, counting only"
            ),
            Peer(SEGSTREAM),
            Peer("`segstream worker`, one rule (`ltv >= 500`)"),
            Peer("Quix Streams, same aggregates in a stateful `apply`"),
            Peer(
                f"Pathway, `pw.io.kafka.read` + `groupby().reduce()`, "
                f"{args.pathway_threads} threads"
            ),
            Peer(
                "plain Faust app + table (`stream_baseline.py`)",
                note="" if n_base == totals.messages else f"(first {n_base:,} messages)",
            ),
        ]
        steps = {
            "aiokafka": lambda: bench.raw_client("aiokafka", totals),
            "confluent": lambda: bench.raw_client("confluent", totals),
            "segstream": lambda: bench.worker(rules, totals),
            "one-rule": lambda: bench.worker(one_rule, totals),
            "quix": lambda: bench.quix(totals),
            "pathway": lambda: bench.pathway(totals),
            "faust": lambda: bench.baseline(n_base),
        }
        chosen = [
            (peer, step)
            for peer, (key, step) in zip(peers, steps.items(), strict=True)
            if key in args.only
        ]
        for run in range(args.runs):
            for peer, step in chosen:
                try:
                    rate, problem = step()
                except (RuntimeError, TimeoutError, subprocess.TimeoutExpired) as exc:
                    peer.problems.append(f"run {run + 1}: {exc}")
                    print(f"run {run + 1}: {peer.name}: failed: {exc}")
                    continue
                if math.isnan(rate):
                    # First batch and last were one: no span between them to time.
                    problem = "the backlog came in one batch, too few to time: raise --events"
                else:
                    print(f"run {run + 1}: {peer.name}: {rate:,.0f} events/s")
                    peer.rates.append(rate)
                if problem:
                    peer.problems.append(f"run {run + 1}: {problem}")
        print_table([p for p, _ in chosen], totals.messages)

        seg_rate = peers[2].median if peers[2].rates else args.latency_rate or 2 * LIGHT_RATE
        if not args.skip_latency:
            print()
            file = tmp / "backlog.tsv"
            file.write_bytes(b"".join(k + b"\t" + v + b"\n" for k, v in backlog))
            for target in [args.latency_rate or seg_rate / 2, LIGHT_RATE]:
                tag = bench.tag("latency")
                asyncio.run(ensure_topics(broker.url, [f"{tag}-events"], PARTITIONS))
                bench.ensure(tag)
                worker = segstream_worker(
                    broker, tag, f"{tag}-events", rules, tmp / tag, tmp / f"{tag}.log"
                )
                measure_latency(broker, tag, worker, file, target, args.latency_seconds)
        if not args.skip_scale:
            bench.scale(rules, backlog, peers[2].median)
    finally:
        broker.close()
        if os.environ.get("SEGSTREAM_BENCH_KEEP"):
            print(f"logs kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
