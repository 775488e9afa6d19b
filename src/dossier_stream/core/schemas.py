"""JSON Schema (draft 2020-12) of every event type, generated from the models.

``dossier-stream schemas export`` writes ``schemas/<event_type>.schema.json``
for each type and ``schemas/event.schema.json`` (any event, discriminated by
``event_type``); ``--check`` compares instead of writing and fails when the
checked-in files have drifted from the models. Upstream teams validate their
producers against these files; ``event-contract.md`` stays the authority.

Two contract rules pydantic cannot express by itself are added: timestamps
must carry an offset (a ``pattern``), and ``dossier.received`` needs
``due_at`` or ``processing_working_days`` (an ``anyOf``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from dossier_stream.core.events import EVENT_TYPES, event_adapter, event_models

__all__ = ["check_schemas", "render_schemas", "write_schemas"]

DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"
BASE_ID: Final = "urn:dossier-stream:schemas:"
OFFSET_PATTERN: Final = r"(Z|z|[+-]\d{2}:\d{2})$"


def _tighten(node: Any) -> None:
    """Add the offset pattern to every date-time string, recursively."""
    if isinstance(node, dict):
        if node.get("format") == "date-time" and node.get("type") == "string":
            node["pattern"] = OFFSET_PATTERN
        for value in node.values():
            _tighten(value)
    elif isinstance(node, list):
        for value in node:
            _tighten(value)


def _finish(schema: dict[str, Any], name: str, title: str) -> dict[str, Any]:
    _tighten(schema)
    for definition in [schema, *schema.get("$defs", {}).values()]:
        props = definition.get("properties", {})
        if "due_at" in props and "processing_working_days" in props:
            definition["anyOf"] = [
                {"required": ["due_at"], "properties": {"due_at": {"type": "string"}}},
                {
                    "required": ["processing_working_days"],
                    "properties": {"processing_working_days": {"type": "integer"}},
                },
            ]
    return {"$schema": DRAFT, "$id": BASE_ID + name, **schema, "title": title}


def _dump(schema: dict[str, Any]) -> str:
    return json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def render_schemas() -> dict[str, str]:
    """File name → file content, for every schema file."""
    files: dict[str, str] = {}
    for event_type, model in zip(EVENT_TYPES, event_models(), strict=True):
        name = f"{event_type}.schema.json"
        schema = model.model_json_schema(mode="validation")
        files[name] = _dump(_finish(schema, name, event_type))
    union = event_adapter().json_schema(mode="validation")
    files["event.schema.json"] = _dump(_finish(union, "event.schema.json", "dossier-stream event"))
    return files


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema file into ``directory``; return the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in render_schemas().items():
        path = directory / name
        path.write_text(content, encoding="utf-8")
        written.append(path)
    return written


def check_schemas(directory: Path) -> list[str]:
    """Problems with the checked-in schema files (empty when up to date)."""
    problems = []
    expected = render_schemas()
    for name, content in expected.items():
        path = directory / name
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != content:
            problems.append(f"{path}: differs from the event models")
    problems.extend(
        f"{path}: not generated from any event model (stale file)"
        for path in sorted(directory.glob("*.schema.json"))
        if path.name not in expected
    )
    return problems
