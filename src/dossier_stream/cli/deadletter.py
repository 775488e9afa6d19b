"""Operations on dead letters: ``dossier-stream deadletter list`` and ``deadletter replay``.

Invalid input is never dropped: the worker logs every dead letter into the
ClickHouse table ``dead_letters`` — its id, source topic, partition and offset,
the reason (``code`` or ``code:field``), a detail, the original bytes (since
migration 5, exactly as they were sent, UTF-8 or not), when it was logged and
when it was replayed (:mod:`dossier_stream.store.deadletters`). ``list`` shows them;
``replay`` re-publishes the original values once their cause is fixed (a
unit added to the registry the worker loads with ``--units`` /
``DOSSIER_UNITS_FILE``, a producer bug corrected...).

Every filter reaches ClickHouse as a bound parameter
(:meth:`~dossier_stream.store.sink.ClickHouseStore.find_dead_letters`), never as
SQL text.

Replay, decided:

* A letter goes to the topic its ``event_type`` routes to in the topic
  catalog, through the producer of ``dossier-stream produce`` (keyed by
  ``dossier_id`` / ``feedback_id`` / ``unit_code`` like any event). A letter
  no topic carries — not JSON, not an object, no or an unknown
  ``event_type`` — is *unroutable*: counted, left unmarked, never sent.
* Re-published letters are marked (``replayed_at``), after the broker has
  acknowledged every message, so a second replay does not send them again
  unless ``--all`` is given; a failed publication marks nothing and can
  simply be run again. Sending a letter twice is harmless: the worker counts
  an ``event_id`` once.
* A replayed event that is still invalid is dead-lettered again by the
  worker as a *new* letter (its new topic offset), pending for the next
  replay: one publication per command, never a loop, nothing lost.
* What is re-published is the letter's original bytes, byte for byte. Only
  letters logged before migration 5 may be *lossy*: their value was stored as
  text, an original that was not UTF-8 with replacement characters (U+FFFD);
  such a letter (``value_exact`` = 0 with U+FFFD in the value) is counted and
  left, rather than re-publishing bytes nobody sent.
* ``--dry-run`` lists every selected letter with the SHA-256 of its bytes,
  their length and where it would go, so what would be sent can be checked.
* Before sending, each letter is checked against the registry and calendar
  this command loads (``--units`` / ``DOSSIER_UNITS_FILE``): the summary says
  how many pass the checks now and why the others would dead-letter again.
  It is a forecast; the worker's own registry decides.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

if TYPE_CHECKING:
    from dossier_stream.core.engine import Engine
    from dossier_stream.core.topics import TopicCatalog

__all__ = [
    "ReplayPlan",
    "as_text",
    "deadletter",
    "is_lossy",
    "json_letter",
    "plan_replay",
    "printable",
    "render_letters",
    "route_of",
]

_VALUE_WIDTH = 60


def printable(text: str, width: int | None = None) -> str:
    """``text`` safe for a terminal: control and format characters escaped, cut at ``width``.

    A dead letter's value is whatever a producer sent, so it may hold
    terminal escape sequences or bidirectional overrides; they are shown as
    ``\\x1b`` / ``\\u202e`` instead of being interpreted.
    """
    out = "".join(
        ch if not unicodedata.category(ch).startswith("C") else ch.encode("unicode_escape").decode()
        for ch in text
    )
    if width is not None and len(out) > width:
        return out[: width - 1] + "…"
    return out


def as_text(value: bytes | str) -> str:
    """A letter's bytes as text for a person (bytes that are not UTF-8 as U+FFFD)."""
    return value if isinstance(value, str) else value.decode("utf-8", errors="replace")


def is_lossy(letter: Mapping[str, Any]) -> bool:
    """A letter logged before migration 5 whose original was not UTF-8 (its bytes are lost)."""
    return not letter.get("value_exact", 1) and "\ufffd" in as_text(letter["value"])


def json_letter(letter: Mapping[str, Any]) -> dict[str, Any]:
    """A letter for JSON: ``value`` as text, and its exact bytes in base64 with their SHA-256."""
    raw = letter["value"] if isinstance(letter["value"], bytes) else letter["value"].encode()
    return {
        **letter,
        "value": as_text(raw),
        "value_base64": base64.b64encode(raw).decode(),
        "value_sha256": hashlib.sha256(raw).hexdigest(),
    }


def route_of(value: bytes, catalog: TopicCatalog) -> str | None:
    """The topic ``produce`` sends ``value`` to, or ``None`` when no topic carries it."""
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("event_type"), str):
        return None
    try:
        return catalog.topic_for(obj["event_type"])
    except KeyError:
        return None


@dataclass(slots=True)
class ReplayPlan:
    """What a replay of some dead letters does.

    Attributes:
        routed: ``(letter, topic, value)`` of every letter to re-publish.
        unroutable: letters no topic carries (left as they are).
        lossy: letters whose original bytes the table does not hold.
        forecast: ``valid`` or the reason each routed letter gets from the
            checks of this command's registry.
    """

    routed: list[tuple[Mapping[str, Any], str, bytes]] = field(default_factory=list)
    unroutable: list[Mapping[str, Any]] = field(default_factory=list)
    lossy: list[Mapping[str, Any]] = field(default_factory=list)
    forecast: Counter[str] = field(default_factory=Counter)

    @property
    def per_topic(self) -> Counter[str]:
        """Letters to re-publish per target topic."""
        return Counter(topic for _, topic, _ in self.routed)


def plan_replay(
    letters: Sequence[Mapping[str, Any]], catalog: TopicCatalog, engine: Engine
) -> ReplayPlan:
    """Sort ``letters`` (rows of ``find_dead_letters``) into routed, unroutable and lossy.

    Args:
        letters: the selected dead letters.
        catalog: the topic catalog (routing by ``event_type``).
        engine: parses and checks each routed value for the forecast (its
            states are not touched).
    """
    from dossier_stream.core.engine import DeadLetter  # noqa: PLC0415

    plan = ReplayPlan()
    for letter in letters:
        if is_lossy(letter):
            plan.lossy.append(letter)
            continue
        value = letter["value"]
        if isinstance(value, str):
            value = value.encode()
        topic = route_of(value, catalog)
        if topic is None:
            plan.unroutable.append(letter)
            continue
        plan.routed.append((letter, topic, value))
        checked = engine.parse(value, topic=topic)
        plan.forecast[checked.reason if isinstance(checked, DeadLetter) else "valid"] += 1
    return plan


def _utc(at: datetime | None) -> str:
    return "-" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def render_letters(
    counts: Sequence[tuple[str, int, int]],
    letters: Sequence[Mapping[str, Any]],
    *,
    filters: str,
) -> str:
    """The text form of ``deadletter list``: reason counts, then one row per letter."""
    total = sum(n for _, n, _ in counts)
    replayed = sum(m for _, _, m in counts)
    lines = [f"dead letters: {total} ({replayed} replayed, {total - replayed} pending){filters}"]
    if not total:
        return lines[0] + "\n"
    lines.append(f"{'letters':>8}  {'replayed':>8}  reason")
    lines += [f"{n:>8}  {m:>8}  {printable(reason, 80)}" for reason, n, m in counts]
    header = ("logged at (UTC)", "topic", "partition", "offset", "reason", "replayed at", "value")
    rows = [
        (
            _utc(row["logged_at"]),
            printable(row["topic"], 40),
            str(row["partition"]),
            str(row["offset"]),
            printable(row["reason"], 48),
            _utc(row["replayed_at"]),
            printable(as_text(row["value"]), _VALUE_WIDTH),
        )
        for row in letters
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header) - 1)]
    lines.append("")
    for r in (header, *rows):
        cells = [
            cell.rjust(w) if i in {2, 3} else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(r[:-1], widths, strict=True))
        ]
        lines.append("  ".join([*cells, r[-1]]).rstrip())
    if len(letters) < total:
        lines.append(f"(the newest {len(letters)} of {total}; --limit N for more)")
    return "\n".join(lines) + "\n"


def _filters(reason: str | None, topic: str | None) -> str:
    given = [f"{k}={printable(v)}" for k, v in (("reason", reason), ("topic", topic)) if v]
    return f" [{', '.join(given)}]" if given else ""


REASON_OPTION = click.option(
    "--reason",
    help="Only this reason: a code (unknown_unit, not_json, ...) or a whole reason "
    "(missing_field:unit_code).",
)
TOPIC_OPTION = click.option("--topic", help="Only letters read from this source topic.")


@click.group("deadletter")
def deadletter() -> None:
    """Inspect and re-publish dead letters (the ClickHouse table dead_letters).

    Every invalid message — not JSON, against the contract, an unknown unit,
    on the wrong topic — is logged with its reason, its source topic,
    partition and offset, and its original value. Reads ClickHouse only
    (DOSSIER_CLICKHOUSE_DSN); replay also publishes to Kafka
    (DOSSIER_BOOTSTRAP_SERVERS).

    \b
    Examples:
      dossier-stream deadletter list
      dossier-stream deadletter list --reason unknown_unit --format json
      DOSSIER_UNITS_FILE=units.csv dossier-stream deadletter replay --reason unknown_unit --dry-run
    """


@deadletter.command("list")
@REASON_OPTION
@TOPIC_OPTION
@click.option(
    "--limit",
    type=click.IntRange(1, 1_000_000),
    default=50,
    show_default=True,
    help="Rows to show, the newest first (the reason counts cover every letter).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: reason counts, then a table with values cut to 60 characters; "
    "json: the counts and the whole rows, for machines.",
)
def deadletter_list(reason: str | None, topic: str | None, limit: int, fmt: str) -> None:
    """Show dead letters: how many per reason, then the newest rows.

    A value is printed with control characters escaped, so whatever a
    producer sent cannot drive the terminal.

    \b
    Examples:
      dossier-stream deadletter list                          # counts and the newest 50
      dossier-stream deadletter list --reason unknown_unit    # one reason code
      dossier-stream deadletter list --reason missing_field:unit_code --limit 500
      dossier-stream deadletter list --topic dossier.payments.v1 --format json | jq .
    """
    from dossier_stream.cli._common import settings_or_exit, store_or_exit  # noqa: PLC0415

    store = store_or_exit(settings_or_exit(), find_demo=True)
    try:
        counts = store.dead_letter_counts(reason=reason, topic=topic)
        letters = store.find_dead_letters(reason=reason, topic=topic, limit=limit)
    finally:
        store.close()
    if fmt == "json":
        document = {
            "filters": {"reason": reason, "topic": topic},
            "total": sum(n for _, n, _ in counts),
            "replayed": sum(m for _, _, m in counts),
            "reasons": [{"reason": r, "letters": n, "replayed": m} for r, n, m in counts],
            "letters": [json_letter(letter) for letter in letters],
        }
        click.echo(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(render_letters(counts, letters, filters=_filters(reason, topic)), nl=False)


def _summary(plan: ReplayPlan, selected: int, replay_all: bool, filters: str) -> list[str]:
    which = "every one, replayed or not" if replay_all else "not replayed yet; --all for every one"
    topics = ", ".join(f"{t}: {n}" for t, n in sorted(plan.per_topic.items()))
    valid = plan.forecast.get("valid", 0)
    again = sorted((r, n) for r, n in plan.forecast.items() if r != "valid")
    lines = [
        f"selected {selected} dead letters ({which}){filters}",
        f"  to re-publish: {len(plan.routed)}" + (f" ({topics})" if topics else ""),
        f"  with this registry: {valid} pass the checks, {sum(n for _, n in again)} would "
        "dead-letter again" + (f" ({', '.join(f'{r}: {n}' for r, n in again)})" if again else ""),
        f"  still unroutable (no topic carries them; left as they are): {len(plan.unroutable)}",
    ]
    if plan.lossy:
        lines.append(
            f"  lossy (logged before migration 5, not UTF-8 originally; the bytes are not kept; "
            f"left as they are): {len(plan.lossy)}"
        )
    return lines


def _listing(plan: ReplayPlan) -> list[str]:
    """One line per selected letter: where it would go, its bytes' SHA-256 and length."""
    rows = [(letter, topic) for letter, topic, _ in plan.routed]
    rows += [(letter, "(unroutable)") for letter in plan.unroutable]
    rows += [(letter, "(lossy)") for letter in plan.lossy]
    lines = []
    for letter, target in rows:
        raw = letter["value"] if isinstance(letter["value"], bytes) else letter["value"].encode()
        lines.append(
            f"  {letter['id']}  {target}  sha256:{hashlib.sha256(raw).hexdigest()}  "
            f"{len(raw)} bytes  {printable(as_text(raw), _VALUE_WIDTH)}"
        )
    return lines


@deadletter.command("replay")
@REASON_OPTION
@TOPIC_OPTION
@click.option("--dry-run", is_flag=True, help="Say what would be re-published; send nothing.")
@click.option(
    "--all",
    "replay_all",
    is_flag=True,
    help="Include letters already replayed (by default each letter is re-published once).",
)
@click.option(
    "--units",
    "units_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Unit registry CSV the forecast checks against (env DOSSIER_UNITS_FILE); the worker "
    "uses its own.",
)
@click.option("--bootstrap-servers", help="Kafka host:port list (env DOSSIER_BOOTSTRAP_SERVERS).")
def deadletter_replay(
    reason: str | None,
    topic: str | None,
    dry_run: bool,
    replay_all: bool,
    units_file: Path | None,
    bootstrap_servers: str | None,
) -> None:
    """Re-publish the original values of dead letters to the topics their event_type routes to.

    Once the cause is fixed — typically a unit missing from the registry:
    add it to the registry file, restart the worker with it, then replay the
    unknown_unit letters. Letters are sent oldest first and marked replayed;
    a second replay skips them unless --all is given. A letter that is still
    invalid comes back as a new dead letter; one no topic carries (not JSON,
    unknown event_type) is counted as unroutable and left as it is.

    \b
    Examples:
      dossier-stream deadletter replay --reason unknown_unit --dry-run
      dossier-stream deadletter replay --reason unknown_unit --units units-2025.csv
      dossier-stream deadletter replay --topic dossier.payments.v1
      dossier-stream deadletter replay --reason unknown_unit --all   # again, replayed or not
    """
    from dossier_stream.cli._common import core_or_exit, settings_or_exit, store_or_exit  # noqa: PLC0415
    from dossier_stream.core.engine import Engine  # noqa: PLC0415
    from dossier_stream.stream.runner import produce_lines  # noqa: PLC0415

    settings = settings_or_exit(bootstrap_servers=bootstrap_servers, units_file=units_file)
    registry, calendar, catalog = core_or_exit(settings)
    store = store_or_exit(settings)
    try:
        letters = store.find_dead_letters(
            reason=reason, topic=topic, pending=not replay_all, oldest_first=True
        )
        plan = plan_replay(letters, catalog, Engine(registry, calendar, catalog=catalog))
        for line in _summary(plan, len(letters), replay_all, _filters(reason, topic)):
            click.echo(line)
        if dry_run:
            for line in _listing(plan):
                click.echo(line)
            click.echo("dry run: nothing sent, nothing marked")
            return
        if not plan.routed:
            click.echo("nothing to re-publish")
            return
        values = [value for _, _, value in plan.routed]
        try:
            stats = asyncio.run(
                produce_lines(settings, catalog, values, source="deadletter-replay")
            )
        except Exception as exc:
            raise click.ClickException(
                f"publishing failed, no letter was marked replayed (run it again): {exc}"
            ) from None
        marked = store.mark_dead_letters_replayed(
            [letter for letter, _, _ in plan.routed], datetime.now(UTC)
        )
    finally:
        store.close()
    click.echo(
        f"re-published {stats.sent - stats.unroutable} dead letters and marked {marked} "
        f"replayed; {len(plan.unroutable)} still unroutable"
    )
