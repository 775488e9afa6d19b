"""Simulation: the calibrated month simulator (streamed a publish day at a time), its
dossier plans and quotas, and the in-package test doubles (event builders) that tests
and the bench share.
"""

from __future__ import annotations

from dossier_stream.sim.quotas import calibration_for
from dossier_stream.sim.simulate import SimConfig, SimStream, simulate, simulate_months

__all__ = ["SimConfig", "SimStream", "calibration_for", "simulate", "simulate_months"]
