"""The learner board (spgg_env.baselines.learner_board): protocol runs, files, board."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

from spgg_env.baselines import learner_board as lb
from spgg_env.baselines.learner_board import BoardConfig, board_rows, run_board
from spgg_env.cli import main as spgg
from spgg_env.equilibrium import solve
from spgg_env.mechanism import make_mechanism

DOCS = Path(__file__).resolve().parents[1] / "docs" / "learners.md"

#: Learners used as user code: the oracle plays the exact SPNE strategy (read from the solver),
#: the free rider always contributes nothing.
USER_LEARNERS = textwrap.dedent('''
    import numpy as np
    from spgg_env.equilibrium import solve

    class Oracle:
        def __init__(self, env, *, seed):
            game = env.unwrapped
            self.n, self.k = game.n_agents, game.levels
            self.eq = solve(game.mechanism, self.n, np.linspace(0, 1, self.k))

        def act(self, agent, observations, *, greedy=False):
            i = int(agent.split("_")[1])
            seen = [np.rint(np.asarray(o)[:i] * (self.k - 1)).astype(int) for o in observations]
            if self.eq.concept == "nash":
                return [self.eq.path_index[i]] * len(observations)
            return [self.eq.action(i, tuple(p)) for p in seen]

        def learn(self, episodes):
            return {}

    class FreeRider:
        def __init__(self, env, *, seed):
            pass

        def act(self, agent, observations, *, greedy=False):
            return [0] * len(observations)

        def learn(self, episodes):
            return {"episodes": float(len(episodes))}
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "user_learners.py").write_text(USER_LEARNERS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "user_learners"


def tiny(learner: str, **kwargs) -> BoardConfig:
    defaults = {"agents": (3,), "seeds": (0, 1), "episodes": 40, "checkpoints": 4}
    return BoardConfig(learner=learner, **{**defaults, **kwargs})


def test_oracle_reaches_at_the_first_checkpoint_with_the_equilibrium_welfare(user_module, tmp_path):
    _, result = run_board(tiny(f"{user_module}:Oracle"), tmp_path / "out")
    rows = board_rows([result])
    assert [(r["mechanism"], r["reached"]) for r in rows] == [
        ("mac-spgg", 2), ("spgg", 2), ("pgg", 2)]
    for row, cell in zip(rows, result["cells"], strict=True):
        assert row["episodes_to_reach"][0] == 10  # first checkpoint: 40 episodes / 4
        share = cell["equilibrium_welfare"] / cell["efficient_welfare"]
        assert row["welfare_share"][0] == pytest.approx(share)
    mac = result["cells"][0]
    eq = solve(make_mechanism("mac-spgg"), 3, np.linspace(0, 1, 4))
    assert mac["equilibrium_path"] == [2, 3, 3] == list(eq.path_index)
    assert mac["efficient_path"] == [3, 3, 3]


def test_free_riding_never_reaches_the_mac_spgg_path_but_is_the_classic_equilibrium(
    user_module, tmp_path
):
    _, result = run_board(tiny(f"{user_module}:FreeRider", agents=(3, 5)), tmp_path)
    reached = {(r["mechanism"], r["n_agents"]): r["reached"] for r in board_rows([result])}
    assert reached == {("mac-spgg", 3): 0, ("mac-spgg", 5): 0, ("spgg", 3): 2, ("spgg", 5): 2,
                       ("pgg", 3): 2, ("pgg", 5): 2}
    assert result["learner"] == "FreeRider"


def test_reached_means_reached_and_stayed():
    target = [2, 3, 3]
    curve = [[10, [2, 3, 3], 1.0], [20, [1, 3, 3], 0.0], [30, [2, 3, 3], 1.0], [40, target, 1.0]]
    assert lb._seed_summary(0, curve, target)["reached_at"] == 30
    assert lb._seed_summary(0, curve[:2], target)["reached_at"] is None
    assert lb._seed_summary(0, curve[:1], target)["reached_at"] == 10


def test_result_files_are_byte_identical_on_rerun_and_carry_config_and_provenance(tmp_path):
    config = tiny("thompson", mechanisms=("mac-spgg",), episodes=60, checkpoints=3)
    first = run_board(config, tmp_path)[0].read_bytes()
    path, result = run_board(config, tmp_path)
    assert path.read_bytes() == first
    assert result["config"]["seeds"] == [0, 1] and result["config"]["levels"] == 4
    assert {"packages", "git", "command"} <= set(result["provenance"])
    assert [s["seed"] for s in result["cells"][0]["seeds"]] == [0, 1]
    cost = json.loads((tmp_path / "thompson.cost.json").read_text())
    assert set(cost["wall_seconds"]) == {"mac-spgg/n=3"}


def test_bandits_reach_the_spne_path_and_free_ride(tmp_path):
    """Thompson bandits (contextual, vectorised over 8 seeds) on n = 3, K = 4."""
    config = BoardConfig(learner="thompson", mechanisms=("mac-spgg", "pgg"), agents=(3,),
                         episodes=3000, checkpoints=10)
    rows = board_rows([run_board(config, tmp_path)[1]])
    assert [(r["mechanism"], r["seeds"]) for r in rows] == [("mac-spgg", 8), ("pgg", 8)]
    assert all(r["reached"] >= 6 for r in rows), [(r["mechanism"], r["reached"]) for r in rows]


def test_board_files_and_fixed_colours(user_module, tmp_path):
    run_board(tiny(f"{user_module}:Oracle", name="oracle"), tmp_path / "results")
    run_board(tiny(f"{user_module}:FreeRider"), tmp_path / "results")
    paths = lb.write_board(lb.load_results([tmp_path / "results"]), tmp_path / "board")
    assert [p.name for p in paths] == ["learners.md", "learners.html", "curves.png"]
    markdown = paths[0].read_text()
    row = "| 3 | 0.67 1 1 | 0.860 | oracle | 2/2 | 10 [10, 10] | 0.860 [0.860, 0.860] | 40 |"
    assert row in markdown
    assert "FreeRider | 0/2 | - |" in markdown
    assert paths[2].stat().st_size > 10_000
    assert lb.colour("thompson") == "#2ca02c"
    assert lb.colour("oracle") == lb.colour("oracle") in lb.OTHER_COLOURS


def test_a_learner_run_in_sittings_joins_on_one_board(tmp_path):
    run_board(tiny("exp3", mechanisms=("pgg",), agents=(3,)), tmp_path / "first")
    run_board(tiny("exp3", mechanisms=("pgg",), agents=(5,), episodes=80), tmp_path / "second")
    for folders in ([tmp_path / "first", tmp_path / "second"], [tmp_path]):  # subfolders too
        rows = board_rows(lb.load_results(folders))
        assert [(r["learner"], r["n_agents"], r["budget"]) for r in rows] == [
            ("exp3", 3, 40), ("exp3", 5, 80)]


def test_load_results_refuses_duplicates_and_other_files(tmp_path):
    run_board(tiny("exp3", mechanisms=("pgg",)), tmp_path / "a")
    run_board(tiny("exp3", mechanisms=("pgg",)), tmp_path / "b")
    with pytest.raises(ValueError, match="two result files for learner 'exp3', pgg n=3"):
        lb.load_results([tmp_path / "a", tmp_path / "b"])
    (tmp_path / "other.json").write_text('{"board": "methods"}')
    with pytest.raises(ValueError, match="not a learner-board result"):
        lb.load_results([tmp_path / "other.json"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"game": "gsm8k"}, "scalar game"), ({"episodes": 3, "checkpoints": 4}, "too few"),
     ({"seeds": ()}, "seed"), ({"learner": "nope"}, "unknown learner")],
)
def test_bad_configs_name_the_problem(kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        run_board(BoardConfig(**{"learner": "ucb1", **kwargs}), tmp_path)


def test_cli_runs_a_user_learner_and_builds_the_board(user_module, tmp_path, capsys):
    results = tmp_path / "results"
    assert spgg(["learners", "run", "--learner", f"{user_module}:FreeRider", "--name", "free",
                 "--agents", "3", "--mechanisms", "pgg", "--seeds", "2", "--episodes", "8",
                 "--checkpoints", "2", "--out", str(results)]) == 0
    assert spgg(["learners", "board", str(results), "--out", str(tmp_path / "board")]) == 0
    assert "| free | 2/2 |" in (tmp_path / "board" / "learners.md").read_text()
    assert "wrote" in capsys.readouterr().out


def test_the_docs_example_learner_runs_on_the_board(tmp_path, monkeypatch):
    """docs/learners.md's own learner, exactly as printed, through the standard protocol."""
    code = re.search(r"```python\n(# my_learner\.py\n.*?)```", DOCS.read_text(), re.S).group(1)
    (tmp_path / "my_learner.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = BoardConfig(learner="my_learner:RecencyWeighted", mechanisms=("spgg", "pgg"),
                         agents=(3,), seeds=(0, 1), episodes=600, checkpoints=2)
    rows = board_rows([run_board(config, tmp_path / "out")[1]])
    assert [(r["learner"], r["reached"]) for r in rows] == [("RecencyWeighted", 2)] * 2


def test_rllib_without_the_extra_is_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "spgg_env.baselines.rllib_learner", None)
    with pytest.raises(ValueError, match=r"rllib extra"):
        lb.factory("rllib-ppo", {})
