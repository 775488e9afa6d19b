"""Fixtures of the stream tests: a real embedded broker per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dossier_stream.stream.embedded import EmbeddedBroker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A Tansu broker (memory storage) of this test alone, its log in ``tmp_path``."""
    with EmbeddedBroker(tmp_path / "tansu.log") as b:
        yield b
