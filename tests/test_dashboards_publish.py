"""`circuitwatch dashboards publish` against a local stand-in for Grafana's HTTP API.

No Grafana server runs here, so the stand-in (127.0.0.1, free port) implements
the three endpoints publish needs the way Grafana documents them and rejects
anything else: `GET /api/folders`, `POST /api/folders` {title} -> {uid, title},
`POST /api/dashboards/db` {dashboard (uid, no id), folderUid, overwrite, message}
-> {status: success, uid, url, version}; every request must carry
`Authorization: Bearer <token>` (401 otherwise, as Grafana answers).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from circuitwatch.cli import cli
from tests.harness.prometheus import free_port

GENERATED = Path(__file__).resolve().parent.parent / "dashboards" / "generated"
TOKEN = "glsa_test-token-not-a-secret"
UIDS = {"circuitwatch-overview", "circuitwatch-store", "circuitwatch-latency", "circuitwatch-pipeline"}


class FakeGrafana:
    def __init__(self, *, status_override: int | None = None) -> None:
        self.folders: list[dict[str, Any]] = []
        self.dashboards: dict[str, dict[str, Any]] = {}  # uid -> {"dashboard", "folderUid", "version"}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.violations: list[str] = []
        self.status_override = status_override
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                with fake.lock:
                    fake.requests.append((method, self.path, dict(self.headers)))
                    code, body = fake.route(method, self.path, self.headers.get("Authorization"), raw)
                self._send(code, body)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PUT(self) -> None:
                self._handle("PUT")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def route(self, method: str, path: str, auth: str | None, raw: bytes) -> tuple[int, Any]:
        if auth != f"Bearer {TOKEN}":
            return 401, {"message": "Unauthorized"}
        if self.status_override is not None:
            return self.status_override, {"message": "You'll need additional permissions to perform this action."}
        known = {("GET", "/api/folders"), ("POST", "/api/folders"), ("POST", "/api/dashboards/db")}
        if (method, path.split("?")[0]) not in known:
            self.violations.append(f"unexpected {method} {path}")
            return 404, {"message": "Not found"}
        if method == "GET":
            return 200, [{"id": i + 1, "uid": f["uid"], "title": f["title"]} for i, f in enumerate(self.folders)]
        try:
            body = json.loads(raw)
        except ValueError:
            self.violations.append(f"{method} {path}: body is not JSON")
            return 400, {"message": "bad request data"}
        if method == "POST" and path == "/api/folders":
            if not isinstance(body.get("title"), str) or not body["title"]:
                self.violations.append("folder without title")
                return 400, {"message": "folder title cannot be empty"}
            if any(f["title"] == body["title"] for f in self.folders):
                self.violations.append(f"folder {body['title']!r} created twice")
                return 409, {"message": "a folder with the same name already exists"}
            folder = {"uid": body.get("uid") or f"f{len(self.folders) + 1}", "title": body["title"]}
            self.folders.append(folder)
            return 200, {"id": len(self.folders), **folder, "url": f"/dashboards/f/{folder['uid']}/"}
        if method == "POST" and path == "/api/dashboards/db":
            return self.save_dashboard(body)
        raise AssertionError("unreachable")

    def save_dashboard(self, body: dict[str, Any]) -> tuple[int, Any]:
        dash = body.get("dashboard")
        if not isinstance(dash, dict) or not dash.get("uid") or not dash.get("title"):
            self.violations.append("dashboard without uid/title")
            return 400, {"message": "Dashboard title cannot be empty"}
        if dash.get("id") is not None:
            self.violations.append(f"{dash['uid']}: carries an id (Grafana would match by id, not uid)")
        if body.get("overwrite") is not True:
            self.violations.append(f"{dash['uid']}: overwrite is not true")
        if body.get("folderUid") not in {f["uid"] for f in self.folders}:
            self.violations.append(f"{dash['uid']}: folderUid {body.get('folderUid')!r} does not exist")
            return 400, {"message": "folder not found"}
        uid = dash["uid"]
        previous = self.dashboards.get(uid)
        version = (previous["version"] + 1) if previous else 1
        self.dashboards[uid] = {"dashboard": dash, "folderUid": body["folderUid"], "version": version}
        slug = dash["title"].lower().replace(" ", "-").replace(":", "")
        return 200, {"id": 1, "uid": uid, "url": f"/d/{uid}/{slug}", "status": "success", "version": version}


@pytest.fixture
def grafana() -> Iterator[FakeGrafana]:
    fake = FakeGrafana()
    yield fake
    fake.close()


def publish(*args: str, token: str | None = TOKEN) -> Result:
    env = {"GRAFANA_TOKEN": token} if token is not None else {"GRAFANA_TOKEN": ""}
    return CliRunner().invoke(cli, ["dashboards", "publish", *args], env=env)


def test_publish_creates_folder_and_saves_every_dashboard(grafana: FakeGrafana) -> None:
    result = publish("--url", grafana.url)
    assert result.exit_code == 0, result.output
    assert grafana.violations == []
    assert [f["title"] for f in grafana.folders] == ["circuitwatch"]
    assert set(grafana.dashboards) == UIDS
    folder_uid = grafana.folders[0]["uid"]
    assert {d["folderUid"] for d in grafana.dashboards.values()} == {folder_uid}
    # what Grafana stored is the generated model
    committed = json.loads((GENERATED / "circuitwatch-store.json").read_text())
    assert grafana.dashboards["circuitwatch-store"]["dashboard"]["panels"] == committed["panels"]
    assert all(h.get("Authorization") == f"Bearer {TOKEN}" for _, _, h in grafana.requests)
    for uid in UIDS:
        assert f"published {uid} v1" in result.output
    assert TOKEN not in result.output


def test_publish_twice_overwrites_by_uid(grafana: FakeGrafana) -> None:
    assert publish("--url", grafana.url + "/").exit_code == 0
    second = publish("--url", grafana.url)
    assert second.exit_code == 0, second.output
    assert grafana.violations == []
    assert len(grafana.folders) == 1
    assert set(grafana.dashboards) == UIDS
    assert {d["version"] for d in grafana.dashboards.values()} == {2}


def test_publish_into_an_existing_named_folder(grafana: FakeGrafana) -> None:
    grafana.folders.append({"uid": "retail-ops", "title": "Retail Ops"})
    result = publish("--url", grafana.url, "--folder", "Retail Ops")
    assert result.exit_code == 0, result.output
    assert grafana.violations == []
    assert len(grafana.folders) == 1
    assert {d["folderUid"] for d in grafana.dashboards.values()} == {"retail-ops"}
    assert not any(m == "POST" and p == "/api/folders" for m, p, _ in grafana.requests)


def test_publish_from_a_directory_of_json(grafana: FakeGrafana, tmp_path: Path) -> None:
    model = json.loads((GENERATED / "circuitwatch-pipeline.json").read_text())
    model["id"] = 17  # exported from another Grafana: the id must not travel
    (tmp_path / "pipeline.json").write_text(json.dumps(model))
    result = publish("--url", grafana.url, "--from", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert grafana.violations == []
    assert set(grafana.dashboards) == {"circuitwatch-pipeline"}


def test_bad_json_in_from_directory_names_the_file(grafana: FakeGrafana, tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    result = publish("--url", grafana.url, "--from", str(tmp_path))
    assert result.exit_code != 0
    assert "broken.json" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert grafana.requests == []


def test_wrong_token_is_one_line_and_never_echoed(grafana: FakeGrafana) -> None:
    result = publish("--url", grafana.url, token="glsa_wrong-token")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert "rejected the token" in result.output
    assert "GRAFANA_TOKEN" in result.output
    assert "glsa_wrong-token" not in result.output
    assert "Traceback" not in result.output
    assert grafana.dashboards == {}


def test_missing_token(grafana: FakeGrafana) -> None:
    result = publish("--url", grafana.url, token=None)
    assert result.exit_code == 1
    assert "GRAFANA_TOKEN is not set" in result.output
    assert grafana.requests == []


def test_token_without_editor_rights() -> None:
    fake = FakeGrafana(status_override=403)
    try:
        result = publish("--url", fake.url)
    finally:
        fake.close()
    assert result.exit_code == 1
    assert "403" in result.output
    assert "Editor" in result.output


def test_unreachable_url_is_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = publish("--url", url, "--timeout", "3")
    assert result.exit_code == 1
    assert result.output.startswith(f"error: cannot reach Grafana at {url}")
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_url_that_is_not_grafana(grafana: FakeGrafana) -> None:
    result = publish("--url", grafana.url + "/not-grafana")
    assert result.exit_code == 1
    assert "404" in result.output
    assert "base URL" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("url", ["grafana.example.com", "ftp://grafana.example.com", "http://"])
def test_malformed_url(url: str) -> None:
    result = publish("--url", url)
    assert result.exit_code == 1
    assert "is not a Grafana URL" in result.output
