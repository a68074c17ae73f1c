"""One-line, user-facing errors: never a traceback for bad input."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from circuitwatch.config import ConfigError


class CliError(click.ClickException):
    """Printed as `error: <message>` with exit code 2 (bad input) or 1."""

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: object = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn expected failures (bad config, unreadable files) into one line."""
    try:
        yield
    except ConfigError as e:
        raise CliError(str(e)) from None
    except FileNotFoundError as e:
        raise CliError(f"{e.filename}: no such file") from None
    except IsADirectoryError as e:
        raise CliError(f"{e.filename}: is a directory") from None
    except PermissionError as e:
        raise CliError(f"{e.filename}: permission denied") from None
