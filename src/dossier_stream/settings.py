"""Configuration: one pydantic-settings object, ``DOSSIER_`` environment prefix.

Every setting can come from the environment (``DOSSIER_BOOTSTRAP_SERVERS``),
from a ``.env`` file in the working directory, from a secrets directory, or
from command-line options that override them all. Secrets are
:class:`~pydantic.SecretStr`: they never print in logs, reprs or ``--help``.
A wrong value stops start-up with a message that names the setting
(:func:`load_settings`).

Secret files: when ``DOSSIER_SECRETS_DIR`` names a directory (Docker and
Kubernetes mount secrets as files, e.g. ``/run/secrets``), each file in it
named after a variable (``dossier_clickhouse_dsn``, ``DOSSIER_SASL_PASSWORD``;
the case does not matter) holds that setting's value, surrounding whitespace
removed. The environment and ``.env`` win over a file, so a secret never has
to appear in the environment, a command line or a shell history.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["SECRETS_DIR_ENV", "ConfigError", "Settings", "load_settings", "mask_dsn"]

SECRETS_DIR_ENV = "DOSSIER_SECRETS_DIR"
"""The environment variable naming the directory of secret files."""


class ConfigError(ValueError):
    """A setting is wrong; the message names it and says what to write."""


def mask_dsn(dsn: str) -> str:
    """The DSN with any password replaced by ``***`` (safe to log)."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


class Settings(BaseSettings):
    """All settings of the worker and the command line."""

    model_config = SettingsConfigDict(
        env_prefix="DOSSIER_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    bootstrap_servers: str = Field(
        "localhost:9092", description="Kafka bootstrap servers, comma-separated host:port"
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = Field(None, description="CA bundle for SSL / SASL_SSL")
    clickhouse_dsn: SecretStr = Field(
        SecretStr("chdb://.dossier-stream/clickhouse"),
        description="chdb:///path (embedded) or http(s)://user:password@host:8123/database",
    )
    units_file: Path | None = Field(None, description="unit registry CSV; bundled Hải Phòng")
    calendar_file: Path | None = Field(None, description="extra official day swaps CSV")
    topics_file: Path | None = Field(None, description="topic catalog; bundled streams/topics.yaml")
    data_dir: Path = Field(Path(".dossier-stream"), description="worker state (tables, logs)")
    app_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]+$")] = "dossier-stream"
    runtime: Literal["batch", "faust"] = Field(
        "batch",
        description="batch: one aiokafka consumer, batches folded, stored, then committed "
        "(fast); faust: a Faust app with take_events agents (about 3x slower, see bench/)",
    )
    state_store: Literal["memory", "rocksdb"] = Field(
        "rocksdb",
        description="where the worker keeps dossier states: rocksdb (under DOSSIER_DATA_DIR, "
        "a bounded cache in memory) or memory (every state in RAM)",
    )
    state_cache_entries: Annotated[int, Field(ge=1)] = Field(
        10_000,
        description="with DOSSIER_STATE_STORE=rocksdb: decoded dossier states kept in memory "
        "per source (≈ 1,3 KB each; also the live figures' index of open dossiers kept in "
        "memory per source); the rest is in RocksDB",
    )
    counter_cache_entries: Annotated[int, Field(ge=1)] = Field(
        10_000,
        description="with DOSSIER_STATE_STORE=rocksdb: counter totals (unit, day, counter) "
        "kept in memory per source after each batch (≈ 120 B each); the rest is in RocksDB",
    )
    rocksdb_memtable_mib: Annotated[int, Field(ge=1)] = Field(
        32,
        description="with DOSSIER_STATE_STORE=rocksdb: RocksDB write buffers (memtables) of "
        "every state and counter store of the worker together, in MiB",
    )
    rocksdb_cache_mib: Annotated[int, Field(ge=1)] = Field(
        32,
        description="with DOSSIER_STATE_STORE=rocksdb: RocksDB block cache of every store "
        "together, in MiB; it holds the stores' index and filter blocks too, so their memory "
        "stays within it however many keys the stores hold",
    )
    rocksdb_index_in_cache: bool = Field(
        True,
        description="with DOSSIER_STATE_STORE=rocksdb: the stores' index and filter blocks "
        "inside the block cache (partitioned; bounded) or beside it (≈ 3,5 MB per million "
        "keys, growing with the stores)",
    )
    rocksdb_compaction: Literal["universal", "level"] = Field(
        "universal",
        description="with DOSSIER_STATE_STORE=rocksdb: the stores' RocksDB compaction; "
        "universal rewrites each row a few times as the stores grow, level (RocksDB's "
        "default) rewrites their last level again and again as it grows (about twice the "
        "compaction CPU from 6 million events on)",
    )
    key_filter_mib: Annotated[float, Field(ge=0)] = Field(
        2.0,
        description="with DOSSIER_STATE_STORE=rocksdb: most MiB of each store's in-memory "
        "filter of the keys it holds (states: ≈ 1,25 B per key until then, past it more "
        "look-ups go to RocksDB; counters: a filter per day, the least recently written "
        "days' dropped past it; never a wrong answer); 0 = no bound",
    )
    memory_release_s: Annotated[float, Field(ge=0)] = Field(
        30.0,
        description="seconds between returns of freed memory to the system (glibc's "
        "malloc_trim, chdb's allocator purge); 0 = never",
    )
    gc_sweep_s: Annotated[float, Field(ge=0)] = Field(
        300.0,
        description="seconds between the worker's full garbage collections; automatic "
        "collection is off in between (the fold makes no reference cycles); 0 = automatic "
        "collection with raised thresholds",
    )
    partitions: Annotated[int, Field(ge=1, le=1000)] | None = Field(
        None, description="override the partition count of the catalog when creating topics"
    )
    flush_interval_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        0.5,
        description="longest a consumed event waits before its batch is folded and stored "
        "(bounds freshness)",
    )
    flush_max_rows: Annotated[int, Field(ge=1)] = Field(
        50_000,
        description="rows buffered for ClickHouse that make a batch flush before its end "
        "(4x this many stop consumption until a flush succeeds)",
    )
    batch_size: Annotated[int, Field(ge=1, le=100_000)] = Field(
        20_000,
        description="most messages folded and stored as one batch; a live feed closes a "
        "batch after DOSSIER_FLUSH_INTERVAL_S, a backlog fills it (big batches make fewer, "
        "larger ClickHouse inserts: see bench/README.md)",
    )
    align_ms: Annotated[int, Field(ge=0, le=86_400_000)] = Field(
        1000,
        description="batch runtime: how far ahead (Kafka record timestamp, ms) one of a "
        "source's co-partitioned partitions (the dossier.* topics' partition n) may be read "
        "of the others that still have records, before it waits for them; keeps a backlog "
        "folded in publish order (fewer states read back from RocksDB); 0 = off",
    )
    fetch_max_kib: Annotated[int, Field(ge=64, le=65_536)] = Field(
        1024,
        description="batch runtime: most KiB the worker's consumer asks for in one fetch "
        "(Kafka's fetch_max_bytes, and the per-partition limit); the embedded broker "
        "honours it per partition, not the per-partition limit, so it bounds the fetched "
        "records a partition held back by DOSSIER_ALIGN_MS keeps in memory",
    )
    session_timeout_s: Annotated[float, Field(ge=6, le=300)] = 6.0
    assign_all: bool = Field(
        False,
        description="batch runtime: read every partition of the input topics without "
        "joining the consumer group (no join, 3 s with the embedded broker, and no "
        "rebalances); offsets are still committed to DOSSIER_APP_ID. Only for a worker "
        "alone on its topics, as the embedded demo: with another member in the group "
        "the commits fail",
    )
    flush_retry_min_s: Annotated[float, Field(gt=0, le=60)] = Field(
        0.5, description="first wait before retrying a failed ClickHouse flush (doubles each time)"
    )
    flush_retry_max_s: Annotated[float, Field(gt=0, le=600)] = Field(
        30.0,
        description="longest wait between retries of a failed ClickHouse flush; the worker "
        "retries until the write succeeds and consumes nothing new meanwhile",
    )
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        9108,
        description="port of the worker's /metrics; 0 = an ephemeral port (logged); "
        "if left at the default and busy, an ephemeral port with a warning",
    )
    metrics_host: str = Field(
        "127.0.0.1",
        description="bind address of the worker's /metrics: loopback by default (CLI runs, "
        "the demo); the container image and docker-compose.yml set 0.0.0.0 for Prometheus",
    )
    # store-server (see store/storeserver.py and the README's threat model)
    store_server_user: str = Field("dossier", description="store-server's read-write user")
    store_server_password: SecretStr | None = Field(
        None,
        description="password (token) of DOSSIER_STORE_SERVER_USER; required to listen "
        "beyond loopback",
    )
    store_server_reader_user: str = Field(
        "reader", description="store-server's read-only user (report, dashboards)"
    )
    store_server_reader_password: SecretStr | None = Field(
        None, description="password (token) of DOSSIER_STORE_SERVER_READER_USER"
    )
    store_server_max_request_line: Annotated[int, Field(ge=1024, le=1 << 24)] = Field(
        64 * 1024, description="bytes of a request line (URL with its parameters)"
    )
    store_server_max_header_bytes: Annotated[int, Field(ge=1024, le=1 << 24)] = Field(
        64 * 1024, description="bytes of a request's headers, all together"
    )
    store_server_max_body_bytes: Annotated[int, Field(ge=1024, le=1 << 40)] | None = Field(
        None,
        description="bytes of a request body as sent (compressed or not); default: the "
        "sink's largest flush, 4 x DOSSIER_FLUSH_MAX_ROWS rows x 1 KiB, at least 64 MiB",
    )
    store_server_max_decompressed_bytes: Annotated[int, Field(ge=1024, le=1 << 40)] | None = Field(
        None,
        description="bytes of a request body once decompressed; default: as "
        "DOSSIER_STORE_SERVER_MAX_BODY_BYTES",
    )
    store_server_max_query_bytes: Annotated[int, Field(ge=1024, le=1 << 30)] = Field(
        1024 * 1024, description="bytes of a statement's SQL text (an INSERT's data aside)"
    )
    store_server_read_timeout_s: Annotated[float, Field(gt=0, le=3600)] = Field(
        30.0, description="seconds a request may take to arrive (and an idle connection stay)"
    )
    store_server_max_connections: Annotated[int, Field(ge=1, le=10_000)] = Field(
        64, description="connections served at once; more are answered 503"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    document_file: Path | None = Field(
        None,
        description="who issues, receives and signs the official report (YAML); bundled "
        "Hải Phòng (data/document_haiphong.yaml)",
    )
    csv_bom: bool = Field(
        True, description="a CSV report file starts with a UTF-8 BOM (Excel on Windows)"
    )
    index766_profile: Path | None = Field(None, description="766 index profile; bundled")
    index766_scores: Path | None = Field(
        None, description="CSV from,to,group,points: published scores of the 766 input groups"
    )
    index766_group_scores: str | None = Field(
        None, description="published 766 input-group scores for any period, e.g. cong_khai=12"
    )

    @field_validator("bootstrap_servers")
    @classmethod
    def _servers(cls, value: str) -> str:
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"{server!r} is not host:port (e.g. localhost:9092)")
        return value

    @field_validator("clickhouse_dsn")
    @classmethod
    def _dsn(cls, value: SecretStr) -> SecretStr:
        scheme = urlsplit(value.get_secret_value()).scheme
        if scheme not in {"chdb", "http", "https"}:
            raise ValueError(
                f"scheme {scheme or '(none)'!r} is not supported: use chdb:///path or "
                "http(s)://user:password@host:8123/database"
            )
        return value

    @field_validator("store_server_password", "store_server_reader_password")
    @classmethod
    def _no_empty_password(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value() else None

    @field_validator("flush_retry_max_s")
    @classmethod
    def _retry_bounds(cls, value: float, info: ValidationInfo) -> float:
        low = info.data.get("flush_retry_min_s")
        if low is not None and value < low:
            raise ValueError(f"must be at least DOSSIER_FLUSH_RETRY_MIN_S ({low})")
        return value

    def kafka_options(self) -> dict[str, Any]:
        """Security options for aiokafka clients."""
        opts: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.sasl_mechanism:
            opts["sasl_mechanism"] = self.sasl_mechanism
            opts["sasl_plain_username"] = self.sasl_username
            opts["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        if self.security_protocol in {"SSL", "SASL_SSL"}:
            import ssl  # noqa: PLC0415

            opts["ssl_context"] = ssl.create_default_context(
                cafile=str(self.ssl_cafile) if self.ssl_cafile else None
            )
        return opts


def _secrets_dir() -> Path | None:
    """The directory of secret files (``DOSSIER_SECRETS_DIR``), checked, or ``None``."""
    value = os.environ.get(SECRETS_DIR_ENV, "").strip()
    if not value:
        return None
    path = Path(value)
    if not path.is_dir():
        raise ConfigError(
            f"invalid configuration:\n  {SECRETS_DIR_ENV}={value!r}: not a directory "
            "(the directory of secret files, one file per setting, e.g. /run/secrets)"
        )
    return path


def load_settings(**overrides: Any) -> Settings:
    """Build the settings; ``overrides`` (non-``None`` only) win over the other sources.

    The sources, strongest first: ``overrides`` (command-line options), the
    environment, ``.env``, the files of ``DOSSIER_SECRETS_DIR``, the defaults.

    Raises:
        ConfigError: naming each wrong setting by its environment variable.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    secrets = _secrets_dir()
    try:
        return Settings(**given, _secrets_dir=secrets)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            name = str(err["loc"][0]) if err["loc"] else "?"
            value = "***" if name.endswith(("password", "dsn")) else repr(err.get("input"))
            lines.append(f"DOSSIER_{name.upper()}={value}: {err['msg']}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
