"""Project-wide test setup.

CI runs ``pytest -n 2`` on 2 cores: one torch thread per worker avoids oversubscription, which
makes tiny-model tests many times slower on a shared CPU.
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

torch.set_num_threads(1)


def pytest_configure(config) -> None:
    """SB3's ``model.learn`` makes a ``SB3-<date>`` log folder in the system temp folder even
    when it logs nothing; keep those inside pytest's own temporary folder."""
    if "SB3_LOGDIR" not in os.environ:
        import tempfile

        config._sb3_logdir = tempfile.mkdtemp(prefix="spgg-tests-sb3-")
        os.environ["SB3_LOGDIR"] = config._sb3_logdir


def pytest_unconfigure(config) -> None:
    if getattr(config, "_sb3_logdir", None):
        import shutil

        shutil.rmtree(config._sb3_logdir, ignore_errors=True)
        os.environ.pop("SB3_LOGDIR", None)
