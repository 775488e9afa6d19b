"""Shared fixtures: the bundled registry and calendar, built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.workdays import WorkCalendar

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def registry() -> UnitRegistry:
    return UnitRegistry.load_default()


@pytest.fixture(scope="session")
def calendar() -> WorkCalendar:
    return WorkCalendar.default()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"the shared specification folder {SHARED} is not beside the repository")
    return SHARED
