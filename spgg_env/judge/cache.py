"""The judge's score cache: a JSONL file that many processes may append to at once.

Each line is ``{"key": <sha256 hex>, "value": <JSON>}``. Writers append whole lines while
holding an exclusive lock on ``<file>.lock`` (``filelock``, an OS file lock released when the
process dies), so lines from concurrent writers never interleave and none is lost. Readers
take every complete line; a torn last line (a writer killed mid-write without the lock's
protection, e.g. a full disk) is skipped, and entries other processes appended since the last
read are picked up by :meth:`ScoreCache.refresh`, which reads only the new bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock


class ScoreCache:
    """A key -> value map kept in memory and, with ``path``, in a shared JSONL file.

    Args:
        path: The JSONL file (created with its folder when first written); ``None`` keeps the
            cache in memory only.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.entries: dict[str, Any] = {}
        self._offset = 0
        self.refresh()

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, key: str) -> bool:
        return key in self.entries

    def __getitem__(self, key: str) -> Any:
        return self.entries[key]

    def refresh(self) -> None:
        """Read the lines other writers appended since the last read (complete lines only)."""
        if self.path is None or not self.path.is_file():
            return
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1  # a line still being written stays for the next read
        for line in data[:end].splitlines():
            try:
                entry = json.loads(line)
                self.entries[entry["key"]] = entry["value"]
            except (ValueError, KeyError, TypeError):
                continue  # a damaged line: skip it, the entry is recomputed
        self._offset += end

    def update(self, fresh: Mapping[str, Any]) -> None:
        """Add entries; with a file, append them as one locked write."""
        self.entries.update(fresh)
        if self.path is None or not fresh:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lines = "".join(
            json.dumps({"key": key, "value": value}) + "\n" for key, value in fresh.items()
        )
        with FileLock(f"{self.path}.lock"):
            with self.path.open("a+b") as handle:
                if handle.tell() > 0:  # a torn last line must not swallow the first new one
                    handle.seek(handle.tell() - 1)
                    if handle.read(1) != b"\n":
                        lines = "\n" + lines
                handle.write(lines.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
