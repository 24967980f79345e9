"""The Grafana dashboard in deploy/ plots only metrics the code exposes, and all of them."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_dashboard_plots_every_metric_and_no_other() -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    plotted = {
        re.sub(r"_(bucket|count|sum|total)$", "", name)
        for expr in expressions
        for name in re.findall(r"salesledger_\w+", expr)
    }
    source = (ROOT / "services" / "metrics.py").read_text()
    exposed = set(re.findall(r'"(salesledger_\w+)"', source))
    exposed |= {f"salesledger_{kind}_{what}" for kind in ("projection", "relay")
                for what in ("position", "lag_events")}
    assert plotted == exposed
