"""The PostgreSQL function that records a seal only if it agrees with the events.

A seal (``services.chain.Seal``) is computed by the sealer, but a role that could insert
into ``ledger_seals`` directly could record one of its choosing: a ledger link that no
event history yields, over positions that never held those hashes. So the application
role records seals only through this function (``salesledger init-db`` gives it to the
appender role, SECURITY DEFINER, as the append functions), which recomputes the stretch
from the stored events and refuses a seal that differs in any byte, or that does not
extend the last seal and end at a stored event.

It does not check that the stretch is below the read horizon (the sealer seals nothing
else): the horizon may dip for a moment after the sealer read it, and a seal over a
stretch not yet final could only leave out an event still being committed, which
``verify`` then reports as unsealed, a false alarm, never a forgery.
"""

from __future__ import annotations

from psycopg.sql import SQL, Composed, Identifier

from services.chain import GENESIS

SEAL_MISMATCH_SQLSTATE = "LG002"
"""Raised for a seal that the stored events do not yield."""


def seal_function_name(events_table: str) -> str:
    """Named like the append functions, so that every function that writes the ledger
    is found by one prefix."""
    return f"ledger_append_seal_{events_table}"


def create_seal_function(schema: str, events_table: str) -> Composed:
    """``{function}(after, upto, positions, hashes, link) -> boolean``, a seal's fields:
    records the seal and answers true, or answers false when another sealer recorded
    that stretch first."""
    return SQL(
        "CREATE OR REPLACE FUNCTION {schema}.{function}("
        "new_after bigint, new_upto bigint, new_positions bytea, new_hashes bytea, "
        "new_link bytea) RETURNS boolean LANGUAGE plpgsql AS $BODY$ "
        "DECLARE last_upto bigint; link bytea; last_position bigint; "
        "  positions bytea := ''; hashes bytea := ''; r record; "
        "BEGIN "
        "  SELECT s.upto_position, s.ledger_hash INTO last_upto, link "
        "    FROM {schema}.ledger_seals s ORDER BY s.upto_position DESC LIMIT 1; "
        "  last_upto := coalesce(last_upto, 0); "
        "  link := coalesce(link, {genesis}); "
        "  IF new_after < last_upto THEN RETURN false; END IF; "
        "  IF new_after > last_upto THEN "
        "    RAISE EXCEPTION 'a seal extends the last one (to %): % to % refused', "
        "      last_upto, new_after, new_upto USING ERRCODE = '{mismatch}'; "
        "  END IF; "
        "  FOR r IN SELECT e.notification_id, e.hash FROM {schema}.{table} e "
        "    WHERE e.notification_id > new_after AND e.notification_id <= new_upto "
        "    ORDER BY e.notification_id LOOP "
        "    link := sha256(link || int8send(r.notification_id) || coalesce(r.hash, {genesis})); "
        "    positions := positions || int8send(r.notification_id); "
        "    hashes := hashes || coalesce(r.hash, {genesis}); "
        "    last_position := r.notification_id; "
        "  END LOOP; "
        "  IF last_position IS DISTINCT FROM new_upto "
        "    OR positions IS DISTINCT FROM new_positions OR hashes IS DISTINCT FROM new_hashes "
        "    OR link IS DISTINCT FROM new_link THEN "
        "    RAISE EXCEPTION 'the seal of positions % to % does not match the stored events', "
        "      new_after, new_upto USING ERRCODE = '{mismatch}'; "
        "  END IF; "
        "  INSERT INTO {schema}.ledger_seals "
        "    (after_position, upto_position, positions, event_hashes, ledger_hash) "
        "    VALUES (new_after, new_upto, new_positions, new_hashes, new_link) "
        "    ON CONFLICT DO NOTHING; "
        "  RETURN FOUND; "
        "END; $BODY$"
    ).format(
        schema=Identifier(schema),
        function=Identifier(seal_function_name(events_table)),
        table=Identifier(events_table),
        genesis=SQL("'\\x{}'::bytea").format(SQL(GENESIS.hex())),
        mismatch=SQL(SEAL_MISMATCH_SQLSTATE),
    )
