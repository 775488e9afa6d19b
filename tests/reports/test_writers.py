"""The report writers: Markdown, CSV, xlsx and docx, and their PDF through LibreOffice."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import unicodedata
from pathlib import Path

import docx
import openpyxl
import pytest
from docx.document import Document as WordDocument
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.shared import Mm

from dossier_stream.reports.document import (
    Average,
    Band,
    Count,
    Document,
    Heading,
    Paragraph,
    Rate,
    Table,
)
from dossier_stream.reports.writers import (
    CSV_FIELDS,
    FORMATS,
    render_csv,
    render_markdown,
    write,
    write_docx,
    write_xlsx,
)
from dossier_stream.reports.writers_office import rate_format, sheet_names, xlsx_bytes

TITLE = "BÁO CÁO"
SUBTITLE = (
    "Kết quả vận hành Hệ thống giải quyết thủ tục hành chính thành phố Hải Phòng tháng 10/2024"
)
NOTE = "* Ủy ban nhân dân huyện Bạch Long Vĩ không có cấp xã"
LONG_KEY = "so-hoa-ho-so-cap-xa-huyen-an-duong-thang-10"  # 43 characters: sheet names have 31


def make_doc() -> Document:
    """A small report: a unit table with a total row, two tables of one group, a footnote."""
    units = Table(
        key="bang-1",
        title="Bảng 1 - Tỷ lệ hồ sơ trực tuyến cấp sở, ngành",
        columns=["STT", "Cơ quan, đơn vị", "Số hồ sơ tiếp nhận", "Tỷ lệ % hồ sơ trực tuyến"],
    )
    units.add(["1", "Sở Tư pháp", Count(77030), Rate(38507, 41818)], key="so-tu-phap")
    units.add(["2", "Sở Y tế", Count(3), Rate(1, 3)], key="so-y-te")
    units.add(["3", "Ủy ban nhân dân huyện Bạch Long Vĩ", Count(0), Rate(0, 0)], key="bach-long-vi")
    units.add([None, "Tổng cộng", Count(77033), Rate(38508, 41821)])
    columns = ["STT", "Đơn vị", "Tổng số", "Có file kết quả đính kèm"]
    group = "Huyện An Dương"
    first = Table(key=f"{LONG_KEY}-a", title="Bảng 4a - Số hóa", columns=columns, group=group)
    first.add(["1", "Thị trấn An Dương", Count(1094), Rate(1094, 1094)], key="tt-an-duong")
    second = Table(key=f"{LONG_KEY}-b", title="Bảng 4b - Số hóa", columns=columns, group=group)
    second.add(["1", "Xã Lê Lợi", Count(3), Rate(1, 3)], key="xa-le-loi")
    second.notes.append(NOTE)
    return Document(
        title=TITLE,
        subtitle=SUBTITLE,
        blocks=[
            Heading("1. Số liệu thống kê:"),
            Paragraph("Số liệu từ ngày 15/09/2024 đến 14/10/2024 (tháng 10/2024)."),
            units,
            Heading("Phụ lục", level=3),
            first,
            second,
        ],
    )


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", " ".join(text.split()))


# --- Markdown ------------------------------------------------------------------------------


def test_markdown_prints_the_vietnamese_texts() -> None:
    md = render_markdown(make_doc())
    assert md.startswith(f"# {TITLE}\n\n**{SUBTITLE}**\n\n## 1. Số liệu thống kê:\n")
    assert "| 1 | Sở Tư pháp | 77.030 | 92,08% |" in md
    assert "| 2 | Sở Y tế | 3 | 33,33% |" in md and "Bạch Long Vĩ | 0 | 0% |" in md


def test_markdown_aligns_numbers_and_prints_group_caption_once_and_footnote() -> None:
    md = render_markdown(make_doc())
    assert "| --- | --- | ---: | ---: |" in md and "### Phụ lục" in md
    assert md.count("**- Huyện An Dương**") == 1 and "Huyện An Dương" not in md.replace(
        "**- Huyện An Dương**", ""
    )
    assert f"_\\{NOTE}_" in md and md.endswith("_\n")


def test_markdown_escapes_table_pipes() -> None:
    table = Table(key="t", title="T", columns=["a|b"])
    table.add(["x|y"])
    assert "| a\\|b |\n| --- |\n| x\\|y |" in render_markdown(Document("T", blocks=[table]))


# --- CSV -----------------------------------------------------------------------------------


def csv_rows() -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(render_csv(make_doc())))
    assert tuple(reader.fieldnames or ()) == CSV_FIELDS
    return list(reader)


def test_csv_has_one_line_per_body_cell() -> None:
    rows = csv_rows()
    assert len(rows) == 4 * 4 + 4 + 4
    assert [r["column"] for r in rows[:4]] == make_doc().tables()[0].columns


def test_csv_round_trips_rates_and_counts() -> None:
    by_text = {(r["table"], r["row"], r["text"]): r for r in csv_rows()}
    rate = by_text["bang-1", "1", "92,08%"]
    assert (rate["value"], rate["numerator"], rate["denominator"]) == ("92.08", "38507", "41818")
    assert by_text["bang-1", "2", "33,33%"]["value"] == "33.33"
    assert by_text["bang-1", "1", "77.030"]["value"] == "77030"
    assert by_text["bang-1", "1", "77.030"]["numerator"] == ""


def test_csv_rate_without_dossiers_has_no_value() -> None:
    empty = next(r for r in csv_rows() if r["unit_code"] == "bach-long-vi" and r["numerator"])
    assert (empty["text"], empty["value"], empty["denominator"]) == ("0%", "", "0")


def test_csv_unit_columns_and_quoting() -> None:
    rows = csv_rows()
    assert rows[0]["unit_name"] == "Sở Tư pháp" and rows[0]["unit_code"] == "so-tu-phap"
    assert rows[1]["column"] == "Cơ quan, đơn vị" and rows[1]["title"].startswith("Bảng 1 - ")
    total = [r for r in rows if r["row"] == "4"]
    assert {r["unit_name"] for r in total} == {"Tổng cộng"} and total[0]["unit_code"] == ""


def test_csv_group_and_full_precision_rate() -> None:
    grouped = [r for r in csv_rows() if r["group"]]
    assert {r["group"] for r in grouped} == {"Huyện An Dương"} and len(grouped) == 8
    assert [r["value"] for r in grouped if r["text"] == "100%"] == ["100.00"]


def test_row_name_skips_the_order_column_and_numbers() -> None:
    table = Table(key="t", title="T", columns=["  stt ", "Số", "Tên", "Ghi chú"])
    table.add(["1", Count(5), "Xã Đại Hà", "x"])
    table.add(["2", Count(5), " ", None])
    assert (table.row_name(0), table.row_name(1)) == ("Xã Đại Hà", "")


# --- xlsx ----------------------------------------------------------------------------------


@pytest.fixture
def xlsx(tmp_path: Path) -> openpyxl.Workbook:
    write_xlsx(make_doc(), tmp_path / "report.xlsx")
    return openpyxl.load_workbook(tmp_path / "report.xlsx")


def test_xlsx_sheets_are_named_as_a_person_would(xlsx: openpyxl.Workbook) -> None:
    assert xlsx.sheetnames == ["Báo cáo", "Bảng 1", "Bảng 4a", "Bảng 4b"]
    assert xlsx["Báo cáo"]["A1"].value == TITLE and xlsx["Báo cáo"]["A2"].value == SUBTITLE
    links = [c.hyperlink.location for c in xlsx["Báo cáo"]["A"] if c.hyperlink]
    assert links == ["'Bảng 1'!A1", "'Bảng 4a'!A1", "'Bảng 4b'!A1"]


def test_xlsx_sheet_names_prefer_the_tables_sheet_and_stay_unique() -> None:
    tables = [Table(key=LONG_KEY, title="Bảng 1 - x", columns=["a"], sheet="PL1 Huyện An Dương"),
              Table(key="b", title="Bảng 1 - y", columns=["a"]),
              Table(key="c", title="Bảng 1 - z", columns=["a"])]  # fmt: skip
    assert sheet_names(tables) == ["PL1 Huyện An Dương", "Bảng 1", "Bảng 1 (2)"]


def test_xlsx_is_a4_with_print_titles_and_landscape_when_wide(xlsx: openpyxl.Workbook) -> None:
    for sheet in xlsx.worksheets:
        assert int(sheet.page_setup.paperSize) == 9  # A4
    assert xlsx["Bảng 1"].print_title_rows == "$3:$3"
    wide = Table("w", "Phụ lục 1 - Sở", ["STT", "Đơn vị", *"abcdefg"],
                 bands=[Band("Số lượng", 2, 5)], labels=["STT", "Đơn vị", *"ABCDEFG"])  # fmt: skip
    wide.add(["1", "Sở Y tế", *(Count(n) for n in range(7))])
    book = openpyxl.load_workbook(io.BytesIO(xlsx_bytes(Document("T", blocks=[wide]))))
    sheet = book["Phụ lục 1"]
    assert sheet.page_setup.orientation == "landscape" and sheet.print_title_rows == "$3:$4"
    assert (
        sheet["C3"].value == "Số lượng" and sheet["C4"].value == "A" and sheet["A3"].value == "STT"
    )
    assert "C3:F3" in {str(r) for r in sheet.merged_cells.ranges} and sheet.freeze_panes == "A5"


def test_xlsx_counts_are_integers_with_a_thousands_format(xlsx: openpyxl.Workbook) -> None:
    sheet = xlsx["Bảng 1"]
    assert sheet["C4"].value == 77030 and isinstance(sheet["C4"].value, int)
    assert sheet["C4"].number_format == "#,##0" and sheet["B4"].value == "Sở Tư pháp"


def test_xlsx_rates_are_exact_fractions_shown_as_printed(xlsx: openpyxl.Workbook) -> None:
    sheet = xlsx["Bảng 1"]
    assert sheet["D4"].value == pytest.approx(38507 / 41818, rel=1e-15)
    assert [sheet[f"D{r}"].number_format for r in (4, 5, 6)] == ["0.00%", "0.00%", "0%"]
    assert sheet["D6"].value == 0 and sheet["A7"].value is None
    assert xlsx["Bảng 4a"]["D4"].number_format == "0%"  # 100%, as the report prints it
    assert [rate_format(Rate(437, 1000)), rate_format(Rate(1, 3))] == ["0.0%", "0.00%"]


def test_xlsx_averages_are_numbers() -> None:
    table = Table("t", "Phụ lục 2 - x", ["STT", "Đơn vị", "Số ngày trung bình"])
    table.add(["1", "Sở Y tế", Average(1.5)])
    table.add(["2", "Sở Tư pháp", Average(None)])
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx_bytes(Document("T", blocks=[table]))))[
        "Phụ lục 2"
    ]
    assert sheet["C4"].value == 1.5 and sheet["C4"].number_format == "0.0"
    assert sheet["C5"].value is None


def test_xlsx_header_is_frozen_bold_and_captioned(xlsx: openpyxl.Workbook) -> None:
    sheet = xlsx["Bảng 1"]
    assert sheet.freeze_panes == "A4" and sheet["A3"].value == "STT" and sheet["B3"].font.b
    assert sheet["A1"].value.startswith("Bảng 1 - ") and sheet["B3"].alignment.wrap_text


def test_xlsx_group_caption_and_footnote(xlsx: openpyxl.Workbook) -> None:
    sheet = xlsx["Bảng 4b"]
    assert sheet["A2"].value == "Huyện An Dương" and sheet["A6"].value == NOTE
    assert xlsx["Bảng 1"]["A2"].value is None


def test_xlsx_sheet_names_drop_forbidden_characters(tmp_path: Path) -> None:
    doc = Document("T", blocks=[Table(key="bảng 1/2: [x]?", title="T", columns=["a"])])
    write_xlsx(doc, tmp_path / "r.xlsx")
    assert openpyxl.load_workbook(tmp_path / "r.xlsx").sheetnames == ["Báo cáo", "T"]
    doc = Document("T", blocks=[Table(key="k", title="T", columns=["a"], sheet="bảng 1/2: [x]?")])
    write_xlsx(doc, tmp_path / "r.xlsx")
    assert openpyxl.load_workbook(tmp_path / "r.xlsx").sheetnames == ["Báo cáo", "bảng 1-2- -x--"]


def test_xlsx_and_docx_are_reproducible(tmp_path: Path) -> None:
    for fmt in ("xlsx", "docx"):
        write(make_doc(), fmt, tmp_path / f"a.{fmt}")
        write(make_doc(), fmt, tmp_path / f"b.{fmt}")
        assert (tmp_path / f"a.{fmt}").read_bytes() == (tmp_path / f"b.{fmt}").read_bytes()


# --- docx ----------------------------------------------------------------------------------


@pytest.fixture
def word(tmp_path: Path) -> WordDocument:
    write_docx(make_doc(), tmp_path / "report.docx")
    return docx.Document(str(tmp_path / "report.docx"))


def test_docx_tables_hold_the_printed_texts(word: WordDocument) -> None:
    assert len(word.tables) == 3 and all(t.style.name == "Table Grid" for t in word.tables)
    cells = [[c.text for c in row.cells] for row in word.tables[0].rows]
    assert cells[1] == ["1", "Sở Tư pháp", "77.030", "92,08%"] and cells[3][3] == "0%"


def test_docx_header_row_is_bold_and_repeats(word: WordDocument) -> None:
    header = word.tables[0].rows[0]
    assert header._tr.trPr.find(qn("w:tblHeader")) is not None
    assert all(run.bold for cell in header.cells for run in cell.paragraphs[0].runs)


def test_docx_numbers_are_right_aligned(word: WordDocument) -> None:
    row = word.tables[0].rows[1].cells
    center, left, right = (
        WD_ALIGN_PARAGRAPH.CENTER,
        WD_ALIGN_PARAGRAPH.LEFT,
        WD_ALIGN_PARAGRAPH.RIGHT,
    )
    assert [c.paragraphs[0].alignment for c in row] == [center, left, right, right]


def test_docx_columns_fill_the_text_width_and_fit_their_texts(word: WordDocument) -> None:
    widths = [column.width for column in word.tables[0].columns]
    assert sum(widths) == pytest.approx(Mm(165), rel=1e-3) and max(widths) == widths[1]
    assert min(widths) > Mm(11)  # "STT" in bold 12 pt and the cell margins


def test_docx_title_font_and_footnote(word: WordDocument) -> None:
    title = word.paragraphs[0]
    assert (
        title.text == TITLE and title.alignment == WD_ALIGN_PARAGRAPH.CENTER and title.runs[0].bold
    )
    assert word.styles["Normal"].font.name == "Times New Roman"
    assert any(p.text == NOTE and p.runs[0].italic for p in word.paragraphs)


# --- dispatch ------------------------------------------------------------------------------


def test_write_prints_text_formats(capsys: pytest.CaptureFixture[str]) -> None:
    write(make_doc(), "csv", None)
    assert capsys.readouterr().out == render_csv(make_doc()) and FORMATS[0] == "md"


def test_write_needs_a_file_for_binary_formats() -> None:
    with pytest.raises(ValueError, match="--out"):
        write(make_doc(), "xlsx", None)


def test_write_rejects_unknown_formats(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="md, csv, xlsx, docx"):
        write(make_doc(), "pdf", tmp_path / "r.pdf")


def test_write_md_file_is_utf8(tmp_path: Path) -> None:
    write(make_doc(), "md", tmp_path / "r.md")
    assert (tmp_path / "r.md").read_text(encoding="utf-8") == render_markdown(make_doc())


def test_csv_file_starts_with_a_bom_unless_turned_off(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(make_doc(), "csv", tmp_path / "r.csv")
    assert (tmp_path / "r.csv").read_bytes().startswith(b"\xef\xbb\xbftable,title,")
    assert (tmp_path / "r.csv").read_text(encoding="utf-8-sig") == render_csv(make_doc())
    write(make_doc(), "csv", tmp_path / "plain.csv", csv_bom=False)
    assert (tmp_path / "plain.csv").read_bytes().startswith(b"table,title,")
    write(make_doc(), "csv", None)
    assert not capsys.readouterr().out.startswith("\ufeff")


# --- LibreOffice ---------------------------------------------------------------------------


def tool(*names: str) -> str:
    for name in names:
        if found := shutil.which(name):
            return found
    pytest.fail(f"{names[0]} is missing: run ./scripts/setup (scripts/debian-packages.txt)")


def pdf_text(pdftotext: str, pdf: Path) -> str:
    assert pdf.is_file(), f"LibreOffice did not write {pdf.name}"
    run = subprocess.run(
        [pdftotext, str(pdf), "-"], check=False, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    return nfc(run.stdout)


@pytest.mark.integration
def test_libreoffice_opens_xlsx_and_docx_with_the_same_numbers(tmp_path: Path) -> None:
    soffice, pdftotext = tool("soffice", "libreoffice"), tool("pdftotext")
    write_xlsx(make_doc(), tmp_path / "book.xlsx")
    write_docx(make_doc(), tmp_path / "word.docx")
    command = [
        soffice,
        f"-env:UserInstallation=file://{tmp_path}/lo-profile",  # a profile of its own
        "--headless",
        "--convert-to",
        "pdf",
        "--outdir",
        str(tmp_path / "pdf"),
        str(tmp_path / "book.xlsx"),
        str(tmp_path / "word.docx"),
    ]
    # Calc prints "#,##0" and "0.00%" with the separators of its locale, taken from the
    # environment: 77,030 and 92.08% under C or en_US, 92,08 % under de_DE. A Vietnamese
    # reader's locale (which LibreOffice knows without the glibc locale) gives 77.030, 92,08%.
    env = {**os.environ, "LC_ALL": "vi_VN.UTF-8", "LANG": "vi_VN.UTF-8"}
    run = subprocess.run(command, check=False, capture_output=True, text=True, timeout=240, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    book = pdf_text(pdftotext, tmp_path / "pdf" / "book.pdf")
    word = pdf_text(pdftotext, tmp_path / "pdf" / "word.pdf")
    for text in (book, word):
        assert nfc(TITLE) in text and nfc(SUBTITLE) in text and nfc(NOTE) in text
        assert nfc("Ủy ban nhân dân huyện Bạch Long Vĩ") in text
        assert all(n in text for n in ("77.030", "92,08%", "33,33%", "77.033", "1.094"))
    for text in (book, word):  # as printed: no trailing zeros, in the xlsx too
        assert " 0% " in text and "100%" in text and "100,00%" not in text
