"""Where the listening ports bind by default: loopback, except inside the container.

``/metrics`` of a CLI run and of the demo binds ``127.0.0.1`` unless
``DOSSIER_METRICS_HOST`` says otherwise; the image and the compose file set
``0.0.0.0`` explicitly (Prometheus scrapes the worker over the container
network). ``store-server`` binds ``127.0.0.1`` by default (its refusal to bind
elsewhere without a password is in ``tests/store/test_storeserver_limits.py``).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from dossier_stream.cli.storeserver import body_limit, server_credentials, store_server
from dossier_stream.settings import Settings, load_settings
from dossier_stream.sim import testing as t
from streamharness import CLI

ROOT = Path(__file__).resolve().parents[2]


def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DOSSIER_"):
            monkeypatch.delenv(name)


def test_metrics_and_store_server_default_to_loopback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clean_env(monkeypatch)
    monkeypatch.chdir(tmp_path)  # no .env
    assert Settings().metrics_host == "127.0.0.1"
    host = next(p for p in store_server.params if p.name == "host")
    assert host.default == "127.0.0.1"


def test_the_container_binds_metrics_on_every_interface_explicitly() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = compose["services"]["worker"]["environment"]
    assert env["DOSSIER_METRICS_HOST"] == "0.0.0.0"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"DOSSIER_METRICS_HOST=0\.0\.0\.0", dockerfile)


def test_store_server_settings_from_the_environment_and_the_secrets_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clean_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert server_credentials(load_settings()) == []  # no password: no users
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "dossier_store_server_password").write_text("from-a-file\n")
    monkeypatch.setenv("DOSSIER_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("DOSSIER_STORE_SERVER_READER_PASSWORD", "from-env")
    monkeypatch.setenv("DOSSIER_STORE_SERVER_READER_USER", "grafana")
    users = server_credentials(load_settings())
    assert [(u.user, u.password, u.read_only) for u in users] == [
        ("dossier", "from-a-file", False),
        ("grafana", "from-env", True),
    ]
    assert "from-a-file" not in repr(users) and "from-a-file" not in repr(load_settings())
    # the body limit follows the flush size unless set
    assert body_limit(load_settings()) == 4 * load_settings().flush_max_rows * 1024
    assert body_limit(load_settings(flush_max_rows=200_000)) == 4 * 200_000 * 1024
    assert body_limit(load_settings(store_server_max_body_bytes=10_000_000)) == 10_000_000


def test_the_demo_serves_metrics_on_loopback(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    lines = [t.encode(t.received(f"D{i}", "HP-SO-TUPHAP")) for i in range(20)]
    events.write_bytes(b"\n".join(lines) + b"\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_")}
    env |= {"DOSSIER_LOG_LEVEL": "INFO", "DOSSIER_METRICS_PORT": "0"}
    proc = subprocess.run(
        [*CLI, "demo", "--events", str(events), "--period", "2024-10", "--format", "json",
         "--out", str(tmp_path / "report.json")],
        cwd=tmp_path, env=env, capture_output=True, timeout=600, check=False,
    )  # fmt: skip
    err = proc.stderr.decode()
    assert proc.returncode == 0, err[-3000:]
    served = re.findall(r"serving metrics on http://([^/]+)/metrics", err)
    assert served and all(s.startswith("127.0.0.1:") for s in served), served
