"""Shopify webhook HMAC: base64(HMAC-SHA256(secret, raw body)), compared in constant time.

The secret comes from the environment (`SHOPIFY_WEBHOOK_SECRET`) or a file named
there (`SHOPIFY_WEBHOOK_SECRET_FILE`, e.g. a mounted Kubernetes secret); it is
never logged and never part of an error message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping
from pathlib import Path

ENV_SECRET = "SHOPIFY_WEBHOOK_SECRET"
ENV_SECRET_FILE = "SHOPIFY_WEBHOOK_SECRET_FILE"


class SecretError(Exception):
    """The secret is configured but unusable (the message never contains it)."""


def sign(body: bytes, secret: bytes) -> str:
    """The header value Shopify sends for `body` (also what tests sign with)."""
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode("ascii")


def verify(body: bytes, header: str | None, secret: bytes | None) -> bool:
    """True only for a present, well-formed header matching the body."""
    if not secret or not header:
        return False
    try:
        given = base64.b64decode(header.strip(), validate=True)
    except (ValueError, TypeError):
        return False
    expected = hmac.new(secret, body, hashlib.sha256).digest()
    return hmac.compare_digest(given, expected)


def load_secret(environ: Mapping[str, str] | None = None) -> bytes | None:
    """The webhook secret from the environment, or None when not configured."""
    env = os.environ if environ is None else environ
    value = env.get(ENV_SECRET)
    if value:
        return value.strip().encode()
    path = env.get(ENV_SECRET_FILE)
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise SecretError(f"{ENV_SECRET_FILE}: cannot read {path} ({e.strerror})") from None
        if not text:
            raise SecretError(f"{ENV_SECRET_FILE}: {path} is empty")
        return text.encode()
    return None
