"""Build the simulator's calibration for Hải Phòng, tháng 10/2024, from the published report.

Writes ``src/dossier_stream/data/calibration/haiphong-2024-10.csv``: per unit,
the counts the simulated period 15/09/2024-14/10/2024 must produce. Inputs are
the reference tables of seed 000 (vendored in ``tests/data/haiphong-2024-10/``,
identical to ``../shared/reference/haiphong-2024-10/``) and the figures printed
in its prose (constants below). The output is deterministic and committed, so
the package never reads the seed at run time.

What the seed fixes and how the counts are chosen:

* **Digitization appendix** (every unit): completed in the period, with
  component files, with a result file, with both: taken as printed.
* **Online rates** (Bảng 1: departments; Bảng 2: districts; Bảng 3: the
  communes of each district together) and the level totals of section 1
  (received 41.818 / 4.853 / 30.359, online 38.507 / 3.596 / 13.512): the seed
  gives only rates per unit, so counts are searched that print exactly as
  those rates and add up to the totals. Starting guesses: each unit's
  completed count from the appendix, scaled to the level total and, for
  districts and communes, tilted towards the lower rates just enough that
  the level's online total holds (``prior * exp(b * rate)``): the volume the
  published rates need is shared by every unit instead of being dumped on
  one "pivot" unit (which gave the communes of Đồ Sơn 14.726 dossiers
  received for 1.494 completed, and 2.702 of them open past due in the demo).
* Bảng 1 prints equal rates for every department, so departments receive only
  dossiers of online services. The Bảng 1 rates and the department totals
  cannot both hold over the 18 listed departments alone: even with all
  volume at Sở Tư pháp (91,48%), at most ~2.950 of the 3.311 offline dossiers
  fit. The one department missing from Bảng 1, the city inspectorate (Thanh
  tra thành phố, 40 completed in the appendix), therefore receives the rest:
  dossiers of procedures with no online service, all at the counter. Having
  no online-service dossiers is also why Bảng 1 leaves it out.
  The same arithmetic leaves Sở Tư pháp (the lowest rate) ~18.500 dossiers
  received for 2.291 completed: the department level receives twice what it
  completes (41.818 / 20.305), and the rates leave nowhere else to put it.
* Every commune receives at least one dossier of an online service, so every
  commune counts among the units that offer online services (the "x/217" of
  sections 1.2 and 1.3).
* **Online payments** (section 1.2): 4.904 / 1.104 / 9.244 transactions in
  the period at 11 / 13 / 130 units of the department / district / commune
  level: given to the units with the most dossiers, in proportion to their
  dossiers. The 280 tax transactions of the 14 tax sub-departments are not
  units of this registry and are left out; so is the money total, which the
  seed gives only with them included.
* **Overdue**: the seed's prose names Sở Tài nguyên và Môi trường (992),
  Sở Kế hoạch và Đầu tư (165) and UBND huyện An Lão (75) as the units with the
  most overdue dossiers; they get those counts among their completions. The
  prose says "some units" and the city's on-time rate is high in the 90s, so
  only a few other units (``OTHER_LATE_UNITS``, drawn with a fixed seed in
  proportion to their completions, among those completing 100 or more) get
  1-4 % of their completions overdue, fewer than An Lão's 75; every other
  unit completes everything on time.

Usage::

    .venv/bin/python tools/calibrate_haiphong_2024_10.py          # write the file
    .venv/bin/python tools/calibrate_haiphong_2024_10.py --check  # exit 1 if stale
"""

from __future__ import annotations

import csv
import io
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from dossier_stream.core.formatting import format_rate
from dossier_stream.core.registry import Level, UnitRegistry

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "data" / "haiphong-2024-10"
OUTPUT = REPO / "src" / "dossier_stream" / "data" / "calibration" / "haiphong-2024-10.csv"
ON = date(2024, 10, 1)
LEVELS: tuple[Level, ...] = ("department", "district", "commune")
RECEIVED = {"department": 41_818, "district": 4_853, "commune": 30_359}
ONLINE = {"department": 38_507, "district": 3_596, "commune": 13_512}
PAYMENTS = {"department": (4_904, 11), "district": (1_104, 13), "commune": (9_244, 130)}
OVERDUE = {
    "Sở Tài nguyên và Môi trường": 992,
    "Sở Kế hoạch và Đầu tư": 165,
    "UBND huyện An Lão": 75,
}
OTHER_LATE_UNITS = 9
"""Units with overdue completions besides the three the seed names."""
NOT_IN_TABLE_1 = "Thanh tra thành phố"
COLUMNS = (
    "code",
    "level",
    "received",
    "received_online",
    "received_oos",
    "received_oos_online",
    "completed",
    "completed_component",
    "completed_result",
    "completed_both",
    "completed_overdue",
    "payment_tx_online",
)


@dataclass
class Row:
    code: str
    level: str
    received: int = 0
    online: int = 0
    oos: int = 0
    oos_online: int = 0
    completed: int = 0
    component: int = 0
    result: int = 0
    both: int = 0
    overdue: int = 0
    tx: int = 0


def numerators(text: str, den: int) -> list[int]:
    """Numerators that print as ``text`` over ``den`` (possibly none)."""
    if den <= 0:
        return []
    value = float(text.rstrip("%").replace(",", ".")) / 100
    mid = round(value * den)
    return [n for n in range(max(0, mid - 2), min(den, mid + 2) + 1) if format_rate(n, den) == text]


@dataclass
class Target:
    """A row of Bảng 1-3: one unit (or the communes of one district)."""

    key: str
    rate_oos: str
    rate_all: str
    prior: int
    min_oos: int = 1
    min_r: int = 0

    def __post_init__(self) -> None:
        """The fewest received dossiers that print both rates (an upper rate needs volume)."""
        n = self.min_oos
        while self.prior > 0 and not any(
            _split(self, n, o, 0.5) for o in numerators(self.rate_all, n)
        ):
            n += 1
        self.min_r = n


def _rate(text: str) -> float:
    return float(text.rstrip("%").replace(",", ".")) / 100


def tilt(targets: Sequence[Target], total_r: int, total_o: int) -> dict[str, float]:
    """Volumes ``prior * exp(b * rate)`` summing to ``total_r`` with ``total_o`` online.

    ``b`` (found by bisection: the online share grows with it) is the
    smallest exponential tilt of the priors towards the lower or the higher
    rates that makes the level's online share hold.
    """
    target = total_o / total_r

    def weights(b: float) -> list[float]:
        return [t.prior * math.exp(b * _rate(t.rate_all)) for t in targets]

    def share(b: float) -> float:
        w = weights(b)
        return sum(x * _rate(t.rate_all) for x, t in zip(w, targets, strict=True)) / sum(w)

    lo, hi = -60.0, 60.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if share(mid) < target else (lo, mid)
    w = weights(lo)
    scale = total_r / sum(w)
    return {t.key: x * scale for x, t in zip(w, targets, strict=True)}


def solve_totals(
    targets: Sequence[Target],
    total_r: int,
    total_o: int,
    rng: random.Random,
    *,
    tilted: bool = False,
) -> dict[str, tuple[int, int]]:
    """Received/online per target printing ``rate_all`` and summing to the totals.

    Every unit but two starts at its prior, scaled (``tilted``: at its
    volume from :func:`tilt`); the unit with the lowest
    rate and the largest unit with the highest rate ("pivots") take what is
    left so that both totals hold, then a small search around them (moving
    one other unit by one dossier when needed) makes every rate print exactly.
    """
    live = [t for t in targets if t.prior > 0]
    lo = min(live, key=lambda t: (_rate(t.rate_all), -t.prior))
    top = max(_rate(t.rate_all) for t in live)
    hi = max((t for t in live if _rate(t.rate_all) == top), key=lambda t: t.prior)
    rest = [t for t in live if t not in (lo, hi)]
    scale = total_r / sum(t.prior for t in live)
    start = tilt(live, total_r, total_o) if tilted else {t.key: t.prior * scale for t in live}
    shrink = 1.0
    for _attempt in range(60):
        r: dict[str, int] = {}
        o: dict[str, int] = {}
        for t in rest:
            n = max(t.min_r, round(start[t.key] * shrink))
            while not numerators(t.rate_all, n):
                n += 1
            r[t.key], o[t.key] = n, numerators(t.rate_all, n)[0]
        left_r, left_o = total_r - sum(r.values()), total_o - sum(o.values())
        p_lo, p_hi = _rate(lo.rate_all), _rate(hi.rate_all)
        r_lo = round((left_o - p_hi * left_r) / (p_lo - p_hi))
        if r_lo >= lo.min_r and left_r - r_lo >= hi.min_r:
            found = _pivot_search(lo, hi, r_lo, left_r, left_o, rest, r, o, rng)
            if found is not None:
                return found
        shrink *= 0.9
    raise SystemExit(f"no solution for totals {total_r}/{total_o}")


def _pivot_search(
    lo: Target,
    hi: Target,
    r_lo: int,
    left_r: int,
    left_o: int,
    rest: Sequence[Target],
    r: dict[str, int],
    o: dict[str, int],
    rng: random.Random,
) -> dict[str, tuple[int, int]] | None:
    for _nudge in range(200):
        for d in sorted(range(-40, 41), key=abs):
            a = r_lo + d
            b = left_r - a
            if a < lo.min_r or b < hi.min_r:
                continue
            for oa in numerators(lo.rate_all, a):
                ob = left_o - oa
                if ob in numerators(hi.rate_all, b):
                    out = {k: (r[k], o[k]) for k in r}
                    out[lo.key], out[hi.key] = (a, oa), (b, ob)
                    return out
        if not rest:
            return None
        t = rng.choice(list(rest))  # nudge one other unit by a dossier
        n = r[t.key] + rng.choice((-1, 1))
        if n >= t.min_r and numerators(t.rate_all, n):
            left_r += r[t.key] - n
            new_o = numerators(t.rate_all, n)[0]
            left_o += o[t.key] - new_o
            r[t.key], o[t.key] = n, new_o
    return None


def split_oos(t: Target, received: int, online: int, share: float) -> tuple[int, int]:
    """Like :func:`_split`, failing with a message when there is no split."""
    found = _split(t, received, online, share)
    if found is None:
        raise SystemExit(f"{t.key}: no online-service split for {received}/{online}")
    return found


def _split(t: Target, received: int, online: int, share: float) -> tuple[int, int] | None:
    """Online-service dossiers and their online ones, printing ``rate_oos``.

    Searches outward from ``share`` of the received dossiers for a count whose
    online numerator fits: online-service online <= online, and the other
    online dossiers <= the other dossiers.
    """
    if t.rate_oos == t.rate_all:
        return received, online
    start = max(t.min_oos, round(received * share))
    for delta in range(received + 1):
        for ro in (start - delta, start + delta):
            if not t.min_oos <= ro <= received:
                continue
            for oo in numerators(t.rate_oos, ro):
                if oo <= online and online - oo <= received - ro:
                    return ro, oo
    return None


def deal(total: int, weights: Sequence[float], floor: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to ``weights`` (largest remainder), each >= ``floor``."""
    base = list(floor)
    rest = total - sum(base)
    if rest < 0:
        raise SystemExit(f"cannot deal {total} with floors summing to {sum(base)}")
    wsum = sum(weights) or 1.0
    exact = [rest * w / wsum for w in weights]
    out = [b + int(e) for b, e in zip(base, exact, strict=True)]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - int(exact[i])), i))
    for i in order[: total - sum(out)]:
        out[i] += 1
    return out


def load(registry: UnitRegistry) -> tuple[dict[str, Row], dict[str, list[dict[str, str]]]]:
    rows: dict[str, Row] = {}
    with (REFERENCE / "digitization.csv").open(encoding="utf-8") as fh:
        digit = list(csv.DictReader(fh))
    for rec in digit:
        parent = None
        if rec["level"] == "commune":
            parent = registry.resolve(rec["district_as_printed"], on=ON, level="district").code
        level = next(lvl for lvl in LEVELS if lvl == rec["level"])
        unit = registry.resolve(rec["unit_name"], on=ON, level=level, parent_code=parent)
        rows[unit.code] = Row(
            unit.code,
            unit.level,
            completed=int(rec["resolved_total"]),
            component=int(rec["with_component_files"]),
            result=int(rec["with_result_file"]),
            both=int(rec["with_both"]),
            overdue=OVERDUE.get(rec["unit_name"], -1),
        )
    with (REFERENCE / "online-rates.csv").open(encoding="utf-8") as fh:
        rates: dict[str, list[dict[str, str]]] = {}
        for rec in csv.DictReader(fh):
            rates.setdefault(rec["table_level"], []).append(rec)
    return rows, rates


def calibrate() -> str:
    registry = UnitRegistry.load_default()
    rng = random.Random(20241014)
    rows, rates = load(registry)
    district_of = {u.code: u.parent_code for u in registry.units_in(ON, ON, "commune")}

    # Departments (Bảng 1) and the inspectorate.
    targets = []
    for rec in rates["department"]:
        code = registry.resolve(rec["unit_name"], on=ON, level="department").code
        targets.append(
            Target(
                code,
                rec["online_rate_of_online_service_dossiers"],
                rec["online_rate_of_all_dossiers"],
                rows[code].completed,
            )
        )
    inspectorate = registry.resolve(NOT_IN_TABLE_1, on=ON, level="department").code
    extra = 1_500
    dept = solve_totals(targets, RECEIVED["department"] - extra, ONLINE["department"], rng)
    for t in targets:
        row = rows[t.key]
        row.received, row.online = dept[t.key]
        row.oos, row.oos_online = row.received, row.online
    rows[inspectorate].received = RECEIVED["department"] - sum(v[0] for v in dept.values())

    # Districts (Bảng 2).
    targets = []
    for rec in rates["district"]:
        code = registry.resolve(rec["unit_name"], on=ON, level="district").code
        targets.append(
            Target(
                code,
                rec["online_rate_of_online_service_dossiers"],
                rec["online_rate_of_all_dossiers"],
                rows[code].completed,
            )
        )
    dist = solve_totals(targets, RECEIVED["district"], ONLINE["district"], rng, tilted=True)
    for t in targets:
        row = rows[t.key]
        row.received, row.online = dist[t.key]
        row.oos, row.oos_online = split_oos(t, row.received, row.online, rng.uniform(0.55, 0.9))

    # Communes (Bảng 3: per district), then dealt to the communes of each district.
    targets = []
    communes: dict[str, list[str]] = {}
    for code, parent in district_of.items():
        communes.setdefault(parent or "", []).append(code)
    for rec in rates["commune_by_district"]:
        district = registry.resolve(rec["unit_name"], on=ON, level="district").code
        members = communes.get(district, [])
        prior = sum(rows[c].completed for c in members) if members else 0
        targets.append(
            Target(
                district,
                rec["online_rate_of_online_service_dossiers"],
                rec["online_rate_of_all_dossiers"],
                prior,
                min_oos=max(1, len(members)),
            )
        )
    live = [t for t in targets if t.prior > 0]
    agg = solve_totals(live, RECEIVED["commune"], ONLINE["commune"], rng, tilted=True)
    for t in live:
        received, online = agg[t.key]
        oos, oos_online = split_oos(t, received, online, rng.uniform(0.5, 0.85))
        _deal_communes(rows, communes[t.key], received, online, oos, oos_online, rng)

    _payments(rows)
    _overdue(rows, rng)
    return _csv(rows, registry)


def _overdue(rows: dict[str, Row], rng: random.Random) -> None:
    """A few more units complete 1-4 % late (fewer than the named ones); the rest none."""
    cap = min(OVERDUE.values()) - 1
    pool = sorted((r for r in rows.values() if r.overdue < 0 and r.completed >= 100),
                  key=lambda r: r.code)  # fmt: skip
    late: set[str] = set()
    while len(late) < OTHER_LATE_UNITS:
        late.add(rng.choices(pool, weights=[float(r.completed) for r in pool])[0].code)
    for row in rows.values():
        if row.overdue < 0:
            share = rng.uniform(0.01, 0.04) if row.code in late else 0.0
            row.overdue = min(cap, max(1, round(row.completed * share))) if share else 0


def _deal_communes(
    rows: dict[str, Row],
    members: list[str],
    received: int,
    online: int,
    oos: int,
    oos_online: int,
    rng: random.Random,
) -> None:
    """Deal a district's commune dossiers by type, every commune >= 1 online-service dossier."""
    kinds = (
        [(True, True)] * oos_online
        + [(True, False)] * (oos - oos_online)
        + [(False, True)] * (online - oos_online)
        + [(False, False)] * (received - oos - online + oos_online)
    )
    oos_kinds = [k for k in kinds if k[0]]
    rest = [k for k in kinds if not k[0]]
    rng.shuffle(oos_kinds)
    first, others = oos_kinds[: len(members)], oos_kinds[len(members) :] + rest
    rng.shuffle(others)
    median = sorted(rows[c].completed for c in members)[len(members) // 2] or 1
    weights = [float(rows[c].completed or median // 5 or 1) for c in members]
    sizes = deal(len(others), weights, [0] * len(members))
    pos = 0
    for code, kind, size in zip(members, first, sizes, strict=True):
        mine = [kind, *others[pos : pos + size]]
        pos += size
        row = rows[code]
        row.received = len(mine)
        row.online = sum(1 for k in mine if k[1])
        row.oos = sum(1 for k in mine if k[0])
        row.oos_online = sum(1 for k in mine if k[0] and k[1])


def _payments(rows: dict[str, Row]) -> None:
    """Online transactions: the units with most dossiers, in proportion to them."""
    for level in LEVELS:
        total, units = PAYMENTS[level]
        ranked = sorted(
            (r for r in rows.values() if r.level == level and r.oos > 0),
            key=lambda r: (-r.received, r.code),
        )[:units]
        counts = deal(total, [float(r.received) for r in ranked], [1] * len(ranked))
        for row, n in zip(ranked, counts, strict=True):
            if n > row.received:
                raise SystemExit(f"{row.code}: {n} online transactions for {row.received} dossiers")
            row.tx = n


def _csv(rows: dict[str, Row], registry: UnitRegistry) -> str:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(COLUMNS)
    for unit in registry.units_in(ON, ON):
        r = rows[unit.code]
        out.writerow(
            (
                r.code,
                r.level,
                r.received,
                r.online,
                r.oos,
                r.oos_online,
                r.completed,
                r.component,
                r.result,
                r.both,
                r.overdue,
                r.tx,
            )
        )
    return buf.getvalue()


def main(argv: list[str]) -> int:
    text = calibrate()
    if "--check" in argv:
        if not OUTPUT.exists() or OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT} is stale: run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
