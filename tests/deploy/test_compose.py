"""The production stack (``docker-compose.yml``, ``Dockerfile``, ``.env.example``), checked offline.

No Docker engine is needed: the compose file is interpolated with the values
of ``.env.example`` as ``docker compose`` would, validated against the
Compose Specification's JSON Schema (vendored in ``tests/data``, see
``compose-spec.SOURCE.md``), and its references are checked against the
repository: mounted files and directories exist, build contexts have their
Dockerfile, every variable is documented in ``.env.example``, every service
is either health-checked or a one-shot init that others wait for, the worker
image runs as a non-root user, the worker's settings exist in
:class:`dossier_stream.settings.Settings`, and the Prometheus and Grafana
mounts match what their configuration files expect.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from dossier_stream.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
SCHEMA = Path(__file__).resolve().parents[1] / "data" / "compose-spec.json"
STATEFUL = {
    "kafka": "/var/lib/kafka/data",
    "clickhouse": "/var/lib/clickhouse",
    "prometheus": "/prometheus",
    "grafana": "/var/lib/grafana",
}

# $$ is a literal $, ${NAME...} and $NAME are interpolated (compose-spec "Interpolation").
_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def _env_example() -> dict[str, str]:
    values = {}
    for n, text in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), 1):
        line = text.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", key), f".env.example:{n}: {line!r}"
        assert key not in values, f".env.example:{n}: {key} set twice"
        values[key] = value
    return values


def _variables(text: str) -> set[str]:
    return {m["braced"] or m["bare"] for m in _INTERPOLATION.finditer(text) if m[0] != "$$"}


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation of ``text`` with ``env`` (raises on a required variable)."""

    def repl(m: re.Match[str]) -> str:
        if m[0] == "$$":
            return "$"
        name = m["braced"] or m["bare"]
        op, arg = m["op"] or "", m["arg"] or ""
        present = name in env
        empty = present and env[name] == ""
        if op in (":?", "?") and (not present or (op == ":?" and empty)):
            raise KeyError(f"{name}: {arg}")
        if op in (":-", "-") and (not present or (op == ":-" and empty)):
            return arg
        if op in (":+", "+"):
            return arg if present and not (op == ":+" and empty) else ""
        return env.get(name, "")

    return _INTERPOLATION.sub(repl, text)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    """The compose file before interpolation."""
    doc = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file as docker compose sees it with ``.env`` = ``.env.example``."""
    doc = yaml.safe_load(interpolate(COMPOSE.read_text(encoding="utf-8"), _env_example()))
    assert isinstance(doc, dict)
    return doc


def test_interpolation_follows_the_compose_rules() -> None:
    env = {"A": "a", "E": ""}
    assert interpolate("$$A ${A} $A ${B:-d} ${E:-d} ${E-d} ${A:+x} ${B:+x}", env) == (
        "$A a a d d  x "
    )
    with pytest.raises(KeyError, match="B: needed"):
        interpolate("${B:?needed}", env)
    with pytest.raises(KeyError, match="E: needed"):
        interpolate("${E:?needed}", env)
    assert _variables("$$NOT ${A:-x} $B") == {"A", "B"}


def test_compose_file_is_valid_against_the_compose_spec(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)
    errors = sorted(validator_cls(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
    # the schema catches mistakes: an unknown service key is an error
    broken = {**compose, "services": {"x": {"image": "busybox", "helthcheck": {}}}}
    assert list(validator_cls(schema).iter_errors(broken))


def test_every_variable_is_in_env_example_and_every_entry_is_used() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    example = _env_example()
    used = _variables(text)
    assert used, "the compose file takes no setting from .env"
    assert used <= example.keys(), f"not in .env.example: {sorted(used - example.keys())}"
    assert example.keys() <= used, f"unused in compose: {sorted(example.keys() - used)}"
    # and a missing .env stops compose with a message instead of empty passwords
    with pytest.raises(KeyError, match=r"CLICKHOUSE_PASSWORD|GRAFANA_ADMIN_PASSWORD"):
        interpolate(text, {k: v for k, v in example.items() if "PASSWORD" not in k})


def test_no_secret_is_written_in_the_compose_file() -> None:
    # every variable replaced by a marker: a secret must be nothing but a marker
    markers = {k: f"__{k}__" for k in _env_example()}
    doc = yaml.safe_load(interpolate(COMPOSE.read_text(encoding="utf-8"), markers))
    secret = re.compile(r"PASSWORD|SECRET|TOKEN", re.IGNORECASE)
    checked = 0
    for name, service in doc["services"].items():
        env = service.get("environment", {})
        assert isinstance(env, dict), f"{name}: use the mapping form of environment"
        for key, value in env.items():
            if key.endswith("_DSN"):
                password = urlsplit(str(value)).password
                assert password is None or re.fullmatch(r"__[A-Z_]+__", password), (
                    f"{name}.{key}: the password must come from .env"
                )
                checked += 1
            elif secret.search(key):
                assert re.fullmatch(r"__[A-Z_]+__", str(value)), f"{name}.{key}: literal secret"
                checked += 1
    assert checked >= 4
    for key, value in _env_example().items():
        if secret.search(key):
            assert value == "change-me", f".env.example must hold placeholders, not {key}"


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(type, source, target)`` of a service's volumes (short and long syntax)."""
    out = []
    for vol in service.get("volumes", []):
        if isinstance(vol, str):
            source, _, rest = vol.partition(":")
            target = rest.split(":", 1)[0]
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        else:
            kind, source, target = vol["type"], vol.get("source", ""), vol["target"]
        out.append((kind, source, target))
    return out


def test_mounted_files_exist_and_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in compose["services"].items():
        for kind, source, target in _mounts(service):
            if kind == "bind":
                path = (COMPOSE.parent / source).resolve()
                assert path.exists(), f"{name}: mounts {source}, which does not exist"
                assert REPO in path.parents, f"{name}: mounts {source} from outside the repo"
            else:
                assert source in declared, f"{name}: volume {source!r} is not declared"
                used.add(source)
                assert target.startswith("/")
    assert used == declared, f"declared but unused volumes: {declared - used}"
    for name, data_dir in STATEFUL.items():
        volumes = {t for k, _, t in _mounts(compose["services"][name]) if k == "volume"}
        assert data_dir in volumes, f"{name} keeps its data in {data_dir}: give it a named volume"


def test_build_contexts_have_their_dockerfile(compose: dict[str, Any]) -> None:
    built = 0
    for name, service in compose["services"].items():
        build = service.get("build")
        if build is None:
            image = service["image"]
            assert re.search(r":[\w.-]+$", image) and not image.endswith(":latest"), (
                f"{name}: pin the image tag ({image})"
            )
            continue
        build = {"context": build} if isinstance(build, str) else build
        context = (COMPOSE.parent / build.get("context", ".")).resolve()
        assert context.is_dir(), f"{name}: no build context {context}"
        assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
        built += 1
    assert built >= 1


def _one_shots(compose: dict[str, Any]) -> set[str]:
    """Services others wait for to complete successfully."""
    return {
        dep
        for service in compose["services"].values()
        for dep, cond in (service.get("depends_on") or {}).items()
        if isinstance(cond, dict) and cond.get("condition") == "service_completed_successfully"
    }


def test_every_service_is_health_checked_or_a_one_shot_init(compose: dict[str, Any]) -> None:
    services = compose["services"]
    one_shots = _one_shots(compose)
    assert {"kafka-init", "clickhouse-init"} <= one_shots
    for name, service in services.items():
        if name in one_shots:
            assert service.get("restart", "no") == "no", f"{name} runs once: restart must be no"
            assert "healthcheck" not in service
            continue
        check = service.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name}: no healthcheck"
        assert service.get("restart") == "unless-stopped", f"{name}: restart policy"
    for name, service in services.items():
        deps = service.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: depends_on needs conditions"
        for dep, cond in deps.items():
            assert dep in services, f"{name} depends on unknown {dep}"
            want = "service_completed_successfully" if dep in one_shots else "service_healthy"
            assert cond.get("condition") == want, f"{name} -> {dep}: condition {want}"
    worker = services["worker"]["depends_on"]
    assert {"kafka-init", "clickhouse-init"} <= set(worker)


def test_worker_image_runs_the_worker_as_a_non_root_user(compose: dict[str, Any]) -> None:
    build = compose["services"]["worker"]["build"]
    dockerfile = COMPOSE.parent / build["context"] / build.get("dockerfile", "Dockerfile")
    lines = []
    for line in re.sub(r"\\\n", " ", dockerfile.read_text(encoding="utf-8")).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            lines.append(line.strip())
    stages = [i for i, line in enumerate(lines) if line.upper().startswith("FROM ")]
    final = lines[stages[-1] :]
    assert final[0].split()[1] == "python:3.11-slim"
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users, "the final stage has no USER: the worker would run as root"
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert any(re.match(r"RUN .*pip install \.", line) for line in final)
    entry = next(line for line in final if line.upper().startswith("ENTRYPOINT"))
    assert json.loads(entry.split(None, 1)[1]) == ["dossier-stream"]
    cmd = next(line for line in final if line.upper().startswith("CMD"))
    assert json.loads(cmd.split(None, 1)[1]) == ["worker"]
    ignore = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert ignore[ignore.index("*") :][:1] == ["*"], ".dockerignore must exclude by default"
    assert {"!pyproject.toml", "!README.md", "!src/"} <= set(ignore)
    copied = {line.split()[1].rstrip("/") for line in final if line.upper().startswith("COPY ")}
    assert {"pyproject.toml", "src"} <= copied
    # files the package links to from outside src/ must be in the build context too
    for link in (REPO / "src").rglob("*"):
        if link.is_symlink():
            top = link.resolve().relative_to(REPO).parts[0]
            assert f"!{top}/" in ignore, f"{link} -> {top}/: let .dockerignore send it"
            assert top in copied, f"{link} -> {top}/: COPY it before building the package"


def test_dossier_settings_exist(compose: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    seen = 0
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if key.startswith("DOSSIER_"):
                seen += 1
                assert key.removeprefix("DOSSIER_").lower() in fields, f"{name}: unknown {key}"
                assert value not in ("", None), f"{name}: {key} is empty"
    assert seen
    worker = compose["services"]["worker"]["environment"]
    settings = Settings(**{k.removeprefix("DOSSIER_").lower(): v for k, v in worker.items()})
    assert settings.bootstrap_servers == "kafka:9092"
    assert settings.clickhouse_dsn.get_secret_value().startswith("http://")


def test_prometheus_gets_its_rules_and_scrapes_the_worker(compose: dict[str, Any]) -> None:
    prom = compose["services"]["prometheus"]
    mounts = {t: s for k, s, t in _mounts(prom) if k == "bind"}
    config_target = next(a.split("=", 1)[1] for a in prom["command"] if "--config.file=" in a)
    assert config_target in mounts
    config = yaml.safe_load((COMPOSE.parent / mounts[config_target]).read_text(encoding="utf-8"))
    for rule_file in config.get("rule_files", []):
        target = str(PurePosixPath(config_target).parent / rule_file)
        assert target in mounts, f"prometheus.yml reads {rule_file}: mount it at {target}"
    targets = {
        t
        for job in config["scrape_configs"]
        for sc in job.get("static_configs", [])
        for t in sc["targets"]
    }
    port = compose["services"]["worker"]["environment"]["DOSSIER_METRICS_PORT"]
    assert f"worker:{port}" in targets
    # Grafana's $__rate_interval is right only if it knows the scrape interval
    datasources = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/datasources.yml").read_text(
            encoding="utf-8"
        )
    )["datasources"]
    prometheus = next(ds for ds in datasources if ds["type"] == "prometheus")
    assert prometheus["jsonData"]["timeInterval"] == config["global"]["scrape_interval"]


def test_grafana_gets_its_provisioning_plugin_and_dashboards(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    env = grafana["environment"]
    plugins = dict(p.strip().split(" ", 1) for p in env["GF_INSTALL_PLUGINS"].split(","))
    assert re.fullmatch(r"\d+\.\d+\.\d+", plugins["grafana-clickhouse-datasource"])
    mounts = {t: s for k, s, t in _mounts(grafana) if k == "bind"}
    for kind in ("datasources", "dashboards"):
        target = f"/etc/grafana/provisioning/{kind}"
        assert Path(mounts[target]).name == kind, target
    providers = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/dashboards/dashboards.yml").read_text(encoding="utf-8")
    )["providers"]
    for provider in providers:
        path = provider["options"]["path"]
        assert path in mounts, f"the dashboards provider reads {path}: mount the dashboards there"
        assert list((COMPOSE.parent / mounts[path]).glob("*.json"))
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    home_dir, home_file = str(PurePosixPath(home).parent), PurePosixPath(home).name
    assert (COMPOSE.parent / mounts[home_dir] / home_file).is_file()
    datasources = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/datasources.yml").read_text(
            encoding="utf-8"
        )
    )
    wanted = _variables(json.dumps(datasources))  # in values, not in comments
    assert {"CLICKHOUSE_PASSWORD", "CLICKHOUSE_USER"} <= wanted
    for var in wanted:
        assert env.get(var) not in (None, ""), f"datasources.yml reads ${var}: set it for grafana"


def test_grafana_reads_clickhouse_as_a_read_only_user() -> None:
    # every .env variable replaced by a marker, to follow where each one goes
    markers = {k: f"__{k}__" for k in _env_example()}
    doc = yaml.safe_load(interpolate(COMPOSE.read_text(encoding="utf-8"), markers))
    clickhouse, grafana = doc["services"]["clickhouse"], doc["services"]["grafana"]
    ch_env, gf_env = clickhouse["environment"], grafana["environment"]
    users_d = [
        s
        for k, s, t in _mounts(clickhouse)
        if k == "bind" and t.startswith("/etc/clickhouse-server/users.d/")
    ]
    assert users_d, "mount the read-only user's file into ClickHouse's users.d"
    root = ET.parse(COMPOSE.parent / users_d[0]).getroot()
    name = gf_env["CLICKHOUSE_USER"]  # what datasources.yml logs in as
    user = root.find(f"users/{name}")
    assert user is not None, f"{name} is not defined in {users_d[0]}"
    profile = root.find(f"profiles/{user.findtext('profile')}")
    assert profile is not None and profile.findtext("readonly") == "1"
    # the plugin sets max_execution_time on every query: locked, it would fail every panel
    assert profile.find("constraints/max_execution_time/changeable_in_readonly") is not None
    password = user.find("password")
    assert password is not None and not (password.text or "").strip(), "no password in the file"
    secret = password.get("from_env", "")
    assert ch_env.get(secret) == f"__{secret}__", f"set {secret} for clickhouse from .env"
    assert gf_env["CLICKHOUSE_PASSWORD"] == f"__{secret}__"
    database = user.find("allow_databases/database")
    assert database is not None
    assert ch_env[database.get("from_env", "")] == gf_env["CLICKHOUSE_DB"]
    # not the worker's (read-write) user, nor its password
    dsn = urlsplit(doc["services"]["worker"]["environment"]["DOSSIER_CLICKHOUSE_DSN"])
    assert dsn.username != name
    assert dsn.password != gf_env["CLICKHOUSE_PASSWORD"]
