"""The CLI lists its subcommand modules explicitly; none may be left out by mistake."""

from __future__ import annotations

import pkgutil

import services
from services.cli import COMMAND_MODULES, build_parser


def test_every_cli_module_is_listed() -> None:
    found = {m.name for m in pkgutil.iter_modules(services.__path__) if m.name.startswith("cli_")}
    listed = {module.__name__.removeprefix("services.") for module in COMMAND_MODULES}
    assert listed == found


def test_the_parser_knows_the_everyday_commands() -> None:
    help_text = build_parser().format_help()
    for command in ("init", "serve", "project", "relay", "verify", "history"):
        assert command in help_text
