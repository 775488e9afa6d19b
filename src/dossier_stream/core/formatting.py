"""Numbers the Vietnamese way, as the province prints them.

Rates: percent rounded half-up to two decimals, trailing zeros dropped,
decimal comma (``72,2%``, ``92,08%``, ``100%``, ``0%``). Counts: a dot for
thousands (``77.030``, ``6.909.896.800``). Rounding is done in integers, so
there is no binary floating-point error: ``rate_hundredths(1, 8)`` is
``1250`` exactly, and ``2/3`` gives ``66,67%``.
"""

from __future__ import annotations

from datetime import date

__all__ = [
    "format_count",
    "format_date",
    "format_rate",
    "format_rate_hundredths",
    "meets_target",
    "rate_hundredths",
    "rate_percent",
]


def rate_hundredths(numerator: int, denominator: int) -> int | None:
    """Percent × 100, rounded half-up (``87,62%`` → ``8762``); ``None`` if no denominator."""
    if denominator <= 0:
        return None
    return (numerator * 20000 + denominator) // (2 * denominator)


def rate_percent(numerator: int, denominator: int) -> float | None:
    """Percent rounded half-up to two decimals (``87.62``); ``None`` if no denominator."""
    h = rate_hundredths(numerator, denominator)
    return None if h is None else h / 100


def format_rate_hundredths(hundredths: int) -> str:
    """``8762`` → ``"87,62%"``, ``7220`` → ``"72,2%"``, ``10000`` → ``"100%"``."""
    sign = "-" if hundredths < 0 else ""
    whole, frac = divmod(abs(hundredths), 100)
    if frac == 0:
        return f"{sign}{whole}%"
    return f"{sign}{whole},{frac:02d}".rstrip("0") + "%"


def format_rate(numerator: int, denominator: int, *, empty: str = "0%") -> str:
    """The printed rate; ``empty`` (official tables print ``0%``) when there is no denominator."""
    h = rate_hundredths(numerator, denominator)
    return empty if h is None else format_rate_hundredths(h)


def format_count(value: int) -> str:
    """``77030`` → ``"77.030"``; ``6909896800`` → ``"6.909.896.800"``."""
    return f"{value:,}".replace(",", ".")


def format_date(day: date) -> str:
    """``date(2024, 9, 15)`` → ``"15/09/2024"``."""
    return day.strftime("%d/%m/%Y")


def meets_target(numerator: int, denominator: int, target: str | None) -> bool | None:
    """Whether the exact rate meets a target like ``">=60"`` or ``"=100"``.

    The comparison uses the exact fraction, not the rounded rate. Returns
    ``None`` when there is no target; ``False`` when there is no denominator.
    """
    if target is None:
        return None
    if denominator <= 0:
        return False
    if target.startswith(">="):
        return numerator * 100 >= int(target[2:]) * denominator
    if target.startswith("="):
        return numerator * 100 == int(target[1:]) * denominator
    raise ValueError(f"unknown target {target!r}: use '>=N' or '=N'")
