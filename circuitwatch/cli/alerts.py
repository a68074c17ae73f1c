"""`circuitwatch alerts build`: regenerate the rule files and Alertmanager config from thresholds.yaml."""

from __future__ import annotations

from pathlib import Path

import click

from circuitwatch.cli.errors import CliError, user_errors


@click.group()
def alerts() -> None:
    """Prometheus alert rules and Alertmanager config."""


@alerts.command()
@click.option(
    "--thresholds",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Thresholds file (default: the packaged alerts/thresholds.yaml).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory to write rules/*.yml and alertmanager.yml into (default: the alerts/ directory).",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if the files in --out are not what would be built.")
def build(thresholds: Path | None, out: Path | None, check: bool) -> None:
    """Render alerts/rules/*.yml and alerts/alertmanager.yml from the thresholds file."""
    from circuitwatch.alerts.build import HERE, load_thresholds, render, stale, write

    with user_errors():
        files = render(load_thresholds(thresholds))
        target = out or HERE
        if check:
            outdated = stale(files, target)
            if outdated:
                raise CliError(
                    f"{', '.join(outdated)} in {target} differ from the thresholds: run `circuitwatch alerts build`",
                    exit_code=1,
                )
            click.echo(f"{len(files)} files up to date in {target}")
            return
        for path in write(files, target):
            click.echo(f"wrote {path}")
