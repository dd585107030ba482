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
