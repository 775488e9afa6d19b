"""The monthly report as an administrative document (Nghị định 30/2020/NĐ-CP).

* the form's rules on a simulated month (no heading twice, one definition of
  the units counted in ``x/y đơn vị``, Bảng 4 only with units to show, counts
  printed one way, the province's document settings from a file);
* the month-on-month sentences on a two-month store (chdb), read back by the
  real ``report`` command, against figures computed here from the simulator's
  ground truth;
* the docx and xlsx rendered by LibreOffice to PDF and read back with
  ``pdfinfo`` and ``pdftotext``: A4, landscape appendices, the header block,
  ``Kính gửi``, ``Nơi nhận``, the signatory, page numbers from page 2, no
  heading printed twice, no cell text cut off.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import orjson
import pytest

from dossier_stream.core.engine import Engine
from dossier_stream.core.periods import Period, monthly_report
from dossier_stream.core.registry import UnitRegistry
from dossier_stream.core.topics import load_catalog
from dossier_stream.core.workdays import WorkCalendar
from dossier_stream.reports.document import Appendix, Document, Heading, cell_text
from dossier_stream.reports.monthly import PART_THREE, monthly
from dossier_stream.reports.profile import load_profile
from dossier_stream.reports.render import render_document_text
from dossier_stream.reports.view import ReportView
from dossier_stream.reports.writers import render_markdown, write_docx, write_xlsx
from dossier_stream.sim.simulate import SimConfig, Simulation, simulate

SEPTEMBER, OCTOBER = monthly_report(2024, 9), monthly_report(2024, 10)
Report = dict[str, Any]


def _simulation(
    period: Period, registry: UnitRegistry, calendar: WorkCalendar, seed: int, dossiers: int
) -> Simulation:
    config = SimConfig(
        period, seed=seed, dossiers=dossiers, feedback=20, duplicate_rate=0, invalid_rate=0
    )
    return simulate(config, registry, calendar)


@pytest.fixture(scope="module")
def months(registry: UnitRegistry, calendar: WorkCalendar) -> list[Simulation]:
    return [
        _simulation(SEPTEMBER, registry, calendar, seed=11, dossiers=1_800),
        _simulation(OCTOBER, registry, calendar, seed=12, dossiers=2_400),
    ]


@pytest.fixture(scope="module")
def reports(
    months: list[Simulation], registry: UnitRegistry, calendar: WorkCalendar
) -> tuple[Report, Report]:
    """(September, October) folded in memory."""
    engine = Engine(registry, calendar)
    for sim in months:
        for raw in sim.lines:
            engine.process(raw)
    return engine.report(SEPTEMBER), engine.report(OCTOBER)


@pytest.fixture(scope="module")
def doc(reports: tuple[Report, Report], registry: UnitRegistry) -> Document:
    september, october = reports
    return monthly(october, registry, previous=september)


def _count(n: int) -> str:
    return f"{n:,}".replace(",", ".")


# --- the form -----------------------------------------------------------------------------


def test_no_heading_is_printed_twice(doc: Document) -> None:
    text, md = render_document_text(doc), render_markdown(doc)
    lines = [line for line in text.splitlines() if line.strip()]
    headings = [b.text for b in doc.blocks if isinstance(b, Heading)]
    headings += [t for b in doc.blocks if isinstance(b, Appendix) for t in (b.label, b.title)]
    headings += [t.title for t in doc.tables() if t.captioned]
    assert len(headings) == len(set(headings))
    for heading in headings:
        assert lines.count(heading) == 1, heading
        assert md.count(heading) == 1, heading
    assert lines.count("1. Sở, ban, ngành:") == 1 and lines.count("- Quận Đồ Sơn") == 1
    assert "Quận Đồ Sơn" not in lines and sum(line.startswith("Phụ lục 2") for line in lines) == 1


def test_front_and_closing_come_from_the_profile(doc: Document) -> None:
    text = render_document_text(doc)
    for line in ("ỦY BAN NHÂN DÂN THÀNH PHỐ HẢI PHÒNG", "SỞ THÔNG TIN VÀ TRUYỀN THÔNG",
                 "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM", "Độc lập - Tự do - Hạnh phúc",
                 "Số:      /BC-STTTT", "Hải Phòng, ngày      tháng      năm 2024", "BÁO CÁO",
                 "Kính gửi: Ủy ban nhân dân thành phố.", "Nơi nhận:", "- Như trên;",
                 "- Lưu: VT, CNTT.", "GIÁM ĐỐC", "Phạm Văn Tuấn",
                 "2. Công tác vận hành hệ thống:", "3. Kiến nghị:",
                 "Sở Thông tin và Truyền thông kính báo cáo Ủy ban nhân dân thành phố./.",
                 "(Kèm theo Báo cáo số:      /BC-STTTT ngày    /    /2024 của Sở Thông tin và "
                 "Truyền thông)"):  # fmt: skip
        assert f"\n{line}\n" in "\n" + text, line


def test_another_provinces_profile(
    tmp_path: Path, reports: tuple[Report, Report], registry: UnitRegistry
) -> None:
    bundled = Path(__file__).parents[2] / "src/dossier_stream/data/document_haiphong.yaml"
    text = bundled.read_text(encoding="utf-8")
    text = text.replace("Sở Thông tin và Truyền thông", "Sở Khoa học và Công nghệ")
    text = text.replace("BC-STTTT", "BC-SKHCN").replace("Phạm Văn Tuấn", "Nguyễn Văn A")
    text = text.replace(
        "  authority:\n    - GIÁM ĐỐC", "  authority:\n    - KT. GIÁM ĐỐC\n    - PHÓ GIÁM ĐỐC"
    )
    (tmp_path / "other.yaml").write_text(text, encoding="utf-8")
    other = monthly(reports[1], registry, profile=load_profile(tmp_path / "other.yaml"))
    out = render_document_text(other)
    assert "\nSỞ KHOA HỌC VÀ CÔNG NGHỆ\n" in out and "/BC-SKHCN" in out
    assert "\nKT. GIÁM ĐỐC\nPHÓ GIÁM ĐỐC\n\nNguyễn Văn A\n" in out
    (tmp_path / "bad.yaml").write_text(text.replace("symbol:", "symbl:"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad.yaml: symbol: Field required"):
        load_profile(tmp_path / "bad.yaml")


def test_every_x_of_y_counts_among_the_same_units(doc: Document, reports: tuple[Report, Report],
                                                  registry: UnitRegistry) -> None:  # fmt: skip
    view = ReportView(reports[1], registry)
    text = render_document_text(doc)
    for level, words in (("department", "cấp sở, ban ngành có"), ("commune", "cấp phường, xã có")):
        total = len(view.counted(level))
        payments = re.search(rf"{words} (\d+)/(\d+) đơn vị", text)
        assert payments and int(payments[2]) == total
    sections = {"Cấp sở": "department", "Cấp huyện": "district", "Cấp xã": "commune"}
    for start, level in sections.items():  # digitization (1.3) and e-signed results (1.4)
        found = re.findall(rf"^- {start} có [\d.]+ hồ sơ của (\d+)/(\d+) đơn vị", text, re.M)
        assert [int(y) for _x, y in found] == [len(view.counted(level))] * 2
    missing = re.search(r"Các đơn vị chưa thực hiện: (\d+)/(\d+) sở, ban ngành", text)
    assert missing and int(missing[2]) == len(view.counted("department"))


def test_bang_4_lists_only_units_with_something_to_show(doc: Document) -> None:
    table = next(t for t in doc.tables() if t.key == "qua-han")
    assert table.rows
    for row in table.rows:
        late, open_past_due = (c.value for c in (row[4], row[6]))  # type: ignore[union-attr]
        assert late + open_past_due > 0


def test_counts_are_printed_one_way(doc: Document) -> None:
    text = render_document_text(doc)
    bare = {m for m in re.findall(r"(?<![\d.,/])\d{4,}(?![\d.,/])", text) if m != "2024"}
    assert not bare, f"counts without a thousands dot: {sorted(bare)[:5]}"
    assert re.search(r"\(0\d kết quả\)", text)  # under ten: two digits, as seed 001


def test_part_three_names_the_units_with_most_overdue_dossiers(
    doc: Document, reports: tuple[Report, Report], registry: UnitRegistry
) -> None:
    october = reports[1]
    opd = october["open_past_due"]
    late = {
        code: fig["numerator"] + opd.get(code, 0)
        for code, fig in october["indicators"]["overdue"]["units"].items()
    }
    top = sorted(late, key=lambda c: (-late[c], registry.get(c).name))[0]
    text = render_document_text(doc)
    assert (
        f"như {registry.get(top).name} với tổng số hồ sơ quá hạn là {_count(late[top])} hồ sơ"
        in text
    )
    assert PART_THREE[0].__name__ == "part_three_index"  # issue 16's 766 paragraph goes there


# --- month on month, from a store -----------------------------------------------------------


def _truth(months: list[Simulation], period: Period, counter: str) -> int:
    return sum(
        n for sim in months for (_u, day, c), n in sim.truth.items()
        if c == counter and period.start <= day <= period.end
    )  # fmt: skip


def _change(now: int, before: int, unit: str) -> str:
    diff = now - before
    if diff == 0:
        return "không thay đổi"
    return f"{'tăng' if diff > 0 else 'giảm'} {_count(abs(diff))} {unit}"


def _store(path: Path, months: list[Simulation], registry: UnitRegistry,
           calendar: WorkCalendar) -> None:  # fmt: skip
    from dossier_stream.store import BatchingSink, ClickHouseStore, connect
    from dossier_stream.stream.processor import Message, Processor

    store = ClickHouseStore(connect(f"chdb://{path}"))
    try:
        store.migrate()
        sink = BatchingSink(store, max_rows=100_000, interval_s=3600)
        catalog = load_catalog()
        proc = Processor(registry, calendar, catalog, sink, store)
        offsets: dict[str, int] = {}
        batch = []
        for sim in months:
            for raw in sim.lines:
                topic = catalog.topic_for(orjson.loads(raw)["event_type"])
                offsets[topic] = offsets.get(topic, -1) + 1
                batch.append(Message(topic, 0, offsets[topic], raw))
        for start in range(0, len(batch), 2_000):
            proc.handle(batch[start : start + 2_000])
        sink.flush()
    finally:
        store.close()


@pytest.mark.integration
def test_month_on_month_sentences_from_a_two_month_store(
    tmp_path: Path, months: list[Simulation], registry: UnitRegistry, calendar: WorkCalendar
) -> None:
    _store(tmp_path / "ch", months, registry, calendar)
    env = {**os.environ, "DOSSIER_CLICKHOUSE_DSN": f"chdb://{tmp_path / 'ch'}",
           "DOSSIER_LOG_LEVEL": "WARNING", "DOSSIER_DATA_DIR": str(tmp_path / "data")}  # fmt: skip

    def report(fmt: str) -> str:
        run = subprocess.run(
            [sys.executable, "-m", "dossier_stream", "report", "--period", "2024-10",
             "--format", fmt],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600, check=False,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-2000:]
        return run.stdout

    text = " ".join(report("text").split())
    figures = {
        key: (_truth(months, OCTOBER, counter), _truth(months, SEPTEMBER, counter))
        for key, counter in (("received", "received"), ("online", "received_online"),
                             ("tx", "payment_tx_online"), ("amount", "payment_amount_online"),
                             ("on_time", "completed_on_time"))
    }  # fmt: skip
    assert all(before > 0 for _now, before in figures.values()), figures
    assert figures["received"][0] != figures["received"][1]
    (rec, rec0), (onl, onl0) = figures["received"], figures["online"]
    assert (
        f"tổng số hồ sơ tiếp nhận {_change(rec, rec0, 'hồ sơ')} so với tháng 09/2024 "
        f"({_count(rec0)} hồ sơ); số hồ sơ trực tuyến {_change(onl, onl0, 'hồ sơ')} so với "
        f"tháng 09/2024 ({_count(onl0)} hồ sơ)."
    ) in text
    (tx, tx0), (amount, amount0) = figures["tx"], figures["amount"]
    assert (
        f"{_change(tx, tx0, 'giao dịch')} và {_change(amount, amount0, 'đồng')} so với tháng "
        f"09/2024 là "
    ) in text
    assert (
        f"{_count(tx0)} giao dịch thanh toán trực tuyến với tổng số tiền {_count(amount0)} đồng."
        in text
    )
    on_time, on_time0 = figures["on_time"]
    assert (
        f"số hồ sơ giải quyết trước hạn, đúng hạn {_change(on_time, on_time0, 'hồ sơ')} so với "
        "tháng 09/2024"
    ) in text
    previous = orjson.loads(report("json"))["previous_period"]
    assert previous["label"] == "tháng 09/2024"
    assert previous["change"]["received"] == rec - rec0
    assert previous["change"]["payment_amount_vnd"] == amount - amount0
    assert previous["figures"]["on_time"] == on_time0


# --- LibreOffice --------------------------------------------------------------------------


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        pytest.fail(f"{name} is missing: run ./scripts/setup (scripts/debian-packages.txt)")
    return found


def _pages(pdf: Path) -> list[str]:
    """The text of each page (``pdftotext -layout``), NFC."""
    info = subprocess.run([_tool("pdfinfo"), str(pdf)], capture_output=True, text=True,
                          check=True, timeout=60).stdout  # fmt: skip
    count = int(re.search(r"^Pages:\s+(\d+)", info, re.M)[1])  # type: ignore[index]
    return [
        unicodedata.normalize("NFC", subprocess.run(
            [_tool("pdftotext"), "-layout", "-f", str(i), "-l", str(i), str(pdf), "-"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout)
        for i in range(1, count + 1)
    ]  # fmt: skip


def _sizes(pdf: Path) -> list[tuple[float, float]]:
    """Each page's size in points (``pdfinfo -f 1 -l N``)."""
    command = [_tool("pdfinfo"), "-f", "1", "-l", "9999", str(pdf)]
    info = subprocess.run(command, capture_output=True, text=True, check=True, timeout=60).stdout
    return [(float(w), float(h)) for w, h in re.findall(r"size:\s+([\d.]+) x ([\d.]+) pts", info)]


def _a4(size: tuple[float, float]) -> str:
    short, long = sorted(size)
    assert abs(short - 595.3) < 1.5 and abs(long - 841.9) < 1.5, size
    return "landscape" if size[0] > size[1] else "portrait"


@pytest.fixture(scope="module")
def pdfs(doc: Document, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    where = tmp_path_factory.mktemp("lo")
    write_docx(doc, where / "report.docx")
    write_xlsx(doc, where / "book.xlsx")
    env = {**os.environ, "LC_ALL": "vi_VN.UTF-8", "LANG": "vi_VN.UTF-8"}
    office = shutil.which("soffice") or _tool("libreoffice")
    run = subprocess.run(
        [office, f"-env:UserInstallation={(where / 'profile').as_uri()}", "--headless",
         "--convert-to", "pdf", "--outdir", str(where), str(where / "report.docx"),
         str(where / "book.xlsx")],
        capture_output=True, text=True, timeout=600, env=env, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return {"docx": where / "report.pdf", "xlsx": where / "book.pdf"}


def _words(doc: Document) -> set[str]:
    """Every word of every table cell and header, as a cut-off check's reference."""
    out: set[str] = set()
    for table in doc.tables():
        texts = [*table.headers, *(b.text for b in table.bands)]
        texts += [cell_text(c) for row in table.rows for c in row]
        out |= {unicodedata.normalize("NFC", w) for t in texts for w in t.split()}
    return out


@pytest.mark.integration
def test_docx_pdf_is_an_administrative_document(doc: Document, pdfs: dict[str, Path]) -> None:
    pages, sizes = _pages(pdfs["docx"]), _sizes(pdfs["docx"])
    assert len(pages) == len(sizes) > 3
    orientation = [_a4(size) for size in sizes]
    first = " ".join(pages[0].split())
    for text in ("ỦY BAN NHÂN DÂN", "SỞ THÔNG TIN VÀ", "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
                 "Độc lập - Tự do - Hạnh phúc", "/BC-STTTT", "Hải Phòng, ngày", "năm 2024",
                 "BÁO CÁO", "Kính gửi: Ủy ban nhân dân thành phố."):  # fmt: skip
        assert text in first, text
    everything = "\n".join(pages)
    flat = " ".join(everything.split())
    assert "Nơi nhận:" in flat and "GIÁM ĐỐC" in flat and "Phạm Văn Tuấn" in flat
    # page numbers: none on page 1, then the page's number alone on its first line
    assert pages[0].split()[0] != "1"
    for n, page in enumerate(pages[1:], start=2):
        assert page.split()[0] == str(n), f"page {n} starts with {page.split()[:3]}"
    # the wide appendices (Phụ lục 1 and 2, as seeds 000 and 003/004 print them) on
    # landscape pages, each starting a page; the body portrait
    appendix = next(i for i, p in enumerate(pages) if "THỰC HIỆN SỐ HÓA HỒ SƠ TTHC" in p)
    annex2 = next(i for i, p in enumerate(pages) if "MỘT SỐ CHỈ TIÊU KHÁC" in p)
    assert set(orientation[:appendix]) == {"portrait"}
    assert set(orientation[appendix:]) == {"landscape"}
    assert pages[appendix].split()[1:3] == ["Phụ", "lục"] and "Phụ lục 2" in pages[annex2]
    assert "(Kèm theo Báo cáo số:" in " ".join(pages[appendix].split())
    # the two-level header, repeated on every page of the appendix
    for page in pages[appendix:annex2]:
        assert "Số lượng hồ sơ đã giải quyết" in page and "Tỷ lệ số hóa hồ sơ đã giải quyết" in page
    # no heading printed twice
    lines = [" ".join(line.split()) for line in everything.splitlines()]
    for heading in [b.text for b in doc.blocks if isinstance(b, Heading)]:
        assert flat.count(heading) == 1, heading  # a long heading may wrap: whole text
    assert sum(line.startswith("Phụ lục 2") for line in lines) == 1
    assert sum(line == "- Quận Đồ Sơn" for line in lines) == 1 and "Quận Đồ Sơn" not in lines
    # no table text cut off: every word of every cell is printed whole somewhere
    printed = set(everything.split())
    assert not _words(doc) - printed, sorted(_words(doc) - printed)[:10]


@pytest.mark.integration
def test_xlsx_pdf_is_a4_with_whole_cells(doc: Document, pdfs: dict[str, Path]) -> None:
    pages, sizes = _pages(pdfs["xlsx"]), _sizes(pdfs["xlsx"])
    orientation = [_a4(size) for size in sizes]
    everything = "\n".join(pages)
    assert "###" not in everything  # a number wider than its column
    printed = set(everything.split())
    assert not _words(doc) - printed, sorted(_words(doc) - printed)[:10]
    wide = [i for i, p in enumerate(pages) if "Số lượng hồ sơ đã giải quyết" in p]
    assert wide and all(orientation[i] == "landscape" for i in wide)
    assert "100%" in everything and "100,00%" not in everything
    for table in doc.tables():
        assert table.title in " ".join(everything.split()), table.title
    assert _table_sheets_named(doc)


def _table_sheets_named(doc: Document) -> bool:
    from dossier_stream.reports.writers_office import sheet_names

    names = sheet_names(doc.tables())
    return (
        "Bảng 1" in names
        and "PL1 Huyện An Dương" in names
        and not any(re.fullmatch(r"[a-z0-9-]+", name) for name in names)
    )


def test_a_figure_the_previous_month_lacks_is_not_compared(
    reports: tuple[Report, Report], registry: UnitRegistry
) -> None:
    september, october = reports
    backlog = orjson.loads(orjson.dumps(september))  # received dossiers, nothing else
    backlog["online_payment_transactions"] |= {"count": 0, "amount_vnd": 0, "units": {}}
    backlog["indicators"]["on_time"]["city"] |= {"numerator": 0, "denominator": 0}
    text = render_document_text(monthly(october, registry, previous=backlog))
    assert "tổng số hồ sơ tiếp nhận" in text and "so với tháng 09/2024" in text
    assert "giao dịch và" not in text and "điểm phần trăm" not in text
    full = render_document_text(monthly(october, registry, previous=september))
    assert "giao dịch và" in full and "so với tháng 09/2024 là" in full
    nothing = orjson.loads(orjson.dumps(september))
    nothing["received"]["city"] = 0
    assert "so với tháng" not in render_document_text(monthly(october, registry, previous=nothing))


def test_xlsx_prints_no_heading_twice(doc: Document, tmp_path: Path) -> None:
    import openpyxl

    write_xlsx(doc, tmp_path / "book.xlsx")
    book = openpyxl.load_workbook(tmp_path / "book.xlsx")
    summary = [c.value for c in book["Báo cáo"]["A"] if c.value]
    headings = [v for v in summary if not str(v).startswith(("- ", "(Kèm theo"))]  # may repeat
    assert len(headings) == len(set(headings)), [v for v in headings if headings.count(v) > 1]
    assert "- Huyện An Dương" not in summary and "Phụ lục 1 - Huyện An Dương" in summary
    for sheet in book.worksheets[1:]:
        top = [sheet.cell(r, 1).value for r in (1, 2) if sheet.cell(r, 1).value]
        assert len(top) == len(set(top)) and not any(t.startswith("- ") for t in top)
