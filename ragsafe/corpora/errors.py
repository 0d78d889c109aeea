"""Data errors that name the file, the record, the field and the fix."""

from __future__ import annotations

from pathlib import Path


class DataError(ValueError):
    def __init__(self, file: str | Path, record: str | None, field: str | None, problem: str,
                 *, line: int | None = None) -> None:
        self.file, self.record, self.field, self.problem, self.line = str(file), record, field, problem, line
        where = self.file + (f":{line}" if line else "")
        parts = [where]
        if record is not None:
            parts.append(f"record {record!r}")
        if field is not None:
            parts.append(f"field {field!r}")
        super().__init__(": ".join([", ".join(parts), problem]))
