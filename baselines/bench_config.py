"""A benchmark submission: one YAML file naming the method, the problems, the model and the seeds.

::

    schema: spgg-bench-config/2
    name: mmlu-debate                  # result directory name
    method: debate
    method_options: {agents: 2, rounds: 2, temperature: 0.7}
    task: mmlu                         # methods that do not play the game: task and options
    task_options: {}
    split: tiny-v1                     # a pinned split version, or one of the task's splits
    backend: {kind: transformers, model: embedded, dtype: bfloat16}
    decoding: {temperature: 0.0, max_new_tokens: 64}
    seeds: [0]
    batch_size: 16

A method that plays the text game (``spgg``, the MAC-SPGG ensembles) gives the game instead of
``task``/``task_options``: ``game:`` is a :class:`~spgg_env.spec.GameSpec` mapping (task and its
options, the split the problems come from, agents, observation, mechanism and parameters,
``max_tokens``, ``token_counting``, prompt style), stored in full in the result file. Its
``split`` is the source split of the pinned ``split`` version (``test`` for ``tiny-v1``).

Everything is checked when the file is read, before any model loads: unknown keys, the
method's name and options, the task's name and option keys, the decoding parameters.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spgg_env.agents.backend import GenerationParams
from spgg_env.baselines.methods import Method, method_class
from spgg_env.spec import GameSpec, parse_key_values
from spgg_env.tasks import TASKS, Task, task_class

CONFIG_SCHEMA = "spgg-bench-config/2"
#: Config schemas this version reads (``/1`` had no ``game``).
READABLE_SCHEMAS = ("spgg-bench-config/1", CONFIG_SCHEMA)


@dataclass(frozen=True)
class BenchConfig:
    """One submission (see the module docstring).

    Attributes:
        name: Unique submission name (the result directory's name).
        method: Method registry name (``single_agent``, ``cot``, ``self_consistency``,
            ``debate``, ``econ``, ``spgg``).
        task: Task name (``humaneval``, ``mmlu``, ``gsm8k``, ``summeval``, ``arith``); for a
            game-playing method, the game's task (give ``game`` instead).
        split: A pinned split version (``small-v1``) or one of the task's splits (``test``).
        method_options: Keyword options of the method.
        task_options: Keyword options of the task; for a game-playing method, the game's.
        game: The game a game-playing method plays (:class:`~spgg_env.spec.GameSpec`).
        backend: ``kind`` (``transformers`` or ``openai``) plus the backend's keyword
            arguments (``model``, ``revision``, ``dtype``, ``base_url``...).
        decoding: :class:`~spgg_env.agents.backend.GenerationParams` fields.
        seeds: Run seeds; each seed solves the whole split once.
        batch_size: Most LLM calls decoded together.
        bootstrap_samples: Bootstrap resamples of the confidence intervals.
        bootstrap_seed: Seed of the bootstrap generator.
        limit: Solve only the first ``limit`` problems (smoke runs; the leaderboard refuses
            such partial results).
    """

    name: str
    method: str
    task: str | None = None
    split: str = "small-v1"
    method_options: Mapping[str, Any] = field(default_factory=dict)
    task_options: Mapping[str, Any] = field(default_factory=dict)
    game: GameSpec | None = None
    backend: Mapping[str, Any] = field(
        default_factory=lambda: {"kind": "transformers", "model": "embedded"}
    )
    decoding: Mapping[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    batch_size: int = 8
    bootstrap_samples: int = 1000
    bootstrap_seed: int = 0
    limit: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalised values are stored once, here
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"config name must be a plain file name, got {self.name!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be a non-empty list of distinct ints, got {self.seeds!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size!r}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 or null, got {self.limit!r}")
        self.generation_params()  # validates the decoding fields
        if method_class(self.method).plays_game:
            if self.game is None:
                raise ValueError(f"method {self.method!r} plays the game: give `game` (a game "
                                 "spec mapping) instead of `task` and `task_options`")
            if self.task_options or (self.task is not None and self.task != self.game.task):
                raise ValueError("give the task and its options inside `game`, not beside it")
            set_(self, "game", GameSpec.from_dict(self.game, source=f"config {self.name!r} game"))
            set_(self, "task", self.game.task)
            set_(self, "task_options", dict(self.game.task_options))
        else:
            if self.game is not None:
                raise ValueError(f"method {self.method!r} does not play the game: give `task` "
                                 "and `task_options`, not `game`")
            if self.task is None:
                raise ValueError("config lacks required key(s) ['task']")
            set_(self, "task_options", dict(check_task_options(self.task, self.task_options)))
        self.make_method()  # validates the method's options (loads no model)

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BenchConfig:
        """Build from a plain mapping (as read from YAML), refusing unknown keys.

        Raises:
            ValueError: On unknown or missing keys, or bad values.
        """
        data = dict(data)
        schema = data.pop("schema", CONFIG_SCHEMA)
        if schema not in READABLE_SCHEMAS:
            raise ValueError(f"config schema {schema!r} is not supported; use {CONFIG_SCHEMA!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; valid keys: {sorted(known)}")
        missing = sorted({"name", "method"} - set(data))
        if missing:
            raise ValueError(f"config lacks required key(s) {missing}")
        if "seeds" in data:
            data["seeds"] = tuple(int(s) for s in data["seeds"])
        if data.get("game") is not None:
            data["game"] = GameSpec.from_dict(data["game"], source="config game")
        return cls(**data)

    @classmethod
    def from_yaml(cls, path: str | Path) -> BenchConfig:
        """Read a submission file.

        Raises:
            FileNotFoundError: If there is no such file.
            ValueError: If it does not parse or is not a valid submission (the message names
                the file).
        """
        import yaml

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such config file: {str(path)!r}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as error:
            raise ValueError(f"config {str(path)!r} does not parse: {error}") from None
        if not isinstance(data, Mapping):
            raise ValueError(f"config {str(path)!r} must be a YAML mapping, got {type(data)}")
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError, FileNotFoundError) as error:
            raise ValueError(f"bad config {str(path)!r}: {error}") from error

    # ------------------------------------------------------------------ writing
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (stored in result files): ``game`` for a game-playing
        method, ``task`` and ``task_options`` otherwise."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["seeds"] = list(self.seeds)
        if self.game is not None:
            out["game"] = self.game.to_dict()
            del out["task"], out["task_options"]
        else:
            del out["game"]
        return {"schema": CONFIG_SCHEMA, **json.loads(json.dumps(out))}

    def replace(self, **changes: Any) -> BenchConfig:
        """A copy with ``changes`` applied and validated (``task_options`` of a game-playing
        method go into its game)."""
        if self.game is not None and "task_options" in changes:
            game = self.game.replace(task_options=changes.pop("task_options"))
            changes["game"] = changes.get("game", game)
        data = {**self.to_dict(), **changes}
        if self.game is not None:
            data.pop("task", None)
        return BenchConfig.from_dict(data)

    # -------------------------------------------------------------------- parts
    def generation_params(self) -> GenerationParams:
        """The decoding parameters as :class:`GenerationParams`."""
        try:
            return GenerationParams(**self.decoding)
        except TypeError as error:
            valid = [f.name for f in dataclasses.fields(GenerationParams)]
            raise ValueError(
                f"bad decoding key in {dict(self.decoding)}; valid: {valid}"
            ) from error

    def make_method(self) -> Method:
        """The method with its options (and the game, for a game-playing method)."""
        options = dict(self.method_options)
        if self.game is not None:
            options["game"] = self.game
        return method_class(self.method)(**options)

    def make_task(self) -> Task:
        """The task with its options (loads its data lazily)."""
        return self.game.make_task() if self.game is not None else task_class(self.task)(
            **self.task_options)


def check_task_options(task: str, options: Mapping[str, Any]) -> Mapping[str, Any]:
    """Refuse an unknown task or an option its constructor does not take (loads no data).

    Raises:
        ValueError: Naming the task or the option keys, and the valid ones.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}")
    return GameSpec(task=task, task_options=options).task_options


def apply_task_options(config: BenchConfig, pairs: list[str]) -> BenchConfig:
    """``config`` with ``--task-option KEY=VALUE`` pairs merged over its task options."""
    if not pairs:
        return config
    extra = parse_key_values(pairs, "--task-option")
    return config.replace(task_options={**config.task_options, **extra})
