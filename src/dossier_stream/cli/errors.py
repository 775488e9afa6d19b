"""User-caused failures as guidance: one or two Vietnamese lines and what to do, no traceback.

:class:`GuidedGroup` runs every command; an exception that a user can cause
and fix (an unreachable broker or ClickHouse, a file that cannot be read or
written) becomes a :class:`click.ClickException` whose message names the
setting or option to change. Any other exception is a bug and keeps its
traceback. With ``--debug`` (or ``DOSSIER_LOG_LEVEL=DEBUG``) nothing is
translated: the traceback is printed as it is.
"""

from __future__ import annotations

import os
from typing import Any

import click

__all__ = ["DEBUG_KEY", "OPTIONS_KEY", "GuidedGroup", "debug_enabled", "guidance", "note_options"]


DEBUG_KEY = "dossier_stream.debug"
"""``click.Context.meta`` key set by the group's ``--debug``."""


def debug_enabled() -> bool:
    """Whether tracebacks are wanted (``--debug`` or ``DOSSIER_LOG_LEVEL=DEBUG``)."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None and ctx.meta.get(DEBUG_KEY):
        return True
    return os.environ.get("DOSSIER_LOG_LEVEL", "").strip().upper() == "DEBUG"


def _is_from(exc: BaseException, package: str) -> bool:
    return any(cls.__module__.split(".", 1)[0] == package for cls in type(exc).__mro__)


OPTIONS_KEY = "dossier_stream.options"
"""``click.Context.meta`` key: the options of the command that runs (see :func:`note_options`)."""


def note_options() -> None:
    """Remember the running command's options, so guidance names only options it has."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[OPTIONS_KEY] = {opt for p in ctx.command.params for opt in p.opts}


def _setting(env: str, option: str, options: set[str]) -> str:
    return f"{env} (hoặc {option})" if option in options else env


def guidance(exc: BaseException, options: set[str] | None = None) -> str | None:
    """The message telling the user what to do about ``exc``, or ``None`` if it is a bug.

    ``options``: the running command's options (a message names an option
    only if the command has it).
    """
    options = options or set()
    if _is_from(exc, "aiokafka") or _is_from(exc, "kafka"):
        servers = os.environ.get("DOSSIER_BOOTSTRAP_SERVERS", "localhost:9092")
        where = _setting("DOSSIER_BOOTSTRAP_SERVERS", "--bootstrap-servers", options)
        return (
            f"Không kết nối được Kafka ({servers}): {exc}.\n"
            f"Kiểm tra broker đang chạy và địa chỉ trong {where}."
        )
    if _is_from(exc, "clickhouse_connect") or _is_from(exc, "chdb"):
        where = _setting("DOSSIER_CLICKHOUSE_DSN", "--dsn", options)
        return (
            f"Không dùng được ClickHouse: {str(exc).splitlines()[0][:300]}\n"
            f"Kiểm tra {where} và máy chủ ClickHouse (hoặc thư mục chdb) đang sẵn sàng."
        )
    if isinstance(exc, OSError) and exc.filename is not None:
        what = exc.strerror or type(exc).__name__
        if isinstance(exc, FileNotFoundError):
            hint = "kiểm tra đường dẫn (thư mục chứa tệp phải có sẵn)"
        elif isinstance(exc, PermissionError):
            hint = "chọn một tệp hoặc thư mục có quyền ghi (tùy chọn --out)"
        elif isinstance(exc, IsADirectoryError):
            hint = "--out phải là một tệp, không phải thư mục"
        else:
            hint = "kiểm tra đường dẫn và quyền truy cập"
        return f"Không đọc/ghi được {exc.filename}: {what}.\nHãy {hint}."
    return None


class GuidedGroup(click.Group):
    """A group whose commands turn user-caused failures into guidance (see the module)."""

    def invoke(self, ctx: click.Context) -> Any:
        if ctx.params.get("debug"):
            ctx.meta[DEBUG_KEY] = True
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            debug = ctx.meta.get(DEBUG_KEY) or debug_enabled()
            message = None if debug else guidance(exc, ctx.meta.get(OPTIONS_KEY))
            if message is None:
                raise
            raise click.ClickException(message) from None
