"""Shared test helpers.

Integration tests need real binaries or services (promtool, prometheus, Kafka).
On a laptop without them they skip; in CI (`CI=true`) a missing one is a failure,
never a skip, so a missing install step cannot hide behind a green run.
"""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(what: str) -> None:
    """Skip locally, fail in CI."""
    if IN_CI:
        pytest.fail(f"{what} is required in CI but is not available")
    pytest.skip(f"{what} not available")


def need_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"binary {name!r}")
    assert path is not None
    return path
