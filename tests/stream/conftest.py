"""Fixtures of the stream tests: a real embedded broker per test, and a worker's settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from dossier_stream.settings import Settings
from dossier_stream.stream.embedded import EmbeddedBroker

WorkerSettings = Callable[..., Settings]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A Tansu broker (memory storage) of this test alone, its log in ``tmp_path``."""
    with EmbeddedBroker(tmp_path / "tansu.log") as b:
        yield b


@pytest.fixture
def worker_settings(tmp_path: Path, broker: EmbeddedBroker) -> WorkerSettings:
    """Settings of a worker of this test: its broker, chdb in ``tmp_path/ch``, state in
    ``tmp_path/data``, metrics on an ephemeral port; keyword arguments override or add.
    """

    def make(**extra: Any) -> Settings:
        fields: dict[str, Any] = {
            "bootstrap_servers": broker.bootstrap,
            "clickhouse_dsn": SecretStr(f"chdb://{tmp_path / 'ch'}"),
            "data_dir": tmp_path / "data",
            "metrics_port": 0,
            **extra,
        }
        return Settings(**fields)

    return make
