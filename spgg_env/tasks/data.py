"""Data access shared by the tasks: local JSONL files and Hugging Face datasets.

Both return plain lists of dicts in file order, so a task turns rows into problems the same way
whatever the source. Errors name the path or dataset and say how to fix them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSON Lines file (blank lines skipped), in order.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If a line is not a JSON object (the message names the line).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {str(path)!r}")
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number} is not valid JSON: {error}") from error
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number} is not a JSON object")
            rows.append(row)
    return rows


def local_split_file(path: str | os.PathLike[str], split: str) -> Path:
    """The file of ``split`` under a local data path.

    ``path`` is either a folder holding ``<split>.jsonl`` or a single JSONL file, which then
    serves every split.

    Raises:
        FileNotFoundError: If neither exists.
    """
    path = Path(path).expanduser()
    if path.is_file():
        return path
    candidate = path / f"{split}.jsonl"
    if not candidate.is_file():
        raise FileNotFoundError(
            f"data path {str(path)!r} has no {split}.jsonl; give a folder with "
            f"<split>.jsonl files or a single .jsonl file"
        )
    return candidate


def load_hf_rows(name: str, config: str | None, split: str, hint: str) -> list[dict[str, Any]]:
    """Load a Hugging Face dataset split as a list of dicts, in the dataset's order.

    Args:
        name: Dataset id on the hub (e.g. ``"openai/gsm8k"``).
        config: Its configuration name, or ``None``.
        split: Split name.
        hint: What the user can do instead when the hub cannot be reached (appended to the
            error).

    Raises:
        RuntimeError: When ``datasets`` cannot load it (offline, unknown name...), with ``hint``.
    """
    import datasets  # deferred: importing datasets costs a second

    try:
        dataset = datasets.load_dataset(name, config, split=split)
    except Exception as error:  # datasets raises many kinds; all mean "no data here"
        raise RuntimeError(
            f"could not load the Hugging Face dataset {name!r} (config {config!r}, split "
            f"{split!r}): {type(error).__name__}: {error}. {hint}"
        ) from error
    return [dict(row) for row in dataset]
