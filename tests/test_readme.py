"""The README's first Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_plays_one_scored_episode(capsys) -> None:
    code = re.search(r"```python\n(.*?)\n```\n", README.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    info = namespace["info"]
    assert info["score"] == 0.0  # "return None" fails the HumanEval tests
    assert set(info["reward_components"]) >= {"cost", "synergy", "public_share", "penalty"}
    assert capsys.readouterr().out.strip()
