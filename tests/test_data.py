"""Hub loads fail fast offline, with advice (spgg_env.tasks.data)."""

from __future__ import annotations

import sys
import time
import types

import pytest

from spgg_env.tasks import data, make_task

#: A local port nobody listens on: the connection is refused at once.
CLOSED = "http://127.0.0.1:9"


def fake_datasets(monkeypatch, load_dataset) -> None:
    """``import datasets`` gives a stand-in whose ``load_dataset`` is ``load_dataset``."""
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))


@pytest.fixture
def no_hub(monkeypatch):
    """The hub is unreachable, and datasets must never be asked to retry it."""

    def load_dataset(*args, **kwargs):
        raise AssertionError("datasets.load_dataset was called although the hub is unreachable")

    monkeypatch.setenv("HF_ENDPOINT", CLOSED)
    for name in data.OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    fake_datasets(monkeypatch, load_dataset)


def test_an_unreachable_hub_fails_at_once_with_the_hint(no_hub):
    start = time.perf_counter()
    with pytest.raises(RuntimeError) as info:
        data.load_hf_rows("openai/gsm8k", "main", "test", hint="Use FILE instead.")
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "cannot reach the Hugging Face hub to load 'openai/gsm8k'" in message
    assert "127.0.0.1:9" in message and "Use FILE instead." in message
    assert "HF_DATASETS_OFFLINE=1" in message


def test_gsm8k_offline_names_its_environment_variable(no_hub, monkeypatch):
    monkeypatch.delenv("SPGG_GSM8K_PATH", raising=False)
    with pytest.raises(RuntimeError, match="SPGG_GSM8K_PATH"):
        make_task("gsm8k").problems("test")


def test_offline_mode_reads_the_cache_without_probing(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(data, "hub_unreachable", lambda: pytest.fail("probed the hub offline"))

    def load_dataset(name, config, split):
        raise ConnectionError(f"{name} is not in the cache")

    fake_datasets(monkeypatch, load_dataset)
    with pytest.raises(RuntimeError, match="not in the cache. Use FILE"):
        data.load_hf_rows("mteb/summeval", None, "test", hint="Use FILE.")


def test_offline_variables_are_read_as_booleans(monkeypatch):
    for name in data.OFFLINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not data.offline_requested()
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert not data.offline_requested()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert data.offline_requested()
