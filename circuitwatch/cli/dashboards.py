"""`circuitwatch dashboards build | publish`: Grafana dashboards as code."""

from __future__ import annotations

import os
from pathlib import Path

import click

from circuitwatch.cli.errors import CliError, user_errors


@click.group("dashboards")
def dashboards() -> None:
    """Build the Grafana dashboards' JSON, or publish them to a Grafana."""


@dashboards.command("build")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for <uid>.json (default: the package's dashboards/generated, which provisioning mounts).",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if the JSON in the directory differs from the code.")
def build(out_dir: Path | None, check: bool) -> None:
    """Regenerate dashboards/generated/*.json from the Python definitions."""
    from circuitwatch.dashboards import GENERATED_DIR, stale, write_all

    target = out_dir or GENERATED_DIR
    with user_errors():
        if check:
            problems = stale(target)
            if problems:
                for problem in problems:
                    click.echo(problem, err=True)
                raise CliError("dashboards are stale: run `circuitwatch dashboards build`", exit_code=1)
            click.echo(f"dashboards up to date in {target}")
            return
        for path in write_all(target):
            click.echo(str(path))


@dashboards.command("publish")
@click.option("--url", required=True, help="Grafana base URL, e.g. https://grafana.example.com (token: GRAFANA_TOKEN).")
@click.option("--folder", default="circuitwatch", show_default=True, help="Folder title; created if missing.")
@click.option(
    "--from",
    "from_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Publish the JSON files of this directory instead of building from code.",
)
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Seconds per HTTP request.")
def publish(url: str, folder: str, from_dir: Path | None, timeout: float) -> None:
    """Upload the dashboards to Grafana (overwrite by uid; idempotent).

    The token is read from the environment variable GRAFANA_TOKEN (a service
    account token with the Editor role); it is never printed.
    """
    import json

    from circuitwatch.dashboards import build_all
    from circuitwatch.dashboards.publish import PublishError
    from circuitwatch.dashboards.publish import publish as do_publish

    token = os.environ.get("GRAFANA_TOKEN", "")
    with user_errors():
        try:
            if from_dir is None:
                models = build_all()
            else:
                models = {}
                for path in sorted(from_dir.glob("*.json")):
                    try:
                        model = json.loads(path.read_text())
                    except ValueError as e:
                        raise CliError(f"{path}: not JSON: {e}") from None
                    if not isinstance(model, dict) or not model.get("uid"):
                        raise CliError(f"{path}: field uid: missing (not a dashboard model)")
                    models[str(model["uid"])] = model
                if not models:
                    raise CliError(f"{from_dir}: no *.json dashboards")
            done = do_publish(url, token, models, folder=folder, timeout=timeout)
        except PublishError as e:
            raise CliError(str(e), exit_code=1) from None
    for item in done:
        version = f" v{item.version}" if item.version is not None else ""
        click.echo(f"published {item.uid}{version}: {item.title} -> {url.rstrip('/')}{item.url}")
