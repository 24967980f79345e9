"""The ledger over HTTP under concurrency, against a trivial FastAPI app served the same way.

    python bench/http.py [--clients 1,4,16] [--seconds 10] [--rounds 3] [--workers N]
                         [--opportunities 1000] [--growth 10000,100000] [--skip-mix]

On the PostgreSQL server named by the ``POSTGRES_*`` environment, in a throwaway database:

1. **The mix.** The demo data set (``services/demo.py``: an organisation of 24 reps under
   4 managers, customers and deals over simulated months) plus, per rep, a customer and
   five qualified deals at stage 3. ``salesledger project`` keeps the projections current
   and ``salesledger serve --workers N`` (default: serve's own default) serves the API.
   Each client is a different rep with its own token and asks, as fast as it is
   answered: 80 % reads — ``GET /funnel``, ``GET /forecasts/2026-Q3``, ``GET
   /opportunities/{id}``, ``GET /opportunities/{id}/history`` (20 % each) — and 20 %
   writes — open a deal, advance a deal's stage (3 ↔ 4), log an activity (a third each) —
   on its own deals. The baseline (``bench/baseline_app.py``: ``SELECT 1`` per read, one
   ``INSERT`` per write, through a psycopg pool, in the same 80/20 mix) is served by
   uvicorn with the same worker count. For 1, 4 and 16 clients the two alternate (A B B A
   …) for ``--rounds`` runs of ``--seconds`` each; each pair gives a ratio of req/s.
2. **The growth table** (``--growth``): for each size, a database of that many synthetic
   events (``bench/projections.py``'s generator, in time order), projected, served by one
   API process, and each read timed one after the other (p50/p99 of 200), beside a raw
   ``SELECT`` of the deal's rows.

Prints a table and a JSON document of every figure. Clients are threads of this process
(``bench/http_load.py``), so they share the 2 cores with the servers, as they did when the
issue's figures were taken.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

# Run as a script, this file's folder would come first on the path and this module
# would hide the standard library's ``http`` (which ``http.client`` needs).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

from aggregates.evaluation import QUALIFICATION_CRITERIA  # noqa: E402
from bench.harness import conninfo, fresh_database  # noqa: E402
from bench.http_load import (  # noqa: E402
    BaselineClient,
    Client,
    Request,
    Sample,
    median,
    per_kind,
    run_clients,
    salesledger,
    server,
    summary,
    uvicorn_baseline,
    wait_until_answering,
)
from commands.ledger import SalesLedger  # noqa: E402
from services.demo import DemoBuilder  # noqa: E402
from services.settings import Settings  # noqa: E402

LEDGER_PORT = int(os.environ.get("BENCH_LEDGER_PORT", "18731"))
BASELINE_PORT = int(os.environ.get("BENCH_BASELINE_PORT", "18732"))
DEALS_PER_REP = 5
FORECAST_PERIOD = "2026-Q3"
LOGS = Path(os.environ.get("BENCH_LOG_DIR", "/tmp"))


def server_env(dbname: str) -> dict[str, str]:
    """The ledger's settings for the bench's database (``LEDGER_*`` and ``POSTGRES_*``)."""
    settings = Settings(store="postgres")
    return {
        "LEDGER_STORE": "postgres",
        "POSTGRES_HOST": settings.postgres_host,
        "POSTGRES_PORT": str(settings.postgres_port),
        "POSTGRES_USER": settings.postgres_user,
        "POSTGRES_PASSWORD": settings.postgres_password,
        "POSTGRES_DBNAME": dbname,
        "LEDGER_POSTGRES_DBNAME": dbname,
    }


class RepClient(Client):
    """One rep of the demo organisation working their own deals."""

    def __init__(self, port: int, token: str, rep: str, customer: str, deals: list[str]) -> None:
        super().__init__(port, token)
        self.rep = rep
        self.customer = customer
        self.stages = dict.fromkeys(deals, 3)
        self.deals = deals
        self.opened = 0

    def next_request(self, rng: Any) -> Request:
        deal = self.deals[rng.randrange(len(self.deals))]
        draw = rng.random()
        if draw < 0.8:
            return self._read(draw, deal)
        if draw < 0.8 + 0.2 / 3:
            self.opened += 1
            return ("POST", "/opportunities", self._new_deal(), "open")
        if draw < 0.8 + 0.4 / 3:
            to_stage = 4 if self.stages[deal] == 3 else 3
            stage = {"to_stage": to_stage, "reason": "bench: customer feedback"}
            return ("POST", f"/opportunities/{deal}/stage", _json(stage), "advance_stage")
        activity = {"kind": "call", "summary": "followed up"}
        return ("POST", f"/opportunities/{deal}/activities", _json(activity), "log_activity")

    def _read(self, draw: float, deal: str) -> Request:
        if draw < 0.2:
            return ("GET", "/funnel", None, "funnel")
        if draw < 0.4:
            return ("GET", f"/forecasts/{FORECAST_PERIOD}", None, "forecasts")
        if draw < 0.6:
            return ("GET", f"/opportunities/{deal}", None, "deal")
        return ("GET", f"/opportunities/{deal}/history", None, "history")

    def _new_deal(self) -> bytes:
        return json.dumps(
            {
                "customer_id": self.customer,
                "owner_id": self.rep,
                "title": f"bench deal {self.opened}",
                "source": "referral",
                "amount": "25000.00",
                "expected_close": "2026-09-30",
                "product": "crm",
                "region": "north",
            }
        ).encode()

    def answered(self, request: Request, status: int, body: bytes) -> None:
        method, path, payload, kind = request
        if kind == "advance_stage" and 200 <= status < 300 and payload is not None:
            self.stages[path.split("/")[2]] = int(json.loads(payload)["to_stage"])


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def prepare(env: dict[str, str], opportunities: int) -> list[tuple[str, str, str, list[str]]]:
    """The demo data set, then per rep: a token, a customer and qualified deals at stage 3.
    Returns (rep, token, customer id, deal ids) for every rep."""
    ledger = SalesLedger(env=Settings(**_settings_kwargs(env)).event_store_env())
    started = time.perf_counter()
    builder = DemoBuilder(ledger, opportunities=opportunities, progress=False)
    built = builder.build()
    print(f"demo: {built.events:,} events in {time.perf_counter() - started:.0f} s", flush=True)
    reps = []
    criteria = dict.fromkeys(QUALIFICATION_CRITERIA, True)
    for rep in builder.reps:
        _, token = ledger.issue_token(rep, actor="admin")
        customer = ledger.register_customer(
            name=f"Bench customer of {rep}", source="referral", owner_id=rep, actor=rep
        ).aggregate_id
        deals = []
        for n in range(DEALS_PER_REP):
            deal = ledger.open_opportunity(
                customer_id=customer, owner_id=rep, title=f"{rep} bench {n}", source="referral",
                amount=Decimal("50000"), expected_close=date(2026, 9, 15), product="crm",
                region="north", actor=rep,
            ).aggregate_id
            ledger.qualify_opportunity(deal, criteria, actor=rep)
            ledger.advance_stage(deal, 2, actor=rep)
            ledger.advance_stage(deal, 3, actor=rep)
            deals.append(deal)
        reps.append((rep, token, customer, deals))
    ledger.close()
    return reps


def _settings_kwargs(env: dict[str, str]) -> dict[str, Any]:
    return {"store": "postgres", "postgres_dbname": env["POSTGRES_DBNAME"]}


def mix(args: argparse.Namespace) -> dict[str, Any]:
    """The mix at each client count, ledger and baseline alternating."""
    results: dict[str, Any] = {"workers": args.workers, "rounds": []}
    with fresh_database("http") as dbname:
        env = server_env(dbname)
        reps = prepare(env, args.opportunities)
        baseline_env = {"BENCH_BASELINE_CONNINFO": conninfo(dbname)}
        serve = salesledger("serve", "--port", str(LEDGER_PORT))
        if args.workers is not None:
            serve += ["--workers", str(args.workers)]
        with (
            server(salesledger("project"), env, LOGS / "bench-http-project.log"),
            server(serve, env, LOGS / "bench-http-serve.log") as api,
            server(uvicorn_baseline(BASELINE_PORT, args.workers or _serve_default()),
                   {**env, **baseline_env}, LOGS / "bench-http-baseline.log") as base,
        ):
            wait_until_answering(LEDGER_PORT, "/people", api)
            wait_until_answering(BASELINE_PORT, "/read", base)
            users = [RepClient(LEDGER_PORT, t, r, c, d) for r, t, c, d in reps]
            for clients in args.clients:
                results["rounds"].append(_at(clients, users, args))
    return results


def _serve_default() -> int:
    from services.cli_read import default_api_workers

    return default_api_workers("postgres")


def _at(clients: int, users: list[RepClient], args: argparse.Namespace) -> dict[str, Any]:
    """The reps keep their state (their deals' stages) from one run to the next."""

    def ledger_clients() -> list[Client]:
        return list(users[:clients])

    def baseline_clients() -> list[Client]:
        return [BaselineClient(BASELINE_PORT) for _ in range(clients)]

    run_clients(ledger_clients(), min(2.0, args.seconds), seed=0)  # warm-up
    run_clients(baseline_clients(), min(2.0, args.seconds), seed=0)
    ledger_runs, baseline_runs, ratios = [], [], []
    ledger_all = Sample()
    for n in range(args.rounds):
        order = ("ledger", "baseline") if n % 2 == 0 else ("baseline", "ledger")
        pair: dict[str, dict[str, Any]] = {}
        for system in order:
            make = ledger_clients if system == "ledger" else baseline_clients
            sample, seconds = run_clients(make(), args.seconds, seed=n + 1)
            pair[system] = summary(sample, seconds)
            if system == "ledger":
                ledger_all.extend(sample)
        ledger_runs.append(pair["ledger"])
        baseline_runs.append(pair["baseline"])
        ratios.append(pair["ledger"]["req_per_s"] / pair["baseline"]["req_per_s"])
        print(f"{clients:>3} clients round {n + 1}: ledger {pair['ledger']['req_per_s']} req/s "
              f"p99 {pair['ledger']['p99_ms']} ms errors {pair['ledger']['errors']} | baseline "
              f"{pair['baseline']['req_per_s']} req/s p99 {pair['baseline']['p99_ms']} ms",
              flush=True)
    return {
        "clients": clients,
        "ledger": ledger_runs,
        "baseline": baseline_runs,
        "ratio_req_per_s": [round(r, 3) for r in ratios],
        "ratio_median": median(ratios),
        "ledger_by_kind": per_kind(ledger_all),
    }


def print_mix(results: dict[str, Any]) -> None:
    print(f"\nworkers: {results['workers'] or _serve_default()}")
    print("| clients | ledger req/s | baseline req/s | ratio | ledger p50 / p99 ms | "
          "baseline p50 / p99 ms | ledger errors |")
    print("|---|---|---|---|---|---|---|")
    for row in results["rounds"]:
        def span(runs: list[dict[str, Any]], key: str) -> str:
            values = sorted(r[key] for r in runs)
            return f"{values[0]:g}–{values[-1]:g}"
        ledger, base = row["ledger"], row["baseline"]
        print(f"| {row['clients']} | {span(ledger, 'req_per_s')} | {span(base, 'req_per_s')} | "
              f"{row['ratio_median']:.3f} | {span(ledger, 'p50_ms')} / {span(ledger, 'p99_ms')} | "
              f"{span(base, 'p50_ms')} / {span(base, 'p99_ms')} | "
              f"{sum(r['errors'] for r in ledger)} |")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="default: serve's default")
    parser.add_argument("--opportunities", type=int, default=1000, help="demo size")
    parser.add_argument("--growth", default="", help="event counts, e.g. 10000,100000,1000000")
    parser.add_argument("--skip-mix", action="store_true")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    args.clients = [int(c) for c in args.clients.split(",") if c]
    args.growth = [int(g) for g in args.growth.split(",") if g]
    return args


def main() -> None:
    args = parse_args()
    results: dict[str, Any] = {}
    if not args.skip_mix:
        results["mix"] = mix(args)
        print_mix(results["mix"])
    if args.growth:
        from bench.http_growth import growth, print_growth

        results["growth"] = growth(args.growth)
        print_growth(results["growth"])
    text = json.dumps(results, indent=1)
    if args.json:
        args.json.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
