"""The game spec: one frozen, validated, serialisable value that defines a text game.

Everything that changes what a game *is* lives here, once: the task and its options, the split
episodes draw from, the number of agents, what each agent observes, the reward mechanism and its
parameters, the effort budget and how tokens are counted, the prompt style, and the longest
contribution. The env is built from a spec (``spgg_env.aec_env(spec)``; keyword arguments build
one), and every config, checkpoint and result file embeds ``spec.to_dict()``: a trained policy
loaded under another spec is refused with the differing fields named (:meth:`GameSpec.require`).

Normalisation makes equal games equal specs: the split defaults to the task's first, the
mechanism's parameters are stored in full (its defaults filled in), and a simultaneous mechanism
(classic PGG) has ``observation="none"``, because nobody sees a predecessor there.

Effort counting (``token_counting``):

* ``"approx"``: words plus punctuation marks of the contribution (``env.approx_token_count``);
  needs no model, identical on every backend.
* ``"model"``: the acting model's own tokens. Whoever steps the env passes the model's counter
  (the episode engine passes each agent's backend's ``count_tokens``); an env built without one
  refuses to start rather than silently counting something else.

The effort of agent i is ``e_i = min(1, tokens_i / max_tokens)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

from spgg_env.mechanism import make_mechanism
from spgg_env.prompts import PROMPT_STYLES
from spgg_env.tasks import TASKS, Task, task_class

OBSERVATIONS = ("partial", "full", "none")
TOKEN_COUNTING = ("approx", "model")
SCHEMA = "spgg-game-spec/1"


def _doc(text: str, *, flag: str | None = None, metavar: str | None = None) -> dict[str, Any]:
    """Field metadata: the help text of the field's command-line flag."""
    return {"help": text, "flag": flag, "metavar": metavar}


@dataclass(frozen=True)
class GameSpec:
    """A text game (see the module docstring). Build one with keywords, :meth:`from_dict`
    (a config file's mapping) or :meth:`from_args` (the command line)."""

    task: str = field(default="arith", metadata=_doc(
        "task: arith, humaneval, mmlu, gsm8k or summeval"))
    task_options: Mapping[str, Any] = field(default_factory=dict, metadata=_doc(
        "task constructor option, repeatable (e.g. difficulty=easy, data_path=/data/gsm8k); "
        "values are read as YAML scalars", flag="--task-option", metavar="KEY=VALUE"))
    split: str | None = field(default=None, metadata=_doc(
        "split episodes draw from (default: the task's first, usually test)"))
    n_agents: int = field(default=3, metadata=_doc("number of agents, acting in turn"))
    observation: str = field(default="partial", metadata=_doc(
        "what agent i sees of its predecessors: partial (agent i-1), full (all), none"))
    mechanism: str = field(default="mac-spgg", metadata=_doc(
        "reward mechanism: mac-spgg, spgg (classic sequential) or pgg (classic simultaneous)"))
    mechanism_params: Mapping[str, float] = field(default_factory=dict, metadata=_doc(
        "mechanism parameter, repeatable (e.g. kappa=0.2, B=0.85)",
        flag="--mechanism-param", metavar="KEY=VALUE"))
    max_tokens: int = field(default=512, metadata=_doc(
        "effort budget: a contribution of this many tokens has effort 1"))
    token_counting: str = field(default="approx", metadata=_doc(
        "how effort tokens are counted: approx (words and punctuation) or model (the acting "
        "model's tokenizer)"))
    prompt_style: str = field(default="default", metadata=_doc(
        "how the task is shown: default (instruction, task, contributions, role) or compact "
        "(task and contributions only)"))
    max_action_chars: int = field(default=4000, metadata=_doc(
        "longer contributions are cut to this many characters (and flagged)"))

    # ------------------------------------------------------------ validation
    def __post_init__(self) -> None:
        cls = _task_class(self.task)
        set_ = object.__setattr__  # frozen: normalised values are stored once, here
        for name in ("task_options", "mechanism_params"):  # None reads as "no options"
            if getattr(self, name) is None:
                set_(self, name, {})
        set_(self, "task", cls.name)
        set_(self, "task_options", _frozen_options(self.task_options, cls))
        split = self.split if self.split is not None else cls.splits[0]
        if split not in cls.splits:
            raise ValueError(f"unknown split {split!r} for task {cls.name!r}; choose one of "
                             f"{list(cls.splits)}")
        set_(self, "split", split)
        for name in ("n_agents", "max_tokens", "max_action_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        _check_choice("observation", self.observation, OBSERVATIONS)
        _check_choice("token_counting", self.token_counting, TOKEN_COUNTING)
        _check_choice("prompt_style", self.prompt_style, PROMPT_STYLES)
        if isinstance(self.mechanism, str):
            mechanism = make_mechanism(self.mechanism, **dict(self.mechanism_params))
        else:  # a ready mechanism instance: its own parameters
            mechanism = make_mechanism(self.mechanism)
            if self.mechanism_params and dict(self.mechanism_params) != dataclasses.asdict(
                    mechanism):
                raise ValueError("give mechanism_params with a mechanism name, not with a "
                                 "ready mechanism instance")
        set_(self, "mechanism", mechanism.name)
        set_(self, "mechanism_params", MappingProxyType(dataclasses.asdict(mechanism)))
        if not mechanism.sequential:
            set_(self, "observation", "none")

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    # --------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready mapping (what configs, checkpoints and result files store)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["task_options"] = _plain(self.task_options)
        out["mechanism_params"] = dict(self.mechanism_params)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | GameSpec, source: str = "game spec") -> GameSpec:
        """Build from a mapping (or return a spec unchanged), naming any unknown key.

        Raises:
            ValueError: On an unknown key or an invalid value (the message names ``source``).
        """
        if isinstance(data, GameSpec):
            return data
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: a game spec must be a mapping, got {data!r:.80}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"schema"})
        if unknown:
            raise ValueError(f"{source}: unknown game spec key(s) {unknown}; valid: "
                             f"{sorted(known)}")
        try:
            return cls(**{k: v for k, v in data.items() if k != "schema"})
        except (TypeError, ValueError) as error:
            raise ValueError(f"{source}: {error}") from error

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, no spaces): the input of :meth:`fingerprint`."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), default=str)

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the canonical JSON: equal games, equal fingerprints."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    # -------------------------------------------------------------- compare
    def replace(self, **changes: Any) -> GameSpec:
        """A copy with ``changes`` applied (and validated again)."""
        return dataclasses.replace(self, **changes)

    def diff(self, other: GameSpec) -> dict[str, tuple[Any, Any]]:
        """The fields whose values differ: ``{name: (self's, other's)}``."""
        mine, theirs = self.to_dict(), other.to_dict()
        return {k: (mine[k], theirs[k]) for k in mine if mine[k] != theirs[k]}

    def require(self, other: GameSpec, what: str = "this policy") -> None:
        """Raise unless ``other`` is the same game.

        Raises:
            ValueError: Naming every differing field, e.g. when a trained policy is loaded
                under another game.
        """
        differences = self.diff(other)
        if differences:
            lines = "; ".join(f"{k}: {a!r} vs {b!r}" for k, a, b in
                              ((k, *v) for k, v in sorted(differences.items())))
            raise ValueError(f"{what} was made for another game ({lines})")

    # ----------------------------------------------------------------- build
    def make_task(self) -> Task:
        """A fresh task instance with this spec's options (loads data lazily)."""
        return task_class(self.task)(**_plain(self.task_options))

    # ------------------------------------------------------------------- CLI
    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser, **defaults: Any) -> None:
        """Add one flag per field (``--task``, ``--n-agents``, ``--task-option KEY=VALUE``...).

        Args:
            parser: Where the flags go (an argument group is made for them).
            **defaults: Defaults that differ from the spec's own (e.g. ``observation="both"``
                is not a spec value; the caller handles such flags itself).
        """
        group = parser.add_argument_group("game (the spec every result records)")
        for f in fields(cls):
            meta = f.metadata
            flag = meta.get("flag") or "--" + f.name.replace("_", "-")
            default = defaults.get(f.name, _field_default(f))
            if f.name in ("task_options", "mechanism_params"):
                group.add_argument(flag, dest=f.name, action="append", default=[],
                                   metavar=meta["metavar"], help=meta["help"])
                continue
            kind = int if f.type in ("int", int) else str
            shown = "the task's first" if default is None else default
            group.add_argument(flag, dest=f.name, type=kind, default=default,
                               help=f"{meta['help']} (default: {shown})")

    @classmethod
    def from_args(cls, args: argparse.Namespace, **overrides: Any) -> GameSpec:
        """The spec of parsed :meth:`add_arguments` flags.

        Raises:
            ValueError: On a malformed ``KEY=VALUE``, an unknown option key or a bad value.
        """
        data = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
        data["task_options"] = parse_key_values(data.get("task_options", []), "--task-option")
        data["mechanism_params"] = parse_key_values(data.get("mechanism_params", []),
                                                    "--mechanism-param")
        data.update(overrides)
        return cls.from_dict(data, source="command line")


def parse_key_values(pairs: Any, flag: str) -> dict[str, Any]:
    """``["difficulty=easy", "n_problems=50"]`` -> ``{"difficulty": "easy", "n_problems": 50}``.

    Values are read as YAML scalars (numbers, booleans, lists); a mapping passes unchanged.

    Raises:
        ValueError: If an item has no ``=`` or an empty key (the message names ``flag``).
    """
    if isinstance(pairs, Mapping):
        return dict(pairs)
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = str(pair).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{flag} needs KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError as error:
            raise ValueError(f"{flag} {pair!r}: the value does not parse ({error})") from None
    return out


# ---------------------------------------------------------------------- helpers
def _task_class(name: Any) -> type[Task]:
    if not isinstance(name, str):
        raise ValueError(f"task must be a task name (one of {sorted(TASKS)}), got {name!r}; "
                         "pass a ready Task instance to the env as task= beside the spec")
    return task_class(name)


def _frozen_options(options: Any, cls: type[Task]) -> Mapping[str, Any]:
    """Check option keys against the task's constructor; return a read-only copy."""
    if not isinstance(options, Mapping):
        raise ValueError(f"task_options must be a mapping, got {options!r:.80}")
    parameters = inspect.signature(cls.__init__).parameters
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    valid = sorted(n for n, p in parameters.items()
                   if n != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
    unknown = sorted(set(options) - set(valid))
    if unknown and not takes_any:
        raise ValueError(f"unknown option(s) {unknown} for task {cls.name!r}; valid: {valid}")
    return MappingProxyType({str(k): _plain(v) for k, v in sorted(options.items())})


def _plain(value: Any) -> Any:
    """Read-only mappings and tuples back to JSON-ready dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def _field_default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]
