"""A scrape while a worker starts or stops: its half-made or vanished file is skipped."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from services import metrics


class _Nothing(Collector):
    def collect(self) -> list[Metric]:
        return []


def test_a_worker_file_created_but_not_yet_sized_does_not_break_a_scrape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    from prometheus_client import values

    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    try:
        counter = Counter("demo_things", "Things.", registry=CollectorRegistry())
        counter.inc(3)
        (tmp_path / "counter_99999.db").write_bytes(b"")  # a worker mid-start

        text = metrics.exposition(_Nothing()).decode()
    finally:
        monkeypatch.delenv(metrics.MULTIPROC_ENV)
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]

    assert "demo_things_total 3.0" in text
