"""Grafana dashboards as code (grafana-foundation-sdk), one module per dashboard.

`build_all()` returns each dashboard's JSON model by uid; `write_all()` writes
them to `dashboards/generated/<uid>.json` (what provisioning mounts and
`publish` uploads); `stale()` says which committed files differ from the code,
so CI can fail on a dashboard edited by hand or not regenerated.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder

from . import latency, overview, pipeline, store

GENERATED_DIR = Path(__file__).resolve().parent / "generated"

BUILDERS: dict[str, Callable[[], db.Dashboard]] = {
    overview.UID: overview.build,
    store.UID: store.build,
    latency.UID: latency.build,
    pipeline.UID: pipeline.build,
}


def to_model(builder: db.Dashboard) -> dict[str, Any]:
    """The dashboard's JSON model, with panel ids numbered in order (runbooks link to `viewPanel=<id>`)."""
    model: dict[str, Any] = json.loads(json.dumps(builder.build(), cls=JSONEncoder))
    for n, panel in enumerate(model.get("panels", []), start=1):
        panel["id"] = n
    return model


def build_all() -> dict[str, dict[str, Any]]:
    return {uid: to_model(build()) for uid, build in BUILDERS.items()}


def render(model: dict[str, Any]) -> str:
    """Stable text: sorted keys, 2-space indent, trailing newline (reviewable diffs)."""
    return json.dumps(model, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_all(out_dir: Path = GENERATED_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for uid, model in build_all().items():
        path = out_dir / f"{uid}.json"
        text = render(model)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written


def stale(out_dir: Path = GENERATED_DIR) -> list[str]:
    """Files in `out_dir` that are missing, differ from the code, or belong to no dashboard."""
    models = build_all()
    problems = []
    for uid, model in models.items():
        path = out_dir / f"{uid}.json"
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text() != render(model):
            problems.append(f"{path}: differs from what the code builds")
    problems.extend(
        f"{path}: no dashboard has this uid" for path in sorted(out_dir.glob("*.json")) if path.stem not in models
    )
    return problems


def iter_panels(model: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in model.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def expressions(model: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) of every query of every panel, and of every query variable."""
    for panel in iter_panels(model):
        for target in panel.get("targets") or []:
            if target.get("expr"):
                yield panel.get("title", "?"), target["expr"]
