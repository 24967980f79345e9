"""Operations subcommands: ``health`` (for container healthchecks)."""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from typing import Any

from services.worker_health import check_health_file


def register(subparsers: Any) -> None:
    health = subparsers.add_parser(
        "health",
        help="exit 0 if a worker's heartbeat file is fresh (--file) or a URL answers 2xx "
        "(--url, e.g. the API's /readyz); for healthchecks",
    )
    target = health.add_mutually_exclusive_group(required=True)
    target.add_argument("--file", help="a worker's LEDGER_HEALTH_FILE")
    target.add_argument("--url", help="an HTTP endpoint that must answer 2xx")
    health.add_argument("--max-age", type=float, default=30.0, help="seconds (with --file)")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds (with --url)")
    health.set_defaults(handler=_health)


def _health(args: argparse.Namespace) -> int:
    if args.file:
        problem = check_health_file(args.file, args.max_age)
    else:
        problem = _check_url(args.url, args.timeout)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


def _check_url(url: str, timeout: float) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as error:
        body = error.read()[:300].decode(errors="replace")
        return f"{url} answered {error.code}: {body}"
    except OSError as error:
        return f"{url} did not answer: {error}"
    return None
