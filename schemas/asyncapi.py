"""Generate the AsyncAPI 3.0 document of the published topics from the code.

``python -m schemas.asyncapi`` writes ``schemas/asyncapi.json``: one channel per
aggregate type (topic ``{prefix}.{aggregate}``, keyed by aggregate id), each with the
messages of that aggregate's current event versions, their CloudEvents headers and their
payload schemas (``schemas/events/``). ``--check`` exits 1 if the file disagrees with the
code (the unit tests check the same).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from events.messages import (
    AGGREGATE_TYPES,
    CONTENT_TYPE,
    SPEC_VERSION,
    aggregate_type_of,
    event_type_name,
    schema_id,
    schema_version_of,
    topic_name,
)
from events.personal import personal_fields_of
from schemas.generate import event_classes, schema_file_name

ASYNCAPI_FILE = Path(__file__).parent / "asyncapi.json"
DEFAULT_PREFIX = "sales"
DEFAULT_PARTITIONS = 3
KAFKA_BINDING_VERSION = "0.5.0"
HEADERS_SCHEMA = "CloudEventsHeaders"


def headers_schema() -> dict[str, Any]:
    """The Kafka headers every message carries (CloudEvents binary mode)."""
    text = {"type": "string"}
    properties = {
        "ce_specversion": {"const": SPEC_VERSION},
        "ce_id": {**text, "description": "{aggregate id}:{version}, stable on republishing"},
        "ce_type": {**text, "description": "salesledger.{aggregate}.{Event}.v{N}"},
        "ce_source": text,
        "ce_time": {**text, "format": "date-time"},
        "ce_subject": {**text, "format": "uuid", "description": "the aggregate id"},
        "ce_dataschema": {**text, "description": "the $id of the payload's JSON Schema"},
        "content-type": {"const": CONTENT_TYPE},
        "ce_aggregateversion": {**text, "pattern": "^[0-9]+$"},
        "ce_position": {
            **text,
            "pattern": "^[0-9]+$",
            "description": "the event's global position in the ledger",
        },
        "ce_ledgerposition": {
            **text,
            "pattern": "^[0-9]+$",
            "description": "the same position (dedup and proofs)",
        },
    }
    causality = {
        "ce_correlationid": {
            **text,
            "description": "the business transaction or trace the command belonged to "
            "(the request's X-Correlation-ID, else its trace id); absent when none",
        },
        "ce_causationid": {
            **text,
            "description": "the request that caused the event (its X-Request-ID); "
            "absent when none",
        },
    }
    self_verifying = {
        "ce_eventhash": {
            **text,
            "pattern": "^[0-9a-f]{64}$",
            "description": "the event's chain hash: its Merkle tree leaf",
        },
        "ce_storedtopic": {**text, "description": "the stored topic the hash covers"},
        "ce_storedstate": {
            **text,
            "contentEncoding": "base64",
            "description": "the stored bytes the hash covers",
        },
    }
    return {
        "type": "object",
        "properties": {**properties, **causality, **self_verifying},
        "required": sorted(properties),
    }


def document(prefix: str = DEFAULT_PREFIX) -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    by_aggregate: dict[str, list[type]] = {a: [] for a in AGGREGATE_TYPES}
    for cls in event_classes():
        by_aggregate[aggregate_type_of(cls)].append(cls)
    for aggregate, classes in by_aggregate.items():
        topic = topic_name(prefix, aggregate)
        names = {}
        for cls in classes:
            name, message = _message(aggregate, cls)
            messages[name] = message
            names[name] = {"$ref": f"#/components/messages/{name}"}
        channels[aggregate] = {
            "address": topic,
            "description": f"Every {aggregate} event, in ledger order per aggregate.",
            "messages": names,
            "bindings": {
                "kafka": {
                    "topic": topic,
                    "partitions": DEFAULT_PARTITIONS,
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
        operations[f"publish_{aggregate}"] = {
            "action": "send",
            "summary": f"The relay publishes each stored {aggregate} event at least once.",
            "channel": {"$ref": f"#/channels/{aggregate}"},
            "messages": [{"$ref": f"#/channels/{aggregate}/messages/{n}"} for n in names],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Sales ledger events",
            "version": "0.1.0",
            "description": f"The ledger's events on Kafka (topic prefix {prefix!r}; "
            "`LEDGER_KAFKA_TOPIC_PREFIX` changes it). See docs/kafka.md.",
        },
        "defaultContentType": CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": {HEADERS_SCHEMA: headers_schema()}},
    }


def _message(aggregate: str, cls: type) -> tuple[str, dict[str, Any]]:
    version = schema_version_of(cls)
    ce_type = event_type_name(aggregate, cls.__name__, version)
    name = f"{aggregate}.{cls.__name__}.v{version}"
    personal = personal_fields_of(cls)
    extra: dict[str, Any] = {}
    if personal:
        extra = {
            "description": "Personal fields are published encrypted under the data "
            "subject's key, never in plain text (docs/erasure.md): " + ", ".join(personal) + ".",
            "x-personal-fields": list(personal),
        }
    return name, {
        **extra,
        "name": ce_type,
        "title": f"{aggregate} {cls.__name__} v{version}",
        "contentType": CONTENT_TYPE,
        "headers": {"$ref": f"#/components/schemas/{HEADERS_SCHEMA}"},
        "payload": {"$ref": f"events/{schema_file_name(cls)}"},
        "x-dataschema": schema_id(ce_type),
        "bindings": {
            "kafka": {
                "key": {"type": "string", "format": "uuid"},
                "bindingVersion": KAFKA_BINDING_VERSION,
            }
        },
    }


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="only report a disagreement")
    args = parser.parse_args(argv)
    if args.check:
        current = ASYNCAPI_FILE.read_text() if ASYNCAPI_FILE.exists() else ""
        if current != render():
            print("schemas/asyncapi.json differs from the code: run python -m schemas.asyncapi")
            return 1
        return 0
    ASYNCAPI_FILE.write_text(render())
    print("wrote schemas/asyncapi.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
