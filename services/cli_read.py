"""Read-side subcommands: serve (the HTTP API), project (the workers), rebuild."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from tqdm import tqdm

from projections.read_store import open_read_store
from projections.registry import all_projections, projection_names
from projections.runner import ProjectionRunner, ProjectionWorker
from services.bootstrap import EVENTS_CHANNEL, build_ledger
from services.settings import Settings

PROGRESS_INTERVAL_SECONDS = 0.5


def register(subparsers: Any) -> None:
    serve = subparsers.add_parser(
        "serve", help="run the HTTP API (on SQLite it also keeps the projections current)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--project",
        choices=("auto", "yes", "no"),
        default="auto",
        help="run the projection worker in-process (auto: only on SQLite)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="API processes (PostgreSQL only; projections then run in `salesledger project`): "
        "commands of concurrent clients run in parallel instead of sharing one interpreter",
    )
    serve.set_defaults(handler=_serve)

    project = subparsers.add_parser(
        "project", help="run the projection workers until interrupted (for PostgreSQL)"
    )
    project.add_argument("--poll-interval", type=float, default=0.5, help="seconds")
    project.add_argument("--batch-size", type=int, default=2000)
    project.add_argument(
        "--once", action="store_true", help="catch up once and exit instead of following"
    )
    project.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        default=None,
        help="run only these projections, e.g. to spread them over processes "
        f"(default: all of {', '.join(projection_names())})",
    )
    project.set_defaults(handler=_project)

    rebuild = subparsers.add_parser("rebuild", help="rebuild projections from event 1")
    rebuild.add_argument(
        "names", nargs="*", metavar="NAME", help=f"default: all of {', '.join(projection_names())}"
    )
    rebuild.set_defaults(handler=_rebuild)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from services.api.app import create_app

    settings = Settings()
    if args.workers > 1:
        if settings.store != "postgres" or args.project == "yes":
            print(
                "serve: --workers above 1 needs LEDGER_STORE=postgres, with the projections "
                "in their own process (`salesledger project`), not --project yes",
                file=sys.stderr,
            )
            return 2
        uvicorn.run(
            "services.api.app:create_api_worker",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
        )
        return 0
    in_process = {"auto": None, "yes": True, "no": False}[args.project]
    app = create_app(settings, project_in_process=in_process)
    uvicorn.run(app, host=args.host, port=args.port)
    return 0


def _project(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not _known_projections(args.only or ()):
        return 2
    settings = Settings()
    database = open_read_store(settings)
    projections = [p for p in all_projections() if not args.only or p.name in args.only]
    runner = ProjectionRunner(
        build_ledger(settings), database, projections, batch_size=args.batch_size
    )
    if args.once:
        applied = _with_progress(runner, runner.catch_up, "catching up")
        print(f"applied {applied} events; positions {runner.positions()}")
        return 0
    worker = ProjectionWorker(runner, EVENTS_CHANNEL, poll_interval=args.poll_interval)
    stopped = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        stopped.set()
        worker.stop(timeout=0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"projecting {', '.join(runner.names)} from positions {runner.positions()}", flush=True)
    worker.run()
    database.close()
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    if not _known_projections(args.names):
        return 2
    settings = Settings()
    runner = ProjectionRunner(build_ledger(settings), open_read_store(settings), all_projections())
    applied = _with_progress(runner, lambda: runner.rebuild(args.names or None), "rebuilding")
    print(
        f"rebuilt {', '.join(args.names or runner.names)} from {applied} events; "
        f"positions {runner.positions()}"
    )
    return 0


def _known_projections(names: Sequence[str]) -> bool:
    """Whether every one of ``names`` is a projection; if not, says which are not."""
    unknown = sorted(set(names) - set(projection_names()))
    if unknown:
        print(f"error: unknown projections {unknown}; choose from {projection_names()}")
    return not unknown


def _with_progress(runner: ProjectionRunner, work: Callable[[], int], description: str) -> int:
    """Run ``work`` with a progress bar (on a terminal) of the slowest projection's position."""
    target = runner.ledger.store.max_committed_notification_id()
    done = threading.Event()

    def report() -> None:
        with tqdm(total=target, desc=description, unit="event", disable=None) as bar:
            while not done.wait(PROGRESS_INTERVAL_SECONDS):
                bar.update(max(0, min(runner.positions().values(), default=0) - bar.n))
            bar.update(max(0, target - bar.n))

    reporter = threading.Thread(target=report, daemon=True)
    reporter.start()
    try:
        return work()
    finally:
        done.set()
        reporter.join()
