"""Read-side subcommands: serve (the HTTP API), project (the workers), rebuild."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from tqdm import tqdm

from projections.registry import all_projections, projection_names, spread_over_processes
from projections.runner import DEFAULT_BATCH_SIZE, ProjectionRunner, ProjectionWorker
from services.bootstrap import EVENTS_CHANNEL, build_ledger, until_reachable
from services.logs import configure_logging
from services.read_store import open_read_store
from services.settings import Settings
from services.worker_health import report_health

PROGRESS_INTERVAL_SECONDS = 0.5
PARENT_CHECK_SECONDS = 0.5

log = logging.getLogger(__name__)


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
        default=None,
        help="API processes (PostgreSQL only; projections then run in `salesledger project`): "
        "commands of concurrent clients run in parallel instead of sharing one interpreter "
        "(default: see default_api_workers; 1 on SQLite or with --project yes)",
    )
    serve.set_defaults(handler=_serve)

    project = subparsers.add_parser(
        "project", help="run the projection workers until interrupted (for PostgreSQL)"
    )
    project.add_argument("--poll-interval", type=float, default=0.5, help="seconds")
    project.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
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
    project.add_argument(
        "--processes",
        type=int,
        default=None,
        help="worker processes to spread the projections over (PostgreSQL only; default 1): "
        "with 2, the funnel gets one of its own, reading only its events; with more, "
        "monitoring too, then the audit trail",
    )
    project.add_argument("--worker-of", type=int, metavar="PID", help=argparse.SUPPRESS)
    project.set_defaults(handler=_project)

    rebuild = subparsers.add_parser("rebuild", help="rebuild projections from event 1")
    rebuild.add_argument(
        "names", nargs="*", metavar="NAME", help=f"default: all of {', '.join(projection_names())}"
    )
    rebuild.add_argument(
        "--processes",
        type=int,
        default=None,
        help="worker processes to replay in, as for `project` (default: 2 on PostgreSQL where "
        "the machine has 2 or more CPUs, else 1); with --in-place",
    )
    rebuild.add_argument(
        "--in-place",
        action="store_true",
        help="drop the live tables and replay into them (queries see partial data meanwhile); "
        "the default on PostgreSQL fills new tables beside the live ones and switches to "
        "them once caught up, while queries go on answering from the old ones",
    )
    rebuild.set_defaults(handler=_rebuild)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from services.api.app import create_app

    settings = Settings()
    if args.workers is None:
        args.workers = 1 if args.project == "yes" else default_api_workers(settings.store)
    if args.workers > 1:
        if settings.store != "postgres" or args.project == "yes":
            print(
                "serve: --workers above 1 needs LEDGER_STORE=postgres, with the projections "
                "in their own process (`salesledger project`), not --project yes",
                file=sys.stderr,
            )
            return 2
        from services.metrics import prepare_multiprocess_directory

        prepare_multiprocess_directory()
        uvicorn.run(
            "services.api.app:create_api_worker",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_config=None,  # each worker logs JSON (create_api_worker)
            access_log=False,  # one JSON line per request instead (observability)
        )
        return 0
    configure_logging()
    in_process = {"auto": None, "yes": True, "no": False}[args.project]
    app = create_app(settings, project_in_process=in_process)
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False)
    return 0


def _project(args: argparse.Namespace) -> int:
    configure_logging()
    if not _known_projections(args.only or ()):
        return 2
    settings = Settings()
    names = [name for name in projection_names() if not args.only or name in args.only]
    groups = _process_groups(args.processes, settings, names)
    if groups is None:
        return 2
    database = open_read_store(settings)
    projections = [p for p in all_projections() if p.name in names]
    ledger = until_reachable(lambda: build_ledger(settings), "the event store")
    runner = until_reachable(
        lambda: ProjectionRunner(ledger, database, projections, batch_size=args.batch_size),
        "the read store",
    )
    health = report_health(
        "" if args.once else settings.health_file,
        "project",
        lambda: min(runner.positions().values(), default=0),
    )
    if len(groups) > 1:
        try:
            return _project_in_processes(
                runner,
                groups,
                once=args.once,
                batch_size=args.batch_size,
                poll_interval=args.poll_interval,
            )
        finally:
            health.stop()
            database.close()
    if args.worker_of:  # a worker process of `project --processes N`
        _end_with_parent(args.worker_of)
    if args.once:
        if args.worker_of:
            applied = runner.catch_up()
        else:
            applied = _with_progress(runner, runner.catch_up, "catching up")
        print(f"applied {applied} events; positions {runner.positions()}", flush=True)
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
    health.stop()
    database.close()
    return 0


def _end_with_parent(parent: int) -> None:
    """End this worker process (SIGTERM to itself: a follower stops after its batch) once
    it is no longer ``parent``'s child: also when the parent was killed without a chance
    to stop it."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        log.info("parent process %s is gone: stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def default_processes(store: str, *, rebuilding: bool = False) -> int:
    """Worker processes by default. Following the ledger (``salesledger project``): one,
    as every process pays each pass's fixed round trips and its read of the new events,
    and under the HTTP mix one process left the API a third more requests per second
    than two (``bench/http.py``, docs/projections.md). Replaying from event 1
    (``rebuild --in-place``): two on PostgreSQL where the machine has two CPUs or more,
    else one."""
    if not rebuilding:
        return 1
    return 2 if store == "postgres" and (os.cpu_count() or 1) > 1 else 1


API_WORKERS_PER_CPU = 1
"""``salesledger serve``'s API processes per CPU on PostgreSQL (measured with
``bench/http.py``, see the README's figures)."""


def default_api_workers(store: str) -> int:
    """``salesledger serve``'s API processes by default: one per CPU on PostgreSQL (the
    GIL lets one process use one core), one on SQLite (a single writer, the projections
    in the same process)."""
    if store != "postgres":
        return 1
    return max(1, API_WORKERS_PER_CPU * (os.cpu_count() or 1))


def _process_groups(
    processes: int | None, settings: Settings, names: Sequence[str], *, rebuilding: bool = False
) -> list[list[str]] | None:
    """``names`` spread over ``processes`` (default: ``default_processes``); None, having
    said why, if that many cannot be used here."""
    if processes is None:
        processes = default_processes(settings.store, rebuilding=rebuilding)
    if processes < 1 or (processes > 1 and settings.store != "postgres"):
        print(
            "error: --processes must be 1 or more, and above 1 only with "
            "LEDGER_STORE=postgres (SQLite has one writer)",
            file=sys.stderr,
        )
        return None
    return spread_over_processes(names, processes)


def _project_in_processes(
    runner: ProjectionRunner,
    groups: list[list[str]],
    *,
    once: bool,
    batch_size: int = DEFAULT_BATCH_SIZE,
    poll_interval: float = 0.5,
) -> int:
    """Run each group of projections in a worker process of its own (``project --only
    GROUP --processes 1``) until they all end (``--once``) or a signal stops them; one
    that fails stops the others, and its exit status is returned. ``runner`` (of those
    projections, or more) has made their tables before the workers start, and gives the
    progress."""
    command = [
        sys.executable,
        "-m",
        "services.cli",
        "project",
        "--processes",
        "1",
        "--batch-size",
        str(batch_size),
        "--poll-interval",
        str(poll_interval),
        "--worker-of",
        str(os.getpid()),
        *(["--once"] if once else []),
        "--only",
    ]
    stopping = threading.Event()

    def stop(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"projecting in {len(groups)} processes: {groups}", flush=True)
    # The parent reports the health of them all (it ends when one of them does).
    environment = {**os.environ, "LEDGER_HEALTH_FILE": ""}
    workers = [subprocess.Popen([*command, *group], env=environment) for group in groups]
    failed = 0
    with tqdm(
        total=runner.ledger.store.max_committed_notification_id(),
        desc="catching up",
        unit="event",
        disable=None if once else True,
    ) as bar:
        while not stopping.wait(PROGRESS_INTERVAL_SECONDS):
            failed = next((w.returncode for w in workers if w.returncode), 0)
            if once:
                bar.update(max(0, min(runner.positions().values(), default=0) - bar.n))
            if failed or all(worker.poll() is not None for worker in workers):
                break
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    codes = [worker.wait() for worker in workers]
    status = failed or next((code for code in codes if code), 0)
    return status if status >= 0 else 128 - status  # killed by a signal: 128 + its number


def _rebuild(args: argparse.Namespace) -> int:
    if not _known_projections(args.names):
        return 2
    settings = Settings()
    if settings.store == "postgres" and not args.in_place:
        return _rebuild_beside(settings, args.names)
    groups = _process_groups(
        args.processes, settings, args.names or projection_names(), rebuilding=True
    )
    if groups is None:
        return 2
    runner = ProjectionRunner(build_ledger(settings), open_read_store(settings), all_projections())
    rebuilt = ", ".join(args.names or runner.names)
    if len(groups) > 1:
        runner.reset(args.names or None)
        if status := _project_in_processes(runner, groups, once=True):
            return status
        print(f"rebuilt {rebuilt} in {len(groups)} processes; positions {runner.positions()}")
        return 0
    applied = _with_progress(runner, lambda: runner.rebuild(args.names or None), "rebuilding")
    print(f"rebuilt {rebuilt} from {applied} events; positions {runner.positions()}")
    return 0


def _rebuild_beside(settings: Settings, names: Sequence[str]) -> int:
    from services.rebuild import rebuild_beside

    chosen = [p for p in all_projections() if not names or p.name in names]
    live = open_read_store(settings)
    try:
        replayed = rebuild_beside(build_ledger(settings), live, chosen)
    finally:
        live.close()
    print(f"rebuilt {', '.join(p.name for p in chosen)} from {replayed} events beside the "
          "live tables, and switched to them")
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
