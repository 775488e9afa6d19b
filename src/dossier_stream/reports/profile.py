"""The per-province document settings: who issues the report, to whom, who signs.

An administrative document (Nghị định 30/2020/NĐ-CP) names its issuing body
and that body's parent, carries a number and symbol, a place and date, its
addressees (``Kính gửi``), its distribution (``Nơi nhận``) and its signatory.
None of that is in the dossier stream: it comes from a small YAML file,
Hải Phòng's bundled (``data/document_haiphong.yaml``, which documents every
key), another province's named by ``DOSSIER_DOCUMENT_FILE``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated, Final

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

__all__ = ["BUNDLED", "DocumentProfile", "Signatory", "load_profile"]

BUNDLED: Final = "document_haiphong.yaml"
"""The bundled profile (Hải Phòng), under the package's ``data/``."""

Line = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class Signatory(BaseModel):
    """The signatory's capacity lines (``GIÁM ĐỐC``) and full name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    authority: list[Line] = Field(min_length=1)
    name: Line


class DocumentProfile(BaseModel):
    """A province's document settings (see the bundled YAML for each key)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    province: Line
    place: Line
    parent: Line
    issuer: Line
    symbol: Line
    recipients: list[Line] = Field(min_length=1)
    basis: Line
    distribution: list[Line] = Field(min_length=1)
    signatory: Signatory

    def number(self) -> str:
        """``Số:      /BC-STTTT``: the number is written in when the document is registered."""
        return f"Số:{' ' * 6}/{self.symbol}"

    def dated(self, year: int) -> str:
        """``Hải Phòng, ngày      tháng      năm 2024``: the day is written in at signing."""
        gap = " " * 6
        return f"{self.place}, ngày{gap}tháng{gap}năm {year}"

    def attached(self, year: int) -> str:
        """The appendix line ``(Kèm theo Báo cáo số:      /BC-STTTT ngày   /   /2024 của …)``."""
        return (
            f"(Kèm theo Báo cáo số:{' ' * 6}/{self.symbol} ngày{' ' * 4}/{' ' * 4}/{year} "
            f"của {self.issuer})"
        )

    def distribution_lines(self) -> tuple[str, ...]:
        """``- Như trên;`` … ``- Lưu: VT, CNTT.``: each line ends ``;``, the last ``.``."""
        lines = [f"- {line.rstrip(';.')}" for line in self.distribution]
        return (*(f"{line};" for line in lines[:-1]), f"{lines[-1]}.")

    def closing(self) -> str:
        """``Sở … kính báo cáo Ủy ban nhân dân thành phố./.``"""
        return f"{self.issuer} kính báo cáo {self.recipients[0]}./."

    def opening(self, label: str) -> str:
        """The opening paragraph: the basis, then what is reported (``tháng 10/2024``)."""
        return f"{self.basis}, {self.issuer} báo cáo kết quả thực hiện trong {label} như sau:"


def load_profile(path: Path | None = None) -> DocumentProfile:
    """Read a document profile; ``None`` reads the bundled Hải Phòng one.

    Raises:
        ValueError: the file is missing, not YAML, or a key is missing or
            unknown; the message names the file and the key.
    """
    if path is None:
        text = resources.files("dossier_stream").joinpath("data", BUNDLED).read_text("utf-8")
        where = BUNDLED
    else:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"document settings {path}: {exc.strerror or exc}") from None
        where = str(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"document settings {where}: not YAML ({exc})") from None
    try:
        return DocumentProfile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(file)'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"document settings {where}: {problems}") from None
