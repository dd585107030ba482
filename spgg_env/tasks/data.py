"""Data access shared by the tasks: local JSONL files and Hugging Face datasets.

Both return plain lists of dicts in file order, so a task turns rows into problems the same way
whatever the source. Errors name the path or dataset and say how to fix them.

Offline, a hub load fails at once instead of retrying for tens of seconds: with
``HF_HUB_OFFLINE=1`` or ``HF_DATASETS_OFFLINE=1`` only the local Hugging Face cache is read;
otherwise the hub's host is probed first (:func:`hub_unreachable`, a few seconds at most) and
an unreachable hub is an immediate error that says which local file, environment variable or
``data_path`` to use instead (the task's ``hint``).
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

#: Environment variables that put the Hugging Face libraries offline.
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
#: The hub's address (``HF_ENDPOINT`` overrides it, as in ``huggingface_hub``).
DEFAULT_ENDPOINT = "https://huggingface.co"


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


def offline_requested() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` is set to a true value."""
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in OFFLINE_VARIABLES)


def hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the hub's host cannot be reached, or ``None`` when a TCP connection opens within
    ``timeout`` seconds (name resolution included)."""
    url = urlparse(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT)
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as error:
            outcome.append(f"{host}:{port}: {error}")

    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return outcome[0] if outcome else f"{host}:{port}: no answer within {timeout:g} s"


def load_hf_rows(name: str, config: str | None, split: str, hint: str) -> list[dict[str, Any]]:
    """Load a Hugging Face dataset split as a list of dicts, in the dataset's order.

    Args:
        name: Dataset id on the hub (e.g. ``"openai/gsm8k"``).
        config: Its configuration name, or ``None``.
        split: Split name.
        hint: What the user can do instead when the hub cannot be reached (appended to the
            error).

    Raises:
        RuntimeError: When the hub cannot be reached (found in seconds, see the module
            docstring) or ``datasets`` cannot load it (unknown name...), with ``hint``.
    """
    if not offline_requested():
        reason = hub_unreachable()
        if reason is not None:
            raise RuntimeError(
                f"cannot reach the Hugging Face hub to load {name!r} (config {config!r}, split "
                f"{split!r}): {reason}. {hint} (If the dataset is in your Hugging Face cache, "
                "set HF_DATASETS_OFFLINE=1 to read it from there.)"
            )
    import datasets  # deferred: importing datasets costs a second

    try:
        dataset = datasets.load_dataset(name, config, split=split)
    except Exception as error:  # datasets raises many kinds; all mean "no data here"
        raise RuntimeError(
            f"could not load the Hugging Face dataset {name!r} (config {config!r}, split "
            f"{split!r}): {type(error).__name__}: {error}. {hint}"
        ) from error
    return [dict(row) for row in dataset]
