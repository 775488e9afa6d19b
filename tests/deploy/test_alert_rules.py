"""deploy/prometheus: promtool checks the rules and the config and runs the rules' unit tests."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from dossier_stream.stream.metrics import Metrics

PROM_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = PROM_DIR / "rules.yml"
RULES_TEST = PROM_DIR / "rules_test.yml"
CONFIG = PROM_DIR / "prometheus.yml"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: run ./scripts/setup (scripts/debian-packages.txt)")
    return found


def _promtool(*args: str) -> str:
    proc = subprocess.run(
        [promtool(), *args], cwd=PROM_DIR, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _alerts() -> list[str]:
    doc = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule["alert"] for group in doc["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules() -> None:
    out = _promtool("check", "rules", str(RULES))
    assert f"SUCCESS: {len(_alerts())} rules found" in out


def test_promtool_runs_the_rule_unit_tests() -> None:
    assert "SUCCESS" in _promtool("test", "rules", str(RULES_TEST))


def test_every_alert_is_tested_firing_and_silent() -> None:
    doc = yaml.safe_load(RULES_TEST.read_text(encoding="utf-8"))
    fired: set[str] = set()
    silent: set[str] = set()
    for test in doc["tests"]:
        for case in test["alert_rule_test"]:
            (fired if case["exp_alerts"] else silent).add(case["alertname"])
    expected = {
        "DossierStreamWorkerDown",
        "DossierStreamConsumerLagGrowing",
        "DossierStreamDeadLetterRateHigh",
        "DossierStreamClickHouseFlushFailing",
        "DossierStreamPartitionUndecodable",
        "DossierUnitOnlineSubmissionBelowTarget",
        "DossierUnitOnlinePaymentBelowTarget",
        "DossierUnitOverdueRateHigh",
        "DossierUnitOpenPastDueRising",
        "DossierIndex766GroupBelowThreshold",
    }
    assert set(_alerts()) == expected
    assert fired == expected
    assert silent == expected


def test_the_rules_use_only_metrics_the_worker_exports() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    exported = {  # from the families: labelled ones have no sample before their first use
        fam.name + suffix for fam in registry.collect() for suffix in suffixes.get(fam.type, ("",))
    }
    used = set(re.findall(r"dossier_stream_[a-z0-9_]+", RULES.read_text(encoding="utf-8")))
    assert used, "no metric found in the rules"
    assert used <= exported, used - exported


def test_promtool_checks_the_config_that_scrapes_the_worker() -> None:
    out = _promtool("check", "config", str(CONFIG))
    assert "SUCCESS" in out and "1 rule files found" in out
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    assert config["rule_files"] == ["rules.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for sc in jobs["dossier-stream"]["static_configs"] for t in sc["targets"]]
    assert targets == ["worker:9108"]
