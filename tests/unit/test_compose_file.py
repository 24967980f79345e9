"""docker-compose.yml against the Compose Specification's JSON schema, and the rules the
deployment keeps (one image built once, healthchecks, no swallowed failures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]
LEDGER_IMAGE = "salesledger:latest"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_the_compose_file_is_valid_against_the_compose_specification() -> None:
    schema = json.loads((ROOT / "tests" / "compose" / "compose-spec.json").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(compose()), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_the_schema_rejects_what_compose_rejects() -> None:
    schema = json.loads((ROOT / "tests" / "compose" / "compose-spec.json").read_text())
    broken = compose()
    broken["services"]["api"]["depends_on"]["init"]["condition"] = "service_done"
    assert not jsonschema.validators.validator_for(schema)(schema).is_valid(broken)


def ledger_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("image") == LEDGER_IMAGE
    }


def test_one_image_is_built_once_and_every_ledger_service_runs_it() -> None:
    services = ledger_services()
    assert set(services) == {"init", "api", "projector", "relay", "sealer", "cli"}
    assert [name for name, service in services.items() if "build" in service] == ["init"]
    assert all(s.get("pull_policy") == "never" for s in services.values())


def test_every_long_running_service_has_a_healthcheck_and_waits_for_init() -> None:
    for name, service in ledger_services().items():
        if name == "init":
            continue
        assert service["depends_on"]["init"]["condition"] == "service_completed_successfully"
        if "profiles" not in service:
            test = service["healthcheck"]["test"]
            assert test[:3] == ["CMD", "salesledger", "health"], name


def test_no_failure_is_swallowed_and_one_signing_key_is_shared() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    assert "|| true" not in text
    secret = compose()["secrets"]["ledger_signing_key"]
    assert secret["file"].startswith("./deploy/secrets/")
    for service in ledger_services().values():
        assert service["secrets"] == ["ledger_signing_key"]
        key = service["environment"]["LEDGER_SIGNING_KEY_FILE"]
        assert key == "/run/secrets/ledger_signing_key"


def test_the_build_context_leaves_out_the_virtualenv_and_databases() -> None:
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "**" in ignored  # everything left out but what is named
    allowed = {line[1:].rstrip("/") for line in ignored if line.startswith("!")}
    assert ".venv" not in allowed and not any(a.endswith(".db") for a in allowed)
    copied = {
        line.split()[1].rstrip("/").lstrip("./")
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
    }
    assert copied <= allowed | {""}
