"""Upload the dashboards to a running Grafana through its HTTP API (grafana-client).

Idempotent: the folder is looked up by title and created only if missing, and
each dashboard is saved with `overwrite: true` under its fixed uid, so publishing
twice replaces rather than duplicates. The token is sent as a Bearer header and
never printed; every failure becomes one `PublishError` line naming the URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from grafana_client.api import GrafanaApi
from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError

DEFAULT_FOLDER = "circuitwatch"
MESSAGE = "circuitwatch dashboards publish"


class PublishError(RuntimeError):
    """Publishing failed; the message is one line for the user."""


@dataclass(frozen=True)
class Published:
    uid: str
    title: str
    url: str  # as Grafana reports it (relative path), or "" if it did not say
    version: int | None


def _check_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise PublishError(f"{url!r} is not a Grafana URL (expected http(s)://host[:port][/path])")
    return url.rstrip("/")


def _explain(e: Exception, url: str, doing: str) -> PublishError:
    if isinstance(e, GrafanaUnauthorizedError):
        return PublishError(f"Grafana at {url} rejected the token while {doing} (401): check GRAFANA_TOKEN")
    if isinstance(e, GrafanaClientError) and e.status_code == 403:
        return PublishError(
            f"Grafana at {url} refused {doing} (403): the token needs the Editor role (or folder write access)"
        )
    if isinstance(e, GrafanaClientError) and e.status_code == 404:
        return PublishError(f"{url} answered 404 while {doing}: is this the Grafana base URL?")
    if isinstance(e, GrafanaException):
        detail = e.message.splitlines()[0] if e.message else type(e).__name__
        return PublishError(f"Grafana at {url} failed while {doing}: {detail}")
    if isinstance(e, ValueError):  # a non-JSON answer: not Grafana's API
        return PublishError(f"{url} did not answer like Grafana's HTTP API while {doing} (not JSON)")
    return PublishError(f"cannot reach Grafana at {url} while {doing}: {_reason(e)}")


def _reason(e: BaseException) -> str:
    """The innermost cause, without urllib3's pool/object noise."""
    text = str(e)
    found = re.search(r"\[Errno -?\d+\] [^'\")]+|Name or service not known|timed out|certificate verify failed", text)
    if found:
        return found.group(0)
    return (text.splitlines()[0] if text else type(e).__name__)[:200]


def _call(url: str, doing: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except (GrafanaException, OSError, ValueError) as e:  # niquests' connection errors are OSErrors
        raise _explain(e, url, doing) from None


def ensure_folder(api: GrafanaApi, url: str, title: str) -> str:
    """The uid of the folder titled `title`, created if there is none."""
    folders = _call(url, "listing folders", api.folder.get_all_folders)
    if not isinstance(folders, list):
        raise PublishError(f"{url} did not answer like Grafana's HTTP API while listing folders")
    for folder in folders:
        if isinstance(folder, Mapping) and folder.get("title") == title and folder.get("uid"):
            return str(folder["uid"])
    created = _call(url, f"creating folder {title!r}", api.folder.create_folder, title)
    if not isinstance(created, Mapping) or not created.get("uid"):
        raise PublishError(f"{url} created folder {title!r} but returned no uid")
    return str(created["uid"])


def publish(
    url: str,
    token: str,
    models: Mapping[str, Mapping[str, Any]],
    *,
    folder: str = DEFAULT_FOLDER,
    timeout: float = 10.0,
) -> list[Published]:
    """Save every dashboard model (by uid) into `folder`, overwriting older versions."""
    if not token:
        raise PublishError("GRAFANA_TOKEN is not set (a Grafana service account token with the Editor role)")
    base = _check_url(url)
    api = GrafanaApi.from_url(base, credential=token, timeout=timeout)
    folder_uid = ensure_folder(api, base, folder)
    out = []
    for uid, model in models.items():
        dashboard = {k: v for k, v in model.items() if k not in {"id", "version"}}
        payload = {"dashboard": dashboard, "folderUid": folder_uid, "overwrite": True, "message": MESSAGE}
        answer = _call(base, f"saving dashboard {uid}", api.dashboard.update_dashboard, payload)
        if not isinstance(answer, Mapping) or answer.get("uid") not in (uid, None) or answer.get("status") != "success":
            raise PublishError(f"Grafana at {base} did not confirm saving dashboard {uid}: {str(answer)[:200]}")
        version = answer.get("version")
        out.append(
            Published(
                uid=uid,
                title=str(model.get("title", uid)),
                url=str(answer.get("url", "")),
                version=version if isinstance(version, int) else None,
            )
        )
    return out
