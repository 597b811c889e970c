"""The `segstream worker` and `segstream produce` subcommands."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
from typing import Any

from segstream.service.settings import ServiceSettings

DEFAULT_BROKER = "kafka://127.0.0.1:9092"


def register(subparsers: Any) -> None:
    """Add `worker` and `produce` to the `segstream` command's subparsers."""
    _register_worker(subparsers)
    _register_produce(subparsers)


def _register_worker(subparsers: Any) -> None:
    d = ServiceSettings(rules="")
    p = subparsers.add_parser(
        "worker",
        help="run the streaming service (a Faust worker) on a Kafka broker",
        description=(
            "Consume events and traits keyed by customer id, keep one engine per assigned "
            "partition, and publish segment changes. Start more workers with the same "
            "--app-id to share the partitions."
        ),
    )
    p.add_argument("rules", help="rule-set YAML file")
    p.add_argument("--broker", default=DEFAULT_BROKER, help="Kafka broker URL (%(default)s)")
    p.add_argument("--app-id", default=d.app_id, help="Faust app id / consumer group (%(default)s)")
    p.add_argument("--web-port", type=int, default=d.web_port, help="HTTP views port (%(default)s)")
    p.add_argument(
        "--web-bind",
        default=d.web_bind,
        help="address of the HTTP views (%(default)s); any other than loopback needs a token",
    )
    token = p.add_mutually_exclusive_group()
    token.add_argument(
        "--api-token-file",
        help="file holding the bearer token every view but /health requires",
    )
    token.add_argument(
        "--api-token",
        help="the token itself (visible to other local users in the process list: "
        "prefer --api-token-file or SEGSTREAM_API_TOKEN)",
    )
    p.add_argument("--events-topic", default=d.events_topic, help="(%(default)s)")
    p.add_argument("--traits-topic", default=d.traits_topic, help="(%(default)s)")
    p.add_argument("--changes-topic", default=d.changes_topic, help="(%(default)s)")
    p.add_argument("--dead-letter-topic", default=d.dead_letter_topic, help="(%(default)s)")
    p.add_argument(
        "--partitions",
        type=int,
        default=d.partitions,
        help="partitions of topics created when missing (%(default)s)",
    )
    p.add_argument(
        "--state-dir",
        default=d.state_dir,
        help="checkpoint directory or fsspec URL (%(default)s)",
    )
    p.add_argument(
        "--clock",
        choices=["wall", "watermark"],
        default=d.clock,
        help="what advances the engine clock between events (%(default)s)",
    )
    p.add_argument(
        "--tick-interval", type=float, default=d.tick_interval, help="seconds (%(default)s)"
    )
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="(%(default)s)")
    p.add_argument(
        "--checkpoint-interval",
        type=float,
        default=d.checkpoint_interval,
        help="seconds between checkpoints (%(default)s)",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=d.checkpoint_every,
        help="checkpoint a partition after this many messages (%(default)s)",
    )
    p.add_argument(
        "--max-message-bytes",
        type=int,
        default=d.max_message_bytes,
        help="larger messages are dead-lettered (%(default)s)",
    )
    p.add_argument(
        "--session-timeout",
        type=float,
        default=d.session_timeout,
        help="seconds before a silent worker's partitions move to the others (%(default)s)",
    )
    p.add_argument("--loglevel", default="info", help="(%(default)s)")
    p.set_defaults(func=run_worker)


def _register_produce(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "produce",
        help="send generated purchase events to the events topic",
        description="Send a seeded, generated event stream (JSON messages keyed by customer id).",
    )
    p.add_argument("--broker", default=DEFAULT_BROKER, help="Kafka broker URL (%(default)s)")
    p.add_argument("--topic", default="events", help="(%(default)s)")
    p.add_argument("--events", type=int, default=10_000, help="how many messages (%(default)s)")
    p.add_argument(
        "--rate", type=float, default=0.0, help="messages per second; 0 = as fast as possible"
    )
    p.add_argument("--customers", type=int, default=1_000, help="distinct customers (%(default)s)")
    p.add_argument("--seed", type=int, default=7, help="generator seed (%(default)s)")
    p.add_argument(
        "--traits",
        action="store_true",
        help="start with one trait upsert (identify) per customer",
    )
    p.add_argument(
        "--partitions",
        type=int,
        default=4,
        help="partitions if the topic must be created (%(default)s)",
    )
    p.add_argument(
        "--format",
        choices=("json", "arrow"),
        default="json",
        help="json: one message per event; arrow: Arrow IPC messages of many events (%(default)s)",
    )
    p.add_argument(
        "--rows-per-message",
        type=int,
        default=2_000,
        help="events per Arrow IPC message (%(default)s); keep a message under the worker's "
        "--max-message-bytes",
    )
    p.set_defaults(func=run_produce)


def settings_from_args(args: argparse.Namespace) -> ServiceSettings:
    return ServiceSettings(
        rules=args.rules,
        broker=args.broker,
        app_id=args.app_id,
        events_topic=args.events_topic,
        traits_topic=args.traits_topic,
        changes_topic=args.changes_topic,
        dead_letter_topic=args.dead_letter_topic,
        partitions=args.partitions,
        state_dir=args.state_dir,
        clock=args.clock,
        tick_interval=args.tick_interval,
        batch_size=args.batch_size,
        checkpoint_interval=args.checkpoint_interval,
        checkpoint_every=args.checkpoint_every,
        max_message_bytes=args.max_message_bytes,
        web_port=args.web_port,
        web_bind=args.web_bind,
        api_token=api_token(args),
        session_timeout=args.session_timeout,
    )


def api_token(args: argparse.Namespace) -> str | None:
    """The token from --api-token-file, --api-token or SEGSTREAM_API_TOKEN, in that order."""
    if args.api_token_file:
        with open(args.api_token_file, encoding="utf-8") as f:
            text = f.read().strip()
        if not text:
            raise ValueError(f"{args.api_token_file}: the API token file is empty")
        return text
    token: str | None = args.api_token or os.environ.get("SEGSTREAM_API_TOKEN") or None
    return token


def tune_gc() -> None:
    """Set the collector for a long-running worker that allocates in bursts.

    Each batch allocates many short-lived objects (Kafka records, the batch list) but
    creates no reference cycles worth chasing; with the default thresholds the
    collector ran every 700 allocations and took a seventh of the wall time. Objects
    alive at startup (modules, the app) are frozen out of every collection.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def run_worker(args: argparse.Namespace) -> int:
    from segstream import SegstreamError
    from segstream.service.app import create_app

    try:
        settings = settings_from_args(args)
        app = create_app(settings)
    except (SegstreamError, ValueError, OSError) as exc:
        print(f"segstream worker: {exc}", file=sys.stderr)
        return 2
    worker = app.Worker(loglevel=args.loglevel)
    # Faust's terminal spinner sets the root logger to DEBUG (so the spinner sees every
    # record) whenever the level is WARN or above; aiokafka then builds a debug record
    # for every send and fetch. The spinner is decoration: drop it.
    worker.spinner = None
    tune_gc()
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    return 0


def run_produce(args: argparse.Namespace) -> int:
    from segstream.generate import json_messages, purchase_events
    from segstream.service.produce import keyed, produce, produce_arrow

    logging.basicConfig(level=logging.WARNING)
    if args.format == "arrow":
        if args.traits:
            print("segstream produce: --traits needs --format json", file=sys.stderr)
            return 2
        batches = purchase_events(args.customers, args.events, seed=args.seed)
        report = asyncio.run(
            produce_arrow(
                args.broker,
                args.topic,
                batches,
                rows_per_message=args.rows_per_message,
                partitions=args.partitions,
            )
        )
        print(
            f"sent {report.events} events in {report.messages} Arrow IPC messages to "
            f"{args.topic} in {report.seconds:.2f}s ({report.rate:,.0f} events/s)"
        )
        return 0
    values = json_messages(
        customers=args.customers, events=args.events, seed=args.seed, traits=args.traits
    )
    messages = keyed(values)
    report = asyncio.run(
        produce(
            args.broker, args.topic, messages, rate=args.rate or None, partitions=args.partitions
        )
    )
    print(
        f"sent {report.messages} messages to {args.topic} in {report.seconds:.2f}s "
        f"({report.rate:,.0f}/s)"
    )
    return 0
