"""examples/custom_learner.py: a learner written against the public PettingZoo API only."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "custom_learner.py"


def load_example():
    spec = importlib.util.spec_from_file_location("custom_learner_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_uses_only_the_public_api() -> None:
    source = EXAMPLE.read_text()
    imports = set(re.findall(r"^(?:from|import) ([\w.]+)", source, flags=re.M))
    assert imports <= {"__future__", "argparse", "collections", "numpy", "spgg_env",
                       "spgg_env.equilibrium", "spgg_env.mechanism"}, imports
    assert "unwrapped" not in source and "spgg_env._" not in source


def test_q_learners_reach_the_spne_path(capsys) -> None:
    result = load_example().main(["--episodes", "20000", "--seed", "0"])
    assert result["spne"] == [0.75, 1.0, 1.0]
    assert result["learned"] == result["spne"]
    assert "exact SPNE path" in capsys.readouterr().out


def test_short_run_is_reproducible() -> None:
    module = load_example()
    assert module.main(["--episodes", "300", "--seed", "3"]) == module.main(
        ["--episodes", "300", "--seed", "3"]
    )
