"""The MAC-SPGG paper's learner on the episode engine: frozen LLMs, one small PPO network per
agent that picks the generation parameters of its LLM.

The LLMs are never fine-tuned. Agent i's network (:mod:`~spgg_env.agents.genparam_network`)
reads a state built from its observation alone (:mod:`~spgg_env.agents.genparam_state`: task
text, position, visible contributions) and outputs the six generation parameters
(:mod:`~spgg_env.agents.genparam_ranges`) its frozen LLM then samples with; it is trained with
PPO on agent i's mechanism reward. Works with any :class:`~spgg_env.agents.backend.Backend`.

**The learner protocol.** :class:`GenParamLearner` is a policy of the episode engine and a
learner:

* ``act(agent, observations, *, greedy=False) -> list[Request]``: for each observation, the
  state ``s``, ``z ~ pi_i(. | s)`` (the mean with ``greedy``) and a request whose params are
  the bounded map of ``z``; ``s``, ``z`` and ``log pi_i(z | s)`` travel in ``Request.meta``;
* ``learn(episodes) -> metrics``: one PPO update of every agent's network from finished
  :class:`~spgg_env.agents.episodes.Episode` objects played with ``act`` (the reward is
  ``step.reward``).

Its train loop (:meth:`GenParamLearner.train`) plays each update's ``episodes`` problems on the
engine and learns from them. Randomness derives from the run's seed and the update index
(:mod:`spgg_env.seeding`): problems (``draw_problems``), the LLMs' sampling seeds, the noise of
``z`` (one generator per update and agent, drawn in episode order: the learner's engine plays an
update's episodes as one lockstep wave) and the minibatch order, so a resumed run continues
exactly. Checkpoints embed the game spec, and an ``inference`` block that
:func:`~spgg_env.agents.genparam_inference.load_inference_policy` rebuilds the policy from.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spgg_env.agents.backend import Backend
from spgg_env.agents.checkpoint import (
    load_checkpoint,
    save_checkpoint,
    write_json,
    write_run_files,
)
from spgg_env.agents.engine import Engine, Request
from spgg_env.agents.episodes import Episode, EpisodeRunner
from spgg_env.agents.genparam_network import GenParamNetwork, update_network
from spgg_env.agents.genparam_ranges import ParamRanges
from spgg_env.agents.genparam_state import StateEncoder, TextEmbedder
from spgg_env.agents.learning import (
    LearnerConfig,
    agent_steps,
    draw_problems,
    episode_metrics,
    option,
)
from spgg_env.agents.llm_agent import LLMAgent
from spgg_env.models import resolve_dtype
from spgg_env.seeding import LEARNER, derive_seed
from spgg_env.spec import GameSpec
from spgg_env.tasks.base import Task

#: The ``format`` of checkpoints and of their ``inference`` block.
FORMAT = "spgg-genparam/2"
CHECKPOINT = "checkpoint.pt"
POLICY = "policy.pt"
#: The engine key of the frozen LLM's backend.
BACKEND = "model"


def default_game() -> GameSpec:
    """The learner's default game: arith, full observation, effort in the model's tokens."""
    return GameSpec(task="arith", observation="full", max_tokens=192, token_counting="model")


@dataclass
class GenParamConfig(LearnerConfig):
    """A run of the learner (saved in checkpoints and ``config.json``); the PPO settings
    default to the paper's."""

    game: GameSpec = option(default_game, "the game trained on")
    model: str = option("embedded", "the frozen LLM: transformers folder, hub id or 'embedded' "
                        "(SmolLM2-135M-Instruct, offline); it also embeds the states")
    updates: int = option(20, "PPO updates of the run")
    episodes: int = option(8, "episodes per update")
    batch_size: int = option(16, "generations decoded together")
    lr: float = option(5e-4, "Adam learning rate")
    clip: float = option(0.2, "PPO ratio clip epsilon")
    epochs: int = option(4, "most passes over each agent's batch per update")
    entropy_coef: float = option(0.02, "entropy bonus coefficient c_H")
    target_kl: float = option(0.015, "stop an update's epochs once the approximate KL exceeds this")
    value_coef: float = option(0.5, "value loss coefficient c_v")
    minibatch_size: int = option(16, "episodes per gradient step")
    max_grad_norm: float = option(0.5, "gradient norm clip")
    hidden: int = option(64, "width of the network's two tanh layers")
    init_log_std: float = option(-0.5, "initial log standard deviation of z")
    holdout: list[str] = option(lambda: ["tiny-v1", "small-v1"],
                                "pinned split versions whose problems are kept out of training")
    system_prompt: str | None = option(None, "system message sent before each observation "
                                             "(default: none)")
    threads: int | None = option(None, "torch CPU threads (default: torch's choice; 1 on a busy "
                                       "machine)")
    device: str = option("auto", "where the LLM, the embedder and the networks run: auto, cpu, "
                         "cuda...")
    dtype: str = option("auto", "the frozen LLM's dtype: auto (bfloat16 on CUDA and on CPUs with "
                                "native bf16, else float32), float32 or bfloat16")
    seed: int = option(0, "root seed of every random stream of the run")
    out: str = option("runs/genparam", "output folder (checkpoint, policy.pt, history, logs)")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require_positive(("updates", "episodes", "batch_size", "epochs", "minibatch_size",
                               "hidden"))
        resolve_dtype(self.dtype, torch.device("cpu"))  # names an unknown dtype
        for name in ("lr", "clip", "target_kl"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        self.holdout = list(self.holdout)


def training_uids(task: Task, split: str, holdout: Sequence[str]) -> list[str] | None:
    """The uids of ``split`` minus those pinned in the ``holdout`` split versions that were
    drawn from ``split``; ``None`` when nothing is held out (train on the whole split)."""
    from spgg_env.splits import pinned_splits

    held: set[str] = set()
    for version in holdout:
        entry = pinned_splits(version).get("tasks", {}).get(task.name)
        if entry is not None and entry["source_split"] == split:
            held |= set(entry["uids"])
    if not held:
        return None
    return [p.uid for p in task.problems(split) if p.uid not in held]


class GenParamLearner:
    """One :class:`GenParamNetwork` per agent, acting and learning on the episode engine.

    Args:
        config: The run (game, PPO settings, seed, output folder...).
        backend: The frozen LLM's backend (any); its ``count_tokens`` measures the visible
            context.
        embedder: Frozen text embedder (default: :class:`TextEmbedder` on the embedded model).
        ranges: Parameter ranges and initial values (default: ``max_new_tokens`` over
            ``[16, game.max_tokens]``).
        train_uids: Problems to train on (uids of the game's split); ``None``: the whole split.
            Use it to keep benchmark problems out of training.
        embedder_source: How to rebuild ``embedder`` at inference (``model``, ``dtype``,
            ``max_length``), stored in checkpoints; derived for the default embedder.
        task: A ready instance of the game's task (default: built from the spec).
    """

    def __init__(
        self,
        config: GenParamConfig,
        backend: Backend,
        embedder: Any = None,
        *,
        ranges: ParamRanges | None = None,
        train_uids: Sequence[str] | None = None,
        embedder_source: Mapping[str, Any] | None = None,
        task: Task | None = None,
    ) -> None:
        from spgg_env.models import resolve_device

        self.config = config
        if config.threads:
            torch.set_num_threads(config.threads)
        game = config.game
        self.backend = backend
        self.n_agents = game.n_agents
        self.ranges = ranges or ParamRanges.for_budget(game.max_tokens)
        if embedder is None:
            embedder = TextEmbedder()
            embedder_source = {"model": "embedded", "dtype": "float32",
                               "max_length": embedder.max_length}
        self.embedder_source = dict(embedder_source) if embedder_source else None
        self.encoder = StateEncoder(embedder, self.n_agents, game.max_tokens,
                                    backend.count_tokens)
        torch.manual_seed(config.seed)  # the networks' initial weights
        self.device = resolve_device(config.device)
        self.networks = nn.ModuleList(
            GenParamNetwork(self.encoder.dim, self.ranges, config.hidden, config.init_log_std)
            for _ in range(self.n_agents)
        ).to(self.device)
        self.optimizers = [torch.optim.Adam(n.parameters(), lr=config.lr) for n in self.networks]
        self.agents = {f"agent_{i}": LLMAgent(f"agent_{i}", backend,
                                              system_prompt=config.system_prompt or "",
                                              n_agents=self.n_agents)
                       for i in range(self.n_agents)}
        # one lockstep wave per update: act() is called in episode order (the z noise order)
        engine = Engine({BACKEND: backend}, max_batch=config.batch_size, schedule="lockstep",
                        max_programs=config.episodes, seed=config.seed)
        self.runner = EpisodeRunner(game, self, engine, task=task)
        split = [p.uid for p in self.runner.task.problems(game.split)]
        self.train_uids = list(train_uids) if train_uids is not None else None
        if self.train_uids == []:
            raise ValueError("train_uids is empty: give at least one problem uid, or None")
        unknown = set(self.train_uids or ()) - set(split)
        if unknown:
            raise ValueError(f"{len(unknown)} train_uids are not in split {game.split!r} of "
                             f"{game.task!r}, e.g. {sorted(unknown)[:3]}")
        self.pool = self.train_uids if self.train_uids is not None else split
        self.update = 0
        self.history: list[dict[str, Any]] = []
        self._noise: dict[tuple[int, int], torch.Generator] = {}

    @classmethod
    def from_config(cls, config: GenParamConfig,
                    train_uids: Sequence[str] | None = None) -> GenParamLearner:
        """A learner on a local transformers model (``config.model``; default the embedded
        one). The state embedder reuses the backend's frozen transformer body, so one model is
        loaded; ``device`` places the model, the embedder and the networks."""
        from spgg_env.agents.transformers_backend import TransformersBackend

        backend = TransformersBackend(config.model, seed=config.seed, device=config.device,
                                      dtype=config.dtype)
        embedder = TextEmbedder(backend.model.base_model, backend.tokenizer)
        source = {"model": str(config.model), "dtype": str(backend.dtype).removeprefix("torch."),
                  "max_length": embedder.max_length}
        return cls(config, backend, embedder, train_uids=train_uids, embedder_source=source)

    # -- the learner protocol
    def act(self, agent: str, observations: Sequence[Mapping[str, Any]], *,
            greedy: bool = False) -> list[Request]:
        """Agent ``agent``'s request for each observation, its params chosen by its network
        (sampled, or the mean with ``greedy``); ``meta`` holds ``state``, ``z``, ``log_prob``."""
        position = int(agent.rsplit("_", 1)[1])
        states = self.encoder.observations(observations).to(self.device)
        z, log_probs, _ = self.networks[position].act(
            states, None if greedy else self._generator(position), deterministic=greedy)
        llm = self.agents[agent]
        return [
            Request(llm.chat(o), params, role=agent, backend=BACKEND,
                    meta={"state": s.cpu(), "z": zz.cpu(), "log_prob": float(lp)})
            for o, params, s, zz, lp in zip(observations, self.ranges.to_params(z), states, z,
                                            log_probs, strict=True)
        ]

    def learn(self, episodes: Sequence[Episode]) -> dict[str, float]:
        """One PPO update of every agent's network from finished episodes played with
        :meth:`act`; returns the episodes' metrics and, per agent, PPO's statistics and the
        mean parameters the batch was played with (``agent_i/temperature``...)."""
        row: dict[str, float] = episode_metrics(episodes)
        for position, name in enumerate(self.agents):
            steps = agent_steps(episodes, name)
            if not steps:
                continue
            if any(s.request is None or "z" not in s.request.meta for s in steps):
                raise ValueError(f"{name}'s steps carry no chosen parameters (Request.meta): "
                                 "learn only from episodes this learner's act() played")
            batch = {
                "states": torch.stack([s.request.meta["state"] for s in steps]),
                "z": torch.stack([s.request.meta["z"] for s in steps]),
                "log_probs": torch.tensor([s.request.meta["log_prob"] for s in steps]),
                "rewards": torch.tensor([float(s.reward) for s in steps]),
            }
            batch = {k: v.to(self.device, torch.float32) for k, v in batch.items()}
            network = self.networks[position]
            means = network.mean_params(batch["states"])  # what this batch was played around
            order = torch.Generator().manual_seed(
                derive_seed(self.config.seed, LEARNER, "minibatch", self.update, position))
            stats = update_network(network, self.optimizers[position], batch, self.config, order)
            row |= {f"{name}/{k}": v for k, v in (stats | means).items()}
        self.update += 1
        return row

    def _generator(self, position: int) -> torch.Generator:
        """The z noise of ``position`` in this update (a fresh stream per update and agent)."""
        key = (self.update, position)
        if key not in self._noise:
            self._noise = {k: g for k, g in self._noise.items() if k[0] == self.update}
            seed = derive_seed(self.config.seed, LEARNER, "z", self.update, position)
            self._noise[key] = torch.Generator().manual_seed(seed)
        return self._noise[key]

    # -- loop
    def play_update(self) -> list[Episode]:
        """Play this update's episodes (sampled parameters) on the engine."""
        cfg = self.config
        picks = draw_problems(cfg.seed, self.update, cfg.episodes, len(self.pool))
        first = self.update * cfg.episodes
        items = [(first + e, {"problem_uid": self.pool[k]}) for e, k in enumerate(picks)]
        return self.runner.play(items, seed=cfg.seed)

    def train_step(self) -> dict[str, Any]:
        """Play one update's episodes and learn from them; return the metrics row."""
        row = {"update": self.update + 1} | self.learn(self.play_update())
        self.history.append(row)
        return row

    def train(self, *, resume: bool = False, progress: bool = True) -> list[dict[str, Any]]:
        """Run (or with ``resume`` continue) ``config.updates`` updates, writing into
        ``config.out``: ``config.json``, ``run_meta.json``, TensorBoard logs under ``tb/``,
        ``checkpoint.pt`` after every update, then ``history.json`` and ``policy.pt`` (the
        inference part of the checkpoint).

        Raises:
            FileExistsError: If ``out`` holds a checkpoint and ``resume`` is False.
        """
        from torch.utils.tensorboard import SummaryWriter
        from tqdm.auto import tqdm

        from spgg_env.agents.genparam_inference import export_policy

        out = Path(self.config.out)
        checkpoint = out / CHECKPOINT
        if checkpoint.exists():
            if not resume:
                raise FileExistsError(f"{checkpoint} exists; resume it or choose another out")
            self.load(checkpoint)
        task = self.runner.task
        write_run_files(out, self.config.to_dict(), self.config.game,
                        train_problems=len(self.pool),
                        held_out_problems=len(task.problems(self.config.game.split))
                        - len(self.pool))
        writer = SummaryWriter(str(out / "tb"), purge_step=self.update + 1)
        bar = tqdm(total=self.config.updates, initial=self.update, disable=not progress,
                   desc="genparam PPO")
        while self.update < self.config.updates:
            row = self.train_step()
            for key, value in row.items():
                if key != "update" and math.isfinite(value):
                    writer.add_scalar(key, value, row["update"])
            self.save(checkpoint)
            bar.update(1)
            bar.set_postfix(reward=row.get("reward", math.nan))
        bar.close()
        writer.close()
        write_json(out / "history.json", self.history)
        export_policy(checkpoint, out / POLICY)
        return self.history

    # -- checkpoints
    def inference_spec(self) -> dict[str, Any]:
        """What inference needs besides the weights (read by
        :func:`spgg_env.agents.genparam_inference.load_inference_policy`): the game, the state
        size, the ranges, the embedder, the network's shape, and the training problems."""
        return {
            "format": FORMAT,
            "game": self.config.game.to_dict(),
            "state_dim": self.encoder.dim,
            "ranges": self.ranges.to_dict(),
            "embedder": self.embedder_source,
            "network": {"hidden": self.config.hidden, "init_log_std": self.config.init_log_std},
            "train_problems": None if self.train_uids is None else {
                "n": len(self.train_uids),
                "uids_sha256": hashlib.sha256("\n".join(self.train_uids).encode()).hexdigest(),
            },
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (networks, optimisers, update, history, config) and to
        run the policy alone (``inference``: :meth:`inference_spec`)."""
        return {
            "format": FORMAT,
            "inference": self.inference_spec(),
            "policies": self.networks.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "update": self.update,
            "history": self.history,
            "config": self.config.to_dict(),
        }

    def save(self, path: str | Path) -> None:
        """Write :meth:`state_dict` atomically."""
        save_checkpoint(path, self.state_dict())

    def load(self, path: str | Path) -> None:
        """Restore a :meth:`save` checkpoint, written on any device (it loads on the CPU, then
        the weights and optimiser state are copied to this learner's device).

        Raises:
            ValueError: If it was made for another game, or with another embedder, state size,
                ranges or training problems (naming what differs).
        """
        state = load_checkpoint(path, self.config.game, what="genparam checkpoint")
        if state.get("format") != FORMAT:
            raise ValueError(f"genparam checkpoint {str(path)!r} has format "
                             f"{state.get('format')!r}; training resumes only {FORMAT!r} "
                             "(older policies still load for inference)")
        mine, saved = self.inference_spec(), state["inference"]
        differing = [f"{key}: {saved.get(key)!r} vs {mine[key]!r}" for key in mine
                     if key != "game" and _comparable(key, saved.get(key))
                     != _comparable(key, mine[key])]
        if differing:
            raise ValueError(f"genparam checkpoint {str(path)!r} was trained otherwise ("
                             + "; ".join(differing) + ")")
        self.config = self.config.resumed(state["config"])
        self.networks.load_state_dict(state["policies"])
        for opt, opt_state in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(opt_state)
        self.update = int(state["update"])
        self.history = list(state["history"])


def _comparable(key: str, value: Any) -> str:
    """An inference-block entry as compared on resume: the embedder's dtype may change with
    the device (bf16 on a GPU, fp32 on a CPU); its model and ``max_length`` may not."""
    if key == "embedder" and isinstance(value, Mapping):
        value = {k: v for k, v in value.items() if k != "dtype"}
    return json.dumps(value, sort_keys=True)
