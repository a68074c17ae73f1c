"""The export's files: a CSV per table, one Parquet file, one XLSX workbook.

Every file is written to a temporary name and renamed into place, so a reader
(or a mail job picking up the folder) never sees half a file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

_HEADER_FILL = "1F3A5F"
_PERCENT = ("_share", "_rate", "_pct")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; on success it replaces `path`."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: Path, write: Callable[[Path], object]) -> Path:
    with atomic_path(path) as tmp:
        write(tmp)
    return path


def flat(table: pd.DataFrame) -> pd.DataFrame:
    """The table with its index as ordinary leading columns."""
    return table.reset_index() if any(name is not None for name in table.index.names) else table


def write_csvs(tables: Mapping[str, pd.DataFrame], out_dir: Path, prefix: str) -> list[Path]:
    paths = []
    for name, table in tables.items():
        with atomic_path(out_dir / f"{prefix}-{name}.csv") as tmp:
            flat(table).to_csv(tmp, index=False)
        paths.append(out_dir / f"{prefix}-{name}.csv")
    return paths


def write_parquet(table: pd.DataFrame, path: Path) -> Path:
    return write_atomic(path, lambda p: flat(table).to_parquet(p, index=False, engine="pyarrow"))


def is_percent(column: str) -> bool:
    return column.endswith(_PERCENT)


def write_xlsx(tables: Mapping[str, pd.DataFrame], about: Mapping[str, str], path: Path) -> Path:
    """One sheet per table after an `about` sheet; bold filled headers, frozen panes, number formats."""
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    def write(tmp: Path) -> None:
        with pd.ExcelWriter(tmp, engine="openpyxl") as xw:
            pd.DataFrame({"item": list(about), "value": list(about.values())}).to_excel(
                xw, sheet_name="about", index=False
            )
            for name, table in tables.items():
                flat(table).to_excel(xw, sheet_name=name[:31], index=False)
            for name, ws in xw.sheets.items():
                frame = flat(tables[name]) if name in tables else None
                for cell in ws[1]:
                    cell.font = Font(bold=True, color="FFFFFF")
                    cell.fill = PatternFill("solid", fgColor=_HEADER_FILL)
                    cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
                ws.freeze_panes = "B2"
                ws.row_dimensions[1].height = 32
                for idx, column in enumerate(ws.iter_cols(min_row=1, max_row=1), 1):
                    header = str(column[0].value)
                    letter = get_column_letter(idx)
                    ws.column_dimensions[letter].width = max(10, min(40, len(header) + 2))
                    if frame is None:
                        ws.column_dimensions[letter].width = 60 if idx == 2 else 28
                        continue
                    fmt = _number_format(header, frame)
                    if fmt is not None:
                        for (cell,) in ws.iter_rows(min_row=2, min_col=idx, max_col=idx):
                            cell.number_format = fmt

    return write_atomic(path, write)


def _number_format(header: str, frame: pd.DataFrame) -> str | None:
    if header not in frame.columns or not pd.api.types.is_numeric_dtype(frame[header]):
        return None
    if is_percent(header):
        return "0.0%"
    if pd.api.types.is_integer_dtype(frame[header]):
        return "#,##0"
    return "#,##0.00"
