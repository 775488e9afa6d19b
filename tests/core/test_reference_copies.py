"""The committed copies of ``../shared`` (seed 000 and its tables) are identical to it.

Tests read the copies in ``tests/data/`` so they run on a clean checkout; when
the shared folder is beside the repository, this checks the copies are exact.
"""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
COPIES = {
    "haiphong-2024-10/digitization.csv": "reference/haiphong-2024-10/digitization.csv",
    "haiphong-2024-10/online-rates.csv": "reference/haiphong-2024-10/online-rates.csv",
    "seeds/000_9f91dcfb64cb2f43.txt": "seeds/000_9f91dcfb64cb2f43.txt",
}


@pytest.mark.parametrize("copy", sorted(COPIES))
def test_copy_is_exact(copy: str, shared_dir: Path) -> None:
    assert (DATA / copy).read_bytes() == (shared_dir / COPIES[copy]).read_bytes()
