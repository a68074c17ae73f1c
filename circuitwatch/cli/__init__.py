"""The `circuitwatch` command line.

Subcommands load lazily (`COMMANDS` maps a name to "module:attribute"), so that
`circuitwatch replay` never pays for importing Faust, pandas or Grafana's SDK.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from circuitwatch import __version__

COMMANDS: dict[str, str] = {
    "simulate": "circuitwatch.cli.core:simulate_cmd",
    "replay": "circuitwatch.cli.core:replay",
    "demo": "circuitwatch.cli.core:demo",
    "alerts": "circuitwatch.cli.alerts:alerts",
    "map": "circuitwatch.cli.sources:map_cmd",
    "ingest": "circuitwatch.cli.sources:ingest_cmd",
    "kpi": "circuitwatch.cli.kpi:kpi",
    "dashboards": "circuitwatch.cli.dashboards:dashboards",
    "worker": "circuitwatch.cli.worker:worker",
    "produce": "circuitwatch.cli.worker:produce",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="circuitwatch")
def cli() -> None:
    """Watch the BOPIS / curbside cancellation circuit: find phantom pickups,
    the handoff that broke, and what it costs."""


def main(argv: list[str] | None = None) -> Any:
    try:
        return cli.main(args=argv, prog_name="circuitwatch", standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.exit(130)
