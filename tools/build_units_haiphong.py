"""Build ``src/dossier_stream/data/units_haiphong.csv``: both eras of Hải Phòng's registry.

Era 1 (until 2025-06-30) is read from ``tests/data/haiphong-2024-10/{digitization,
online-rates}.csv`` (a committed copy of ``../shared/reference/haiphong-2024-10/``):
19 department-level units, 15 districts and 217 communes. Era 2 (from 2025-07-01,
after the merger with Hải Dương and the end of the district level) is data in this file:
12 departments and the 114 commune-level units of resolution 1669/NQ-UBTVQH15 (45 phường, 67 xã,
2 đặc khu). The output is deterministic; the data file is committed, so the package
never reads ``../shared`` at run time.

Codes: era 1 departments ``HP-SO-<SHORT>`` (plus ``HP-BQLKKT``, ``HP-TTTP``),
districts ``HP-Q-<GSO district code>``, communes ``HP-Q-<GSO>-<NN>`` numbered in the
order ``digitization.csv`` lists them within their district. Era 2 departments
``HP25-SO-<SHORT>`` and ``HP25-BQLKKT``; era 2 communes carry their official 5-digit
code (mã đơn vị hành chính, Quyết định 19/2025/QĐ-TTg), e.g. ``11311`` for Phường
Hồng Bàng, as listed in github.com/thanglequoc/vietnamese-provinces-database,
``dataset-generation-scripts/resources/manual_decree_seeds/wards/31_HaiPhong.sql``.

Names: era 1 as the province prints them, except the typos listed in ``FIXES``
(checked against GSO-derived commune lists); tone marks in the modern placement
(Hòa, Thủy). Every spelling printed in the reference tables or in seed 000 that
differs from the name is kept as an alias, plus the abbreviations used in the
city's other reports (``EXTRA_ALIASES``). Era 2 names as resolution 1669 prints
them ("Xã An Hưng", "Phường Hồng Bàng", "Đặc khu Cát Hải"), in its order.

Departments of era 2. The merged city has 11 sở that take dossiers (Nội vụ, Tư
pháp, Tài chính, Công Thương, Nông nghiệp và Môi trường, Xây dựng, Khoa học và
Công nghệ, Giáo dục và Đào tạo, Y tế, Văn hóa, Thể thao và Du lịch, Ngoại vụ),
the Ban Quản lý Khu kinh tế, the city inspectorate and the Văn phòng UBND. The
spec says 12: we keep the 11 sở and the Ban Quản lý Khu kinh tế, and leave out
the inspectorate (it inspects and settles complaints rather than taking
procedure dossiers; the October 2024 report already leaves it out of Bảng 1) and
the Văn phòng UBND (never a registry unit). Links from era-1 departments follow
the March 2025 mergers (Kế hoạch và Đầu tư -> Tài chính, Giao thông vận tải ->
Xây dựng, Tài nguyên và Môi trường and Nông nghiệp -> Nông nghiệp và Môi
trường, Thông tin và Truyền thông -> Khoa học và Công nghệ and, for the press,
Văn hóa, Thể thao và Du lịch, Lao động - Thương binh và Xã hội -> Nội vụ, Y tế
(social protection) and Giáo dục và Đào tạo (vocational training), Du lịch and
Văn hóa và Thể thao -> Văn hóa, Thể thao và Du lịch). Confirmed for Hải Phòng:
sovhttdl.haiphong.gov.vn (Sở Văn hóa, Thể thao và Du lịch, March 2025), Quyết
định 62/2025/QĐ-UBND of 2025-07-01 (Sở Ngoại vụ of the merged city), Quyết định
1459/QĐ-TTg (Ban Quản lý Khu kinh tế Hải Phòng); the rest follow the national
scheme. ``HP-TTTP`` has no successor in the registry.

Successor links of communes. Resolution 1669 names its sources with the units of
2025-01-01 to 2025-06-30 (after resolution 1232/NQ-UBTVQH15), not the 217 of
era 1, so a link goes through that intermediate era: ``COMMUNES_2025`` lists, per
new unit, the 2025 units it takes all or part of (grouped by the era-1 district of
their land); ``MERGED_2025`` lists the era-1 communes known to lie in a 2025 unit
that merged others or got a new name; any other 2025 unit is the era-1 commune of
the same name in the same district. ``X[a+b]`` in ``COMMUNES_2025`` reads "the part
of X that was the era-1 communes a and b". A commune merged on 2025-01-01 into a
2025 unit that 1669 then split is linked to every new unit taking part of it (an
upper bound). A district is linked to every new unit taking land that was its own.
Sources: a third-party per-item transcription of the resolution published on
GitHub (its Hải Phòng side adds up to the 167 units of 2025, and every item with
a second source agrees with it); nghean24h.vn/...-a754164.html (items 1-2);
ever.vn/ban-do-phuong-hong-an-hai-phong-sau-sap-nhap (Hồng An);
muigio.com/hai-phong/xa-hung-tien-huyen-vinh-bao (Vĩnh Hòa);
tuoitrethudo.vn/hai-phong-co-50-xa-phuong-dac-khu-sau-sap-xep-276846.html (new
units per district); for resolution 1232: vietnamnet.vn/...-2340139.html (Hồng
Bàng), news.laodong.vn/...-1440292.ldo (Lê Chân: An Biên takes Lam Sơn and, the
only ward left, Cát Dài), news.laodong.vn/...-1434473.ldo (An Dương: An Hải and
Lê Lợi sit in the former Đặng Cương and An Dương town offices),
kienhung.kienthuy.haiphong.gov.vn (Kiến Hưng = Đại Hà, Ngũ Đoan, Thụy Hương and
how 1669 splits it), profilpelajar.com/vi/Tam_Cường (Cổ Am, Vĩnh Tiến),
thegioitiepthi.danviet.vn/...-d1379258.html (Vĩnh Hải = Hưng Nhân, Thanh Lương,
Cộng Hiền).

Not linked (no public source found for their 2025-01-01 merger): 2025 units of
unknown make-up: Thủy Nguyên's Thủy Hà, Hoàng Lâm, Lê Hồng Phong, Nam Triệu Giang,
Bạch Đằng, Phạm Ngũ Lão, Trần Hưng Đạo, Liên Xuân, Quang Trung, Ninh Sơn; Kiến
An's Bắc Hà; Tiên Lãng's Tân Minh; Vĩnh Bảo's Vĩnh Hưng, Vĩnh Hòa; so these 47
era-1 communes keep an empty ``successor_codes``: Thủy Nguyên: Thị trấn Núi Đèo,
Cao Nhân, Hoàng Động, Kiền Bái, Kỳ Sơn, Liên Khê, Lưu Kỳ, Lại Xuân, Minh Tân,
Ngũ Lão, Phục Lễ, Thủy Sơn, Đông Sơn, Trung Hà, Phù Ninh, Hợp Thành, Thủy
Triều, Tân Dương, Mỹ Đồng, Phả Lễ, Chính Mỹ, Gia Đức, An Sơn, Gia Minh, Kênh
Giang, Lâm Động; Ngô Quyền: Lê Lợi, Đồng Quốc Bình, Lạc Viên, Máy Tơ; Kiến An:
Lãm Hà, Quán Trữ, Phù Liễn, Tràng Minh; An Dương: Bắc Sơn, Quốc Tuấn; Tiên Lãng:
Toàn Thắng, Bạch Đằng, Quang Phục; Vĩnh Bảo: An Hòa, Vinh Quang, Hiệp Hòa, Vĩnh
Phong, Đồng Minh, Tam Đa, Vĩnh Long, Nhân Hòa. Their districts are linked. Also
not linked: the 7.27 km² of Đông Hải 1 moved to Thủy Triều on 2025-01-01. Units
formed from Hải Dương communes only have no predecessor here (Hải Dương was never
part of this registry); neither does Xã Việt Khê (from Ninh Sơn and Liên Xuân).

Usage::

    .venv/bin/python tools/build_units_haiphong.py          # write the file
    .venv/bin/python tools/build_units_haiphong.py --check  # exit 1 if stale
"""

from __future__ import annotations

import csv
import io
import re
import sys
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "tests" / "data" / "haiphong-2024-10"  # copy of ../shared/reference/...
OUTPUT = REPO / "src" / "dossier_stream" / "data" / "units_haiphong.csv"
VALID_TO = "2025-06-30"
ERA2_FROM = "2025-07-01"
HEADER = (
    "code",
    "name",
    "level",
    "parent_code",
    "valid_from",
    "valid_to",
    "aliases",
    "successor_codes",
)

sys.path.insert(0, str(REPO / "src"))
from dossier_stream.core.names import ADMIN_PREFIX  # noqa: E402
from dossier_stream.core.registry import UnitRegistry, normalize_name  # noqa: E402

# Printed department name (digitization.csv) -> code.
DEPARTMENT_CODES = {
    "Ban quản lý khu kinh tế": "HP-BQLKKT",
    "Sở Công thương": "HP-SO-CONGTHUONG",
    "Sở Du lịch": "HP-SO-DULICH",
    "Sở Giao thông vận tải": "HP-SO-GTVT",
    "Sở Giáo dục và Đào tạo": "HP-SO-GDDT",
    "Sở Khoa học và Công nghệ": "HP-SO-KHCN",
    "Sở Lao động - Thương binh và Xã hội": "HP-SO-LDTBXH",
    "Sở Ngoại vụ": "HP-SO-NGOAIVU",
    "Sở Nông nghiệp và Phát triển nông thôn": "HP-SO-NNPTNT",
    "Sở Nội vụ": "HP-SO-NOIVU",
    "Sở Thông tin và Truyền thông": "HP-SO-TTTT",
    "Sở Tài chính": "HP-SO-TAICHINH",
    "Sở Văn hóa và Thể thao": "HP-SO-VHTT",
    "Sở Xây dựng": "HP-SO-XAYDUNG",
    "Sở Y tế": "HP-SO-YTE",
    "Sở Tư pháp": "HP-SO-TUPHAP",
    "Sở Tài nguyên và Môi trường": "HP-SO-TNMT",
    "Sở Kế hoạch và Đầu tư": "HP-SO-KHDT",
    "Thanh tra thành phố": "HP-TTTP",
}

# GSO district code -> (kind, name). Official style "Ủy ban nhân dân <kind> <name>".
DISTRICTS = {
    "303": ("quận", "Hồng Bàng"),
    "304": ("quận", "Ngô Quyền"),
    "305": ("quận", "Lê Chân"),
    "306": ("quận", "Hải An"),
    "307": ("quận", "Kiến An"),
    "308": ("quận", "Đồ Sơn"),
    "309": ("quận", "Dương Kinh"),
    "311": ("huyện", "Thủy Nguyên"),
    "312": ("huyện", "An Dương"),
    "313": ("huyện", "An Lão"),
    "314": ("huyện", "Kiến Thụy"),
    "315": ("huyện", "Tiên Lãng"),
    "316": ("huyện", "Vĩnh Bảo"),
    "317": ("huyện", "Cát Hải"),
    "318": ("huyện", "Bạch Long Vĩ"),
}

# Typos in the printed district names (bare name -> correct bare name).
DISTRICT_FIXES = {"Kiên Thụy": "Kiến Thụy", "Kiên An": "Kiến An", "Bạch Long Vỹ": "Bạch Long Vĩ"}

# Printed commune name -> official name (typos, old tone placement, case).
FIXES = {
    "Xã An Hoà (An Dương)": "Xã An Hòa (An Dương)",
    "Xã Hoà Bình (Thủy Nguyên)": "Xã Hòa Bình (Thủy Nguyên)",
    "Thị Trấn Cát Bà": "Thị trấn Cát Bà",
    "Xã Minh Tân (Kiên Thụy)": "Xã Minh Tân (Kiến Thụy)",
    "Thị trấn Núi Đồi": "Thị trấn Núi Đối",
    "Xã Kiên Quốc": "Xã Kiến Quốc",
    "Xã Kiên Bái": "Xã Kiền Bái",
    "Xã An Tiên": "Xã An Tiến",
    "Xã Tụ Cường": "Xã Tự Cường",
    "Xã Trần Dương": "Xã Trấn Dương",
    "Xã Vĩnh Quang (Vĩnh Bảo)": "Xã Vinh Quang (Vĩnh Bảo)",
    "Phường Văn Đầu": "Phường Văn Đẩu",
    "Phường Bằng La": "Phường Bàng La",
}

# Spellings seen outside the reference CSVs (seed 000 prose, the city's other reports).
EXTRA_ALIASES = {
    "HP-BQLKKT": ("Ban Quản lý Khu kinh tế Hải Phòng", "Ban Quản lý Khu kinh tế HP", "BQL KKT"),
    "HP-SO-CONGTHUONG": ("Sở Công Thương",),
    "HP-SO-GDDT": ("Sở GD&ĐT",),
    "HP-SO-KHCN": ("Sở KH&CN",),
    "HP-SO-KHDT": ("Sở KH&ĐT",),
    "HP-SO-LDTBXH": ("Sở Lao động Thương binh và Xã hội", "Sở LĐ-TB&XH"),
    "HP-SO-NNPTNT": ("Sở Nông nghiệp và PTNT", "Sở NN&PTNT"),
    "HP-SO-TNMT": ("Sở Tài Nguyên và Môi trường", "Sở TN&MT"),
    "HP-SO-TTTT": ("Sở Thông tin và TT", "Sở TT&TT"),
    "HP-SO-TUPHAP": ("Sở Tư Pháp",),
    "HP-SO-VHTT": ("Sở VH&TT",),
    "HP-TTTP": ("Thanh tra thành phố Hải Phòng",),
}
# The GSO spells Ngô Quyền's ward "Đổng Quốc Bình"; the province prints "Đồng" (kept).
COMMUNE_EXTRA_ALIASES = {"Phường Đồng Quốc Bình": ("Phường Đổng Quốc Bình",)}

# --- era 2 (from 2025-07-01) ---------------------------------------------------------

# (code, name, aliases); aliases are the abbreviations the era-1 names already had.
DEPARTMENTS_2025 = (
    ("HP25-SO-NOIVU", "Sở Nội vụ", ()),
    ("HP25-SO-TUPHAP", "Sở Tư pháp", ("Sở Tư Pháp",)),
    ("HP25-SO-TAICHINH", "Sở Tài chính", ()),
    ("HP25-SO-CONGTHUONG", "Sở Công Thương", ()),
    ("HP25-SO-NNMT", "Sở Nông nghiệp và Môi trường", ("Sở NN&MT",)),
    ("HP25-SO-XAYDUNG", "Sở Xây dựng", ()),
    ("HP25-SO-KHCN", "Sở Khoa học và Công nghệ", ("Sở KH&CN",)),
    ("HP25-SO-GDDT", "Sở Giáo dục và Đào tạo", ("Sở GD&ĐT",)),
    ("HP25-SO-YTE", "Sở Y tế", ()),
    ("HP25-SO-VHTTDL", "Sở Văn hóa, Thể thao và Du lịch", ("Sở Văn hóa Thể thao và Du lịch",)),
    ("HP25-SO-NGOAIVU", "Sở Ngoại vụ", ()),
    ("HP25-BQLKKT", "Ban Quản lý Khu kinh tế Hải Phòng", ("Ban quản lý khu kinh tế", "BQL KKT")),
)

# Era-1 department -> the era-2 departments that took over its work (see the docstring).
DEPARTMENT_SUCCESSORS = {
    "HP-BQLKKT": ("HP25-BQLKKT",),
    "HP-SO-CONGTHUONG": ("HP25-SO-CONGTHUONG",),
    "HP-SO-DULICH": ("HP25-SO-VHTTDL",),
    "HP-SO-GTVT": ("HP25-SO-XAYDUNG",),
    "HP-SO-GDDT": ("HP25-SO-GDDT",),
    "HP-SO-KHCN": ("HP25-SO-KHCN",),
    "HP-SO-LDTBXH": ("HP25-SO-NOIVU", "HP25-SO-YTE", "HP25-SO-GDDT"),
    "HP-SO-NGOAIVU": ("HP25-SO-NGOAIVU",),
    "HP-SO-NNPTNT": ("HP25-SO-NNMT",),
    "HP-SO-NOIVU": ("HP25-SO-NOIVU",),
    "HP-SO-TTTT": ("HP25-SO-KHCN", "HP25-SO-VHTTDL"),
    "HP-SO-TAICHINH": ("HP25-SO-TAICHINH",),
    "HP-SO-VHTT": ("HP25-SO-VHTTDL",),
    "HP-SO-XAYDUNG": ("HP25-SO-XAYDUNG",),
    "HP-SO-YTE": ("HP25-SO-YTE",),
    "HP-SO-TUPHAP": ("HP25-SO-TUPHAP",),
    "HP-SO-TNMT": ("HP25-SO-NNMT",),
    "HP-SO-KHDT": ("HP25-SO-TAICHINH",),
}

# The 114 units of resolution 1669/NQ-UBTVQH15, in its order: (code, name, sources).
# Sources: "<era-1 district GSO>: <2025 units, bare names>; ..." (Hải Phòng side only).
COMMUNES_2025 = (
    ("11560", "Phường Thủy Nguyên", "311: Dương Quan, Thủy Đường, Hoa Động, An Lư, Thủy Hà"),
    ("11557", "Phường Thiên Hương", "311: Thiên Hương, Hoàng Lâm, Lê Hồng Phong, Hoa Động"),
    ("11533", "Phường Hòa Bình", "311: Hòa Bình, An Lư, Thủy Hà"),
    ("11542", "Phường Nam Triệu", "311: Nam Triệu Giang, Lập Lễ, Tam Hưng"),
    ("11473", "Phường Bạch Đằng", "311: Minh Đức, Bạch Đằng, Phạm Ngũ Lão"),
    ("11488", "Phường Lưu Kiếm", "311: Trần Hưng Đạo, Lưu Kiếm, Liên Xuân, Quang Trung"),
    ("11506", "Phường Lê Ích Mộc", "311: Quảng Thanh, Lê Hồng Phong, Quang Trung"),
    ("11311", "Phường Hồng Bàng",
     "303: Hoàng Văn Thụ, Minh Khai, Phan Bội Châu, Thượng Lý, Sở Dầu, Hùng Vương; 304: Gia Viên"),
    ("11602", "Phường Hồng An",
     "303: Quán Toan; 312: An Hồng, An Hưng, Đại Bản, Lê Thiện, Tân Tiến"),
    ("11329", "Phường Ngô Quyền", "304: Máy Chai, Vạn Mỹ, Cầu Tre, Gia Viên, Đông Khê"),
    ("11359", "Phường Gia Viên", "304: Đằng Giang, Cầu Đất, Lạch Tray, Gia Viên, Đông Khê"),
    ("11383", "Phường Lê Chân", "305: Hàng Kênh, Dư Hàng Kênh, Kênh Dương, An Biên,"
     " Trần Nguyên Hãn, Vĩnh Niệm; 304: Cầu Đất, Lạch Tray"),
    ("11407", "Phường An Biên", "305: An Dương, An Biên, Trần Nguyên Hãn, Vĩnh Niệm"),
    ("11413", "Phường Hải An",
     "306: Cát Bi, Đằng Lâm, Thành Tô, Đằng Hải, Tràng Cát, Nam Hải, Đông Hải 2"),
    ("11411", "Phường Đông Hải", "306: Đông Hải 1, Đông Hải 2, Nam Hải"),
    ("11443", "Phường Kiến An", "307: Nam Sơn, Đồng Hòa, Bắc Sơn, Trần Thành Ngọ, Văn Đẩu"),
    ("11446", "Phường Phù Liễn", "307: Bắc Hà, Ngọc Sơn, Nam Sơn, Đồng Hòa, Bắc Sơn,"
     " Trần Thành Ngọ, Văn Đẩu; 313: Trường Sơn"),
    ("11737", "Phường Nam Đồ Sơn", "308: Minh Đức, Bàng La, Hợp Đức, Vạn Hương, Ngọc Xuyên"),
    ("11455", "Phường Đồ Sơn", "308: Hải Sơn, Vạn Hương, Ngọc Xuyên; 309: Tân Thành"),
    ("11689", "Phường Hưng Đạo", "309: Đa Phúc, Hưng Đạo, Anh Dũng, Hải Thành"),
    ("11692", "Phường Dương Kinh", "309: Hòa Nghĩa, Tân Thành, Anh Dũng, Hải Thành"),
    ("11581", "Phường An Dương", "312: Nam Sơn, An Hải, Lê Lợi, Đồng Thái, Tân Tiến, An Hưng"),
    ("11617", "Phường An Hải", "312: An Đồng, Hồng Thái, Lê Lợi, An Hải, Đồng Thái"),
    ("11593", "Phường An Phong", "312: An Hòa, Hồng Phong, Đại Bản, Lê Thiện, Tân Tiến, Lê Lợi"),
    ("10525", "Phường Hải Dương", ""),
    ("10532", "Phường Lê Thanh Nghị", ""),
    ("10543", "Phường Việt Hòa", ""),
    ("10507", "Phường Thành Đông", ""),
    ("10837", "Phường Nam Đồng", ""),
    ("10537", "Phường Tân Hưng", ""),
    ("11002", "Phường Thạch Khôi", ""),
    ("10891", "Phường Tứ Minh", ""),
    ("10660", "Phường Ái Quốc", ""),
    ("10549", "Phường Chu Văn An", ""),
    ("10546", "Phường Chí Linh", ""),
    ("10570", "Phường Trần Hưng Đạo", ""),
    ("10552", "Phường Nguyễn Trãi", ""),
    ("10573", "Phường Trần Nhân Tông", ""),
    ("10603", "Phường Lê Đại Hành", ""),
    ("10675", "Phường Kinh Môn", ""),
    ("10744", "Phường Nguyễn Đại Năng", ""),
    ("10729", "Phường Trần Liễu", ""),
    ("10678", "Phường Bắc An Phụ", ""),
    ("10726", "Phường Phạm Sư Mạnh", ""),
    ("10714", "Phường Nhị Chiểu", ""),
    ("11674", "Xã An Hưng", "313: An Thái, An Thọ, Chiến Thắng"),
    ("11668", "Xã An Khánh", "313: Tân Viên, Mỹ Đức, Thái Sơn"),
    ("11647", "Xã An Quang", "313: Quốc Tuấn, Quang Trung, Quang Hưng"),
    ("11635", "Xã An Trường", "313: Bát Trang, Trường Thọ, Trường Thành"),
    ("11629", "Xã An Lão", "313: An Lão, An Thắng, Tân Dân, An Tiến, Trường Sơn, Thái Sơn"),
    ("11680", "Xã Kiến Thụy",
     "314: Núi Đối, Thanh Sơn, Thuận Thiên, Hữu Bằng, Kiến Hưng[Thụy Hương]"),
    ("11725", "Xã Kiến Minh", "314: Minh Tân, Đại Đồng, Đông Phương"),
    ("11749", "Xã Kiến Hải", "314: Tân Phong, Đại Hợp, Tú Sơn, Đoàn Xá"),
    ("11728", "Xã Kiến Hưng", "314: Tân Trào, Kiến Hưng[Đại Hà+Ngũ Đoan], Đoàn Xá"),
    ("11713", "Xã Nghi Dương", "314: Ngũ Phúc, Kiến Quốc, Du Lễ"),
    ("11761", "Xã Quyết Thắng", "315: Đại Thắng, Tiên Cường, Tự Cường"),
    ("11755", "Xã Tiên Lãng", "315: Tiên Lãng, Quyết Tiến, Tiên Thanh, Khởi Nghĩa"),
    ("11779", "Xã Tân Minh", "315: Cấp Tiến, Kiến Thiết, Đoàn Lập, Tân Minh"),
    ("11791", "Xã Tiên Minh", "315: Tiên Thắng, Tiên Minh, Tân Minh"),
    ("11806", "Xã Chấn Hưng", "315: Nam Hưng, Bắc Hưng, Đông Hưng, Tây Hưng"),
    ("11809", "Xã Hùng Thắng", "315: Hùng Thắng, Vinh Quang"),
    ("11824", "Xã Vĩnh Bảo", "316: Vĩnh Bảo, Vĩnh Hưng, Tân Hưng, Tân Liên"),
    ("11911", "Xã Nguyễn Bỉnh Khiêm", "316: Trấn Dương, Hòa Bình, Lý Học"),
    ("11887", "Xã Vĩnh Am", "316: Tam Cường, Cao Minh, Liên Am"),
    ("11875", "Xã Vĩnh Hải", "316: Tiền Phong, Vĩnh Hải"),
    ("11848", "Xã Vĩnh Hòa", "316: Vĩnh Hòa, Hùng Tiến"),
    ("11836", "Xã Vĩnh Thịnh", "316: Thắng Thủy, Trung Lập, Việt Tiến"),
    ("11842", "Xã Vĩnh Thuận", "316: Vĩnh An, Giang Biên, Dũng Tiến"),
    ("11503", "Xã Việt Khê", "311: Ninh Sơn, Liên Xuân"),
    ("10705", "Xã Nam An Phụ", ""),
    ("10606", "Xã Nam Sách", ""),
    ("10642", "Xã Thái Tân", ""),
    ("10633", "Xã Trần Phú", ""),
    ("10615", "Xã Hợp Tiến", ""),
    ("10645", "Xã An Phú", ""),
    ("10813", "Xã Thanh Hà", ""),
    ("10846", "Xã Hà Tây", ""),
    ("10816", "Xã Hà Bắc", ""),
    ("10843", "Xã Hà Nam", ""),
    ("10882", "Xã Hà Đông", ""),
    ("10930", "Xã Mao Điền", ""),
    ("10903", "Xã Cẩm Giàng", ""),
    ("10888", "Xã Cẩm Giang", ""),
    ("10909", "Xã Tuệ Tĩnh", ""),
    ("10945", "Xã Kẻ Sặt", ""),
    ("10966", "Xã Bình Giang", ""),
    ("10972", "Xã Đường An", ""),
    ("10993", "Xã Thượng Hồng", ""),
    ("10999", "Xã Gia Lộc", ""),
    ("11020", "Xã Yết Kiêu", ""),
    ("11050", "Xã Gia Phúc", ""),
    ("11065", "Xã Trường Tân", ""),
    ("11074", "Xã Tứ Kỳ", ""),
    ("11113", "Xã Tân Kỳ", ""),
    ("11086", "Xã Đại Sơn", ""),
    ("11131", "Xã Chí Minh", ""),
    ("11140", "Xã Lạc Phượng", ""),
    ("11146", "Xã Nguyên Giáp", ""),
    ("11203", "Xã Ninh Giang", ""),
    ("11164", "Xã Vĩnh Lại", ""),
    ("11224", "Xã Khúc Thừa Dụ", ""),
    ("11167", "Xã Tân An", ""),
    ("11218", "Xã Hồng Châu", ""),
    ("11239", "Xã Thanh Miện", ""),
    ("11254", "Xã Bắc Thanh Miện", ""),
    ("11257", "Xã Hải Hưng", ""),
    ("11242", "Xã Nguyễn Lương Bằng", ""),
    ("11284", "Xã Nam Thanh Miện", ""),
    ("10750", "Xã Phú Thái", ""),
    ("10756", "Xã Lai Khê", ""),
    ("10792", "Xã An Thành", ""),
    ("10804", "Xã Kim Thành", ""),
    ("11914", "Đặc khu Cát Hải", "317: Cát Hải, Cát Bà, Đồng Bài, Hoàng Châu, Nghĩa Lộ, Văn Phong,"
     " Gia Luận, Hiền Hào, Phù Long, Trân Châu, Việt Hải, Xuân Đám"),
    ("11948", "Đặc khu Bạch Long Vĩ", "318:"),
)  # fmt: skip

# 2025 unit "<district>: <bare name>" -> era-1 communes known to lie in it, where it
# merged others on 2025-01-01 (resolution 1232) or has a name era 1 does not have.
MERGED_2025 = {
    "303: Thượng Lý": ("Thượng Lý", "Hạ Lý", "Trại Chuối"),
    "305: Trần Nguyên Hãn": ("Trần Nguyên Hãn", "Hồ Nam", "Dư Hàng"),
    "305: Hàng Kênh": ("Hàng Kênh", "Trại Cau", "Đông Hải"),
    "305: An Dương": ("An Dương", "Niệm Nghĩa", "Nghĩa Xá"),
    "305: An Biên": ("An Biên", "Lam Sơn", "Cát Dài"),
    "312: An Hải": ("Đặng Cương",),
    "312: Lê Lợi": ("Lê Lợi", "An Dương"),
    "316: Tam Cường": ("Tam Cường", "Cổ Am", "Vĩnh Tiến"),
    "316: Vĩnh Hải": ("Hưng Nhân", "Thanh Lương", "Cộng Hiền"),
}

# 2025 units whose make-up in era-1 communes no public source gave (see the docstring).
UNKNOWN_2025 = frozenset(
    {
        *(f"311: {n}" for n in ("Thủy Hà", "Hoàng Lâm", "Lê Hồng Phong", "Nam Triệu Giang")),
        *(f"311: {n}" for n in ("Bạch Đằng", "Phạm Ngũ Lão", "Trần Hưng Đạo", "Liên Xuân")),
        *(f"311: {n}" for n in ("Quang Trung", "Ninh Sơn")),
        *("307: Bắc Hà", "315: Tân Minh", "316: Vĩnh Hưng", "316: Vĩnh Hòa"),
    }
)

_ITEM = re.compile(r"^(?P<name>[^\[\]]+?)(?:\[(?P<part>[^\[\]]+)\])?$")
_SUFFIX = re.compile(r" \([^()]*\)$")


def _read(name: str) -> list[dict[str, str]]:
    with (REFERENCE / name).open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _district_gso(printed: str) -> str:
    """Return the GSO code of a printed district name ("UBND huyện Kiên Thụy")."""
    bare = normalize_name(printed).split(" ", 1)[1]
    for wrong, right in DISTRICT_FIXES.items():
        if bare == normalize_name(wrong):
            bare = normalize_name(right)
    for gso, (_, name) in DISTRICTS.items():
        if normalize_name(name) == bare:
            return gso
    raise SystemExit(f"unknown district {printed!r}; add it to DISTRICTS or DISTRICT_FIXES")


def _aliases(name: str, printed: list[str]) -> str:
    return "|".join(dict.fromkeys(p for p in printed if p != name))


def _bare(name: str) -> str:
    """Comparison key of a commune name without its prefix and "(District)" suffix."""
    return ADMIN_PREFIX.sub("", _SUFFIX.sub("", normalize_name(name)), count=1)


def link_2025(old: dict[str, list[tuple[str, str]]]) -> tuple[dict[str, list[str]], set[str]]:
    """Return (era-1 code -> era-2 successor codes, 2025 units of unknown make-up).

    Args:
        old: era-1 communes per district GSO code, as (code, official name).
    """
    index: dict[tuple[str, str], str] = {}
    for gso, rows in old.items():
        for code, name in rows:
            if (gso, _bare(name)) in index:
                raise SystemExit(f"two communes named {name!r} in district {gso}")
            index[gso, _bare(name)] = code

    def codes(gso: str, names: tuple[str, ...] | list[str]) -> list[str]:
        missing = [n for n in names if (gso, _bare(n)) not in index]
        if missing:
            raise SystemExit(f"no era-1 commune {missing} in district {gso}")
        return [index[gso, _bare(n)] for n in names]

    successors: dict[str, list[str]] = {}
    unknown: set[str] = set()
    for new_code, _name, spec in COMMUNES_2025:
        for group in filter(None, (g.strip() for g in spec.split(";"))):
            gso, _, items = group.partition(":")
            successors.setdefault(f"HP-Q-{gso}", []).append(new_code)
            for item in filter(None, (i.strip() for i in items.split(","))):
                match = _ITEM.match(item)
                if match is None:
                    raise SystemExit(f"bad item {item!r} of {new_code}")
                key = f"{gso}: {match['name']}"
                if match["part"]:
                    found = codes(gso, match["part"].split("+"))
                elif key in MERGED_2025:
                    found = codes(gso, MERGED_2025[key])
                elif (gso, _bare(match["name"])) in index:
                    found = codes(gso, [match["name"]])
                else:
                    found = []
                    unknown.add(key)
                for code in found:
                    successors.setdefault(code, []).append(new_code)
    return {k: list(dict.fromkeys(v)) for k, v in successors.items()}, unknown


def build() -> str:
    """Return the registry CSV text."""
    digitization, online = _read("digitization.csv"), _read("online-rates.csv")
    printed: dict[str, list[str]] = {}  # code -> printed spellings, first seen first
    departments: list[str] = []
    communes: dict[str, list[tuple[str, str]]] = {gso: [] for gso in DISTRICTS}
    for row in digitization:
        level, unit = row["level"], row["unit_name"]
        if level == "department":
            departments.append(unit)
            printed.setdefault(DEPARTMENT_CODES[unit], []).append(unit)
        elif level == "district":
            printed.setdefault(f"HP-Q-{_district_gso(unit)}", []).append(unit)
        else:
            gso = _district_gso(row["district_as_printed"])
            printed.setdefault(f"HP-Q-{gso}", []).append(row["district_as_printed"])
            code = f"HP-Q-{gso}-{len(communes[gso]) + 1:02d}"
            communes[gso].append((code, unit))
            printed.setdefault(code, []).append(unit)
    for row in online:
        unit = row["unit_name"]
        if row["table_level"] == "department":
            printed.setdefault(DEPARTMENT_CODES[unit], []).append(unit)
        else:
            printed.setdefault(f"HP-Q-{_district_gso(unit)}", []).append(unit)
    official = {gso: [(c, FIXES.get(u, u)) for c, u in rows] for gso, rows in communes.items()}
    successors, unknown = link_2025(official)
    if unknown != UNKNOWN_2025:
        raise SystemExit(f"2025 units of unknown make-up changed: {sorted(unknown ^ UNKNOWN_2025)}")

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    for unit in departments:
        code = DEPARTMENT_CODES[unit]
        spellings = printed[code] + list(EXTRA_ALIASES.get(code, ()))
        then = "|".join(DEPARTMENT_SUCCESSORS.get(code, ()))
        writer.writerow(
            [code, unit, "department", "", "", VALID_TO, _aliases(unit, spellings), then]
        )
    for gso, (kind, bare) in DISTRICTS.items():
        code, name = f"HP-Q-{gso}", f"Ủy ban nhân dân {kind} {bare}"
        cells = [code, name, "district", "", "", VALID_TO, _aliases(name, printed.get(code, []))]
        writer.writerow([*cells, "|".join(successors.get(code, ()))])
    for gso, rows in communes.items():
        for code, unit in rows:
            name = FIXES.get(unit, unit)
            spellings = printed[code] + list(COMMUNE_EXTRA_ALIASES.get(unit, ()))
            cells = [code, name, "commune", f"HP-Q-{gso}", "", VALID_TO, _aliases(name, spellings)]
            writer.writerow([*cells, "|".join(successors.get(code, ()))])
    for code, name, aliases in DEPARTMENTS_2025:
        writer.writerow([code, name, "department", "", ERA2_FROM, "", "|".join(aliases), ""])
    for code, name, _spec in COMMUNES_2025:
        writer.writerow([code, name, "commune", "", ERA2_FROM, "", "", ""])
    return out.getvalue()


def _check(registry: UnitRegistry) -> dict[str, dict[str, int]]:
    """Return unit counts per era and level; exit if they are not the expected ones."""
    days = {"until 2025-06-30": date.fromisoformat(VALID_TO), "from": date.fromisoformat(ERA2_FROM)}
    counts = {
        era: {
            lvl: len(registry.units_in(day, day, lvl))
            for lvl in ("department", "district", "commune")
        }
        for era, day in days.items()
    }
    expected = {
        "until 2025-06-30": {"department": 19, "district": 15, "commune": 217},
        "from": {"department": 12, "district": 0, "commune": 114},
    }
    new = registry.units_in(days["from"], days["from"], "commune")
    kinds = {
        p: sum(1 for u in new if u.name.startswith(p + " ")) for p in ("Xã", "Phường", "Đặc khu")
    }
    if counts != expected or kinds != {"Xã": 67, "Phường": 45, "Đặc khu": 2}:
        raise SystemExit(f"unexpected unit counts {counts}, {kinds}")
    return counts


def main(argv: list[str]) -> int:
    """Write (or with ``--check``, compare) the data file; return the exit status."""
    text = build()
    registry = UnitRegistry.from_text(text, source="<built>")
    counts = _check(registry)
    if "--check" in argv:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is stale; run tools/build_units_haiphong.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8", newline="")
    links = sum(len(u.successor_codes) for u in registry)
    print(f"wrote {OUTPUT} ({len(registry)} units: {counts}; {links} successor links)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
