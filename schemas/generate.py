"""Generate the JSON Schema of every published event from the event classes.

``python -m schemas.generate`` writes ``schemas/events/{aggregate}.{Event}.v{N}.json``
for the current version of each event class; schemas of older versions stay, since
their messages remain on the topics. ``python -m schemas.generate --check`` exits 1
if a checked-in schema disagrees with its event class (the unit tests check the same).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import sys
import types
import typing
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.domain import CanMutateAggregate

from events.messages import (
    AGGREGATE_TYPES,
    STORAGE_ONLY_FIELDS,
    aggregate_type_of,
    event_type_name,
    schema_id,
    schema_version_of,
)
from events.personal import PUBLISHED_PERSONAL_SCHEMA, personal_fields_of

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
EVENT_SCHEMAS_DIR = Path(__file__).parent / "events"
DECIMAL_PATTERN = r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$"


def event_classes() -> Iterator[type]:
    """Every event class of every published aggregate type, in a stable order."""
    for aggregate_type in AGGREGATE_TYPES:
        module = importlib.import_module(f"events.{aggregate_type}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, CanMutateAggregate):
                yield cls


def schema_file_name(event_class: type) -> str:
    return (
        f"{aggregate_type_of(event_class)}.{event_class.__name__}"
        f".v{schema_version_of(event_class)}.json"
    )


def type_schema(annotation: Any) -> dict[str, Any]:
    """The JSON Schema of a value of the annotated Python type, as ``events.messages``
    encodes it. Aggregate ids, a type variable in the library's generic events, are
    UUIDs in this ledger."""
    if isinstance(annotation, typing.TypeVar):
        return type_schema(UUID)
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if annotation is Any:
        return {}
    if origin in (types.UnionType, typing.Union):
        options = [type_schema(a) for a in arguments if a is not type(None)]
        nullable = type(None) in arguments
        if len(options) == 1 and nullable:
            return {"anyOf": [options[0], {"type": "null"}]}
        return {"anyOf": options + ([{"type": "null"}] if nullable else [])}
    if origin is dict:
        return {"type": "object", "additionalProperties": type_schema(arguments[1])}
    if origin in (list, tuple, set, frozenset):
        return {"type": "array", "items": type_schema(arguments[0])}
    simple: dict[Any, dict[str, Any]] = {
        str: {"type": "string"},
        bool: {"type": "boolean"},
        int: {"type": "integer"},
        float: {"type": "number"},
        Decimal: {"type": "string", "pattern": DECIMAL_PATTERN},
        datetime: {"type": "string", "format": "date-time"},
        date: {"type": "string", "format": "date"},
        UUID: {"type": "string", "format": "uuid"},
    }
    if annotation in simple:
        return dict(simple[annotation])
    raise TypeError(f"no JSON Schema for {annotation!r}")


def event_schema(event_class: type) -> dict[str, Any]:
    """The JSON Schema of the value published for ``event_class``."""
    hints = typing.get_type_hints(event_class)
    names = [f.name for f in dataclasses.fields(event_class) if f.name not in STORAGE_ONLY_FIELDS]
    aggregate_type = aggregate_type_of(event_class)
    version = schema_version_of(event_class)
    ce_type = event_type_name(aggregate_type, event_class.__name__, version)
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": schema_id(ce_type),
        "title": f"{aggregate_type}.{event_class.__name__} v{version}",
        "description": _own_docstring(event_class),
        "x-cloudevents-type": ce_type,
        "type": "object",
        "properties": {name: _field_schema(event_class, name, hints[name]) for name in names},
        "required": names,
        "additionalProperties": False,
    }


def _field_schema(event_class: type, name: str, annotation: Any) -> dict[str, Any]:
    """A field's schema; a personal field is published encrypted (or withheld) unless
    it is empty (``events.personal``), and says so with ``x-personal``."""
    schema = type_schema(annotation)
    if name not in personal_fields_of(event_class):
        return schema
    return {"anyOf": [PUBLISHED_PERSONAL_SCHEMA, schema], "x-personal": True}


def _own_docstring(event_class: type) -> str:
    """The class's docstring, unless it is the one ``dataclass`` made up."""
    doc = event_class.__dict__.get("__doc__") or ""
    return "" if doc.startswith(f"{event_class.__name__}(") else inspect.cleandoc(doc)


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def expected_files() -> dict[str, str]:
    """File name → content for the current version of every event class."""
    return {schema_file_name(cls): render(event_schema(cls)) for cls in event_classes()}


def disagreements(directory: Path = EVENT_SCHEMAS_DIR) -> list[str]:
    """What differs between the checked-in schemas and the event classes."""
    problems = []
    for name, content in expected_files().items():
        path = directory / name
        if not path.exists():
            problems.append(f"{name}: missing")
        elif path.read_text() != content:
            problems.append(f"{name}: differs from its event class")
    current = {
        (aggregate_type_of(cls), cls.__name__): schema_version_of(cls) for cls in event_classes()
    }
    for path in sorted(directory.glob("*.json")):
        aggregate_type, event_name, version_tag, _ = path.name.split(".")
        version = int(version_tag[1:])
        latest = current.get((aggregate_type, event_name))
        if latest is None:
            problems.append(f"{path.name}: no such event class")
        elif version > latest:
            problems.append(f"{path.name}: newer than the event class (v{latest})")
    return problems


def write(directory: Path = EVENT_SCHEMAS_DIR) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in expected_files().items():
        path = directory / name
        if not path.exists() or path.read_text() != content:
            path.write_text(content)
            written.append(name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only report disagreements")
    args = parser.parse_args(argv)
    if args.check:
        problems = disagreements()
        for problem in problems:
            print(problem)
        return 1 if problems else 0
    for name in write():
        print(f"wrote schemas/events/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
