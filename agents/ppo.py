"""Token-level PPO for LLM agents in the sequential public goods game, CleanRL style.

Read top to bottom: config, model, policy (``act``), rollout tensors, advantages, update
(``learn``), evaluation, checkpoints, loop.

Every agent ``agent_i`` is a token policy: one shared frozen base LLM (the embedded SmolLM2 by
default) plus its own LoRA adapter (``peft`` multi-adapter) and its own value head (a linear
layer on the base's last hidden state, which is detached: the head is a probe and does not
move the adapter). The frozen reference policy is the base with the adapters disabled.

**The learner protocol.** :class:`PPOLearner` is a policy of the episode engine and a learner:

* ``act(agent, observations, *, greedy=False) -> list[Request]``: agent i's chat prompt for
  each observation, for backend ``"agent_i"`` (the shared model with adapter i set) to sample
  at temperature ``tau`` (top-k and top-p off), or to decode greedily;
* ``learn(episodes) -> metrics``: one PPO update from finished
  :class:`~spgg_env.agents.episodes.Episode` objects played with ``act``.

Its train loop is those two on the engine (:meth:`PPOLearner.train`); a learner board can drive
them itself.

One update:

1. **Rollout.** The update's ``K`` problems (:func:`~spgg_env.agents.learning.draw_problems`)
   are played as ``K`` episodes by ``EpisodeRunner(game, learner, engine).play``: episode e
   of update u has index ``u * K + e``, resets with ``episode_seed(seed, index)`` and samples
   agent i's completion with ``generation_seed(seed, index, i)``. At the end the env pays
   every agent its mechanism reward ``R_i`` (``step.reward``).
2. **Tensors** of agent i: each step's ``generation.prompt_ids`` (the prompt exactly as the
   model read it) then ``generation.token_ids`` (the exact tokens sampled, plus the EOS when
   the generation stopped on it), never re-tokenised text.
3. **Per-token rewards** over agent i's own completion ``y_1..y_T`` (prompt ``x``)::

       r_t = -beta * (log pi(y_t | x, y_<t) - log pi_ref(y_t | x, y_<t))  +  [t = T] * R_i

   where ``log pi`` is the log-softmax of ``logits / tau`` (the distribution sampled from).
4. **GAE** with ``gamma = 1``, ``lambda = 0.95`` over the completion (``V_{T+1} = 0``)::

       delta_t = r_t + gamma * V_{t+1} - V_t,   A_t = delta_t + gamma * lambda * A_{t+1},
       G_t = A_t + V_t

   and the advantages are whitened over the agent's batch of tokens.
5. **Loss** on minibatches for ``epochs`` passes, ``rho_t = exp(log pi_new - log pi_old)``::

       L = mean_t max(-A_t rho_t, -A_t clip(rho_t, 1-eps, 1+eps))
           + c_v * 0.5 * mean_t max((V_t - G_t)^2, (V_old + clip(V_t - V_old, +-eps_v) - G_t)^2)
           - c_H * mean_t H(pi(. | x, y_<t))

   then ``clip_grad_norm_`` and an AdamW step on the LoRA weights and value heads.

Every random stream derives from the run's seed and the update index
(:mod:`spgg_env.seeding`): the problems, the sampling seeds, the minibatch order. Checkpoints
(``checkpoint.pt``, :func:`~spgg_env.agents.checkpoint.save_checkpoint`) hold the config (game
included), adapters, value heads, optimizer, update index and metrics: a resumed run continues
with the same data and, on the same machine and thread count, the same weights. A checkpoint of
another game is refused, naming the differing fields.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer

from spgg_env.agents.backend import ChatPrompt, Generation, GenerationParams
from spgg_env.agents.checkpoint import load_checkpoint, save_checkpoint, write_run_files
from spgg_env.agents.engine import Engine, Request
from spgg_env.agents.episodes import Episode, EpisodeRunner, Step
from spgg_env.agents.learning import (
    Greedy,
    LearnerConfig,
    agent_steps,
    draw_problems,
    episode_metrics,
    model_path,
    option,
)
from spgg_env.agents.llm_agent import LLMAgent
from spgg_env.agents.transformers_backend import TransformersBackend
from spgg_env.models import resolve_device, resolve_dtype
from spgg_env.seeding import LEARNER, derive_seed, rng
from spgg_env.spec import GameSpec

CHECKPOINT = "checkpoint.pt"
FORMAT = "spgg-ppo/2"


# ---------------------------------------------------------------------------------- config
def default_game() -> GameSpec:
    """PPO's default game: arith's train split, effort counted in the model's tokens."""
    return GameSpec(task="arith", split="train", max_tokens=48, token_counting="model")


@dataclass
class PPOConfig(LearnerConfig):
    """Everything a run depends on (saved in every checkpoint and ``config.json``)."""

    game: GameSpec = option(default_game, "the game trained on (its split: the training split)")
    model: str = option("embedded", "transformers folder or hub id; 'embedded' is the offline "
                        "SmolLM2-135M-Instruct")
    eval_split: str = option("test", "split of the held-out greedy evaluation")
    eval_size: int = option(64, "evaluate on the first this many problems of the eval split")
    eval_every: int = option(10, "updates between greedy evaluations (0: only before and after)")
    updates: int = option(50, "PPO updates of the run")
    episodes: int = option(8, "episodes per update (each agent's batch of completions)")
    batch_size: int = option(16, "generations decoded together")
    max_new_tokens: int = option(48, "generation cap of every completion")
    max_prompt_tokens: int = option(512, "longer prompts are cut in the middle to this many tokens")
    temperature: float = option(0.7, "sampling temperature tau of the rollouts (> 0)")
    lr: float = option(3e-4, "AdamW learning rate")
    beta: float = option(0.05, "coefficient of the per-token KL penalty to the frozen base")
    gamma: float = option(1.0, "discount over the tokens of a completion")
    lam: float = option(0.95, "GAE lambda")
    clip: float = option(0.2, "PPO ratio clip epsilon")
    clip_value: float = option(0.2, "value clip epsilon_v")
    value_coef: float = option(0.5, "value loss coefficient c_v")
    entropy_coef: float = option(0.0, "entropy bonus coefficient c_H")
    epochs: int = option(2, "passes over each agent's batch per update")
    minibatch_size: int = option(4, "completions per gradient step")
    max_grad_norm: float = option(1.0, "gradient norm clip")
    lora_r: int = option(8, "LoRA rank")
    lora_alpha: int = option(16, "LoRA alpha")
    dtype: str = option("auto", "the frozen base's dtype: auto (bfloat16 on CUDA and on CPUs "
                                "with native bf16, else float32), float32 or bfloat16; LoRA, "
                                "value heads and optimizer stay float32")
    system_prompt: str | None = option(None, "system message sent before each observation "
                                             "(default: none, the chat template's own)")
    threads: int | None = option(None, "torch CPU threads (default: torch's choice; 1 on a busy "
                                       "machine)")
    device: str = option("auto", "auto (CUDA when available, else CPU), cpu, cuda, cuda:1...; "
                         "checkpoints load on any device")
    seed: int = option(0, "root seed of every random stream of the run")
    save_every: int = option(5, "updates between checkpoints (and one at the end)")
    time_limit_s: float | None = option(None, "stop (final evaluation and checkpoint) after the "
                                              "first update that ends past this many seconds")
    out: str = option("runs/ppo", "output folder (checkpoint, metrics, logs)")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require_positive(("updates", "episodes", "batch_size", "max_new_tokens",
                               "max_prompt_tokens", "epochs", "minibatch_size", "save_every"))
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 for sampling, got {self.temperature!r}")
        if not 0 <= self.lam <= 1 or not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma and lam must be in [0, 1], got {self.gamma}, {self.lam}")
        if self.minibatch_size > self.episodes:
            raise ValueError(f"minibatch_size ({self.minibatch_size}) must be <= episodes "
                             f"({self.episodes})")
        self.eval_game  # noqa: B018 - validates eval_split against the task's splits
        resolve_dtype(self.dtype, torch.device("cpu"))  # names an unknown dtype

    @property
    def eval_game(self) -> GameSpec:
        """The game of the held-out evaluation: the training game on ``eval_split``."""
        return self.game.replace(split=self.eval_split)


# ----------------------------------------------------------------------------------- model
def agent_names(n_agents: int) -> list[str]:
    """The env's agent names, also the adapter names and the engine's backend keys."""
    return [f"agent_{i}" for i in range(n_agents)]


def load_policies(cfg: PPOConfig) -> tuple[Any, nn.Module, nn.ModuleDict]:
    """Load the tokenizer, the base with one LoRA adapter per agent, and the value heads,
    all on ``cfg.device``."""
    path = model_path(cfg.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.chat_template is None:
        raise ValueError(f"the tokenizer at {path!r} has no chat template; set one first")
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    base = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    lora = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, target_modules="all-linear"
    )
    names = agent_names(cfg.game.n_agents)
    model = get_peft_model(base, lora, adapter_name=names[0])
    for name in names[1:]:
        model.add_adapter(name, lora)
    hidden = base.config.hidden_size
    heads = nn.ModuleDict({name: nn.Linear(hidden, 1) for name in names})
    for head in heads.values():
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
    # peft puts each adapter on its base layer's device; .to() covers any it missed
    return tokenizer, model.to(device), heads.to(device)


def lora_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """All adapters' LoRA weights by name (``set_adapter`` toggles their requires_grad)."""
    return {n: p for n, p in model.named_parameters() if "lora_" in n}


class AdapterBackend:
    """Agent i's backend for the engine: the shared model with adapter i set, then generated by
    the shared :class:`TransformersBackend` (one adapter per call)."""

    def __init__(self, shared: TransformersBackend, adapter: str) -> None:
        self.shared, self.adapter = shared, adapter

    def describe(self) -> dict[str, Any]:
        """The shared backend's description and the adapter."""
        return self.shared.describe() | {"adapter": self.adapter}

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` under the model's tokenizer (the env's effort)."""
        return self.shared.count_tokens(text)

    def generate(self, prompts: Sequence[ChatPrompt],
                 params: Sequence[GenerationParams] | GenerationParams, *,
                 seed: int | Sequence[int] | None = None) -> list[Generation]:
        """Set this agent's adapter, then generate."""
        self.shared.model.set_adapter(self.adapter)
        self.shared.model.eval()
        return self.shared.generate(prompts, params, seed=seed)


# --------------------------------------------------------------------------------- rollout
@dataclass
class Rollout:
    """One agent's K completions and what PPO needs of them (tensors of shape ``(K, ...)``)."""

    input_ids: torch.Tensor  #: (K, P + T): left-padded prompt, then the right-padded completion
    attention_mask: torch.Tensor  #: (K, P + T)
    mask: torch.Tensor  #: (K, T) 1.0 on completion tokens up to and including EOS
    rewards: torch.Tensor  #: (K,) the episode's reward of the agent
    old_logp: torch.Tensor | None = None  #: (K, T)
    ref_logp: torch.Tensor | None = None
    values: torch.Tensor | None = None


def learnable(steps: Sequence[Step]) -> list[Step]:
    """The steps PPO learns from: those whose generation did not fail.

    Raises:
        ValueError: If a step was not generated by the engine with token ids (PPO learns only
            from completions whose exact tokens it has).
    """
    out = []
    for step in steps:
        gen = step.generation
        if gen is not None and gen.finish_reason == "error":
            continue  # played as the empty contribution; no tokens to learn from
        if gen is None or gen.prompt_ids is None or gen.token_ids is None:
            raise ValueError(f"{step.agent}'s step has no generated token ids: PPO learns only "
                             "from episodes its own act() generated on a transformers backend")
        out.append(step)
    return out


def rollout_tensors(steps: Sequence[Step], pad_id: int, eos_id: int,
                    device: torch.device) -> Rollout:
    """Agent i's tensors from its steps' exact prompt and completion ids (a completion that
    stopped on EOS gets the EOS back: stopping was the last action)."""
    prompts = [list(s.generation.prompt_ids) for s in steps]
    completions = [list(s.generation.token_ids) + ([eos_id] if s.generation.finish_reason
                                                   == "stop" else []) for s in steps]
    width, length = max(map(len, prompts)), max(max(map(len, completions)), 1)
    ids, attention, mask = [], [], []
    for prompt, completion in zip(prompts, completions, strict=True):
        left, right = width - len(prompt), length - len(completion)
        ids.append([pad_id] * left + prompt + completion + [pad_id] * right)
        attention.append([0] * left + [1] * (len(prompt) + len(completion)) + [0] * right)
        mask.append([1.0] * len(completion) + [0.0] * right)
    return Rollout(
        input_ids=torch.tensor(ids, device=device),
        attention_mask=torch.tensor(attention, device=device),
        mask=torch.tensor(mask, device=device),
        rewards=torch.tensor([float(s.reward) for s in steps], device=device),
    )


def forward(
    model: nn.Module, head: nn.Module, batch: Rollout, rows: torch.Tensor | slice, cfg: PPOConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probs, entropies and values at the completion tokens, each of shape ``(B, T)``.

    The logits at position ``p`` predict token ``p + 1``, so the completion's ``T`` tokens are
    scored by the last ``T + 1`` positions but one; the value of the state before token t is
    read at the same position.
    """
    ids, attn = batch.input_ids[rows], batch.attention_mask[rows]
    T = batch.mask.shape[1]
    positions = (attn.cumsum(-1) - 1).clamp(min=0)
    out = model(
        input_ids=ids,
        attention_mask=attn,
        position_ids=positions,
        output_hidden_states=True,
        logits_to_keep=T + 1,
    )
    logits = out.logits[:, :-1].float() / cfg.temperature
    logp_all = F.log_softmax(logits, dim=-1)
    tokens = ids[:, -T:]
    logp = logp_all.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    hidden = out.hidden_states[-1][:, -T - 1 : -1].float().detach()
    values = head(hidden).squeeze(-1)
    return logp, entropy, values


# ------------------------------------------------------------------------------ advantages
def token_rewards(batch: Rollout, beta: float) -> torch.Tensor:
    """``r_t = -beta * (logp - logp_ref)``, plus the episode reward at the last token."""
    kl = (batch.old_logp - batch.ref_logp) * batch.mask
    rewards = -beta * kl
    last = (batch.mask.sum(-1).long() - 1).clamp(min=0)
    rewards[torch.arange(len(last), device=last.device), last] += batch.rewards
    return rewards * batch.mask


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and returns over masked token sequences ``(B, T)``."""
    values = values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros(rewards.shape[0], device=rewards.device)
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
    return advantages, advantages + values


def whiten(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero-mean, unit-variance over the masked entries."""
    n = mask.sum().clamp(min=1)
    mean = (x * mask).sum() / n
    var = (((x - mean) * mask) ** 2).sum() / n
    return (x - mean) * torch.rsqrt(var + 1e-8) * mask


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the entries where ``mask`` is 1."""
    return (x * mask).sum() / mask.sum().clamp(min=1)


# ---------------------------------------------------------------------------------- update
def update_adapters(
    model: nn.Module,
    heads: nn.ModuleDict,
    optimizer: torch.optim.Optimizer,
    rollouts: Mapping[str, Rollout],
    cfg: PPOConfig,
    update: int,
) -> dict[str, float]:
    """Score the rollouts, then run the clipped PPO epochs for every agent's adapter and value
    head (minibatch order: the stream ``(seed, LEARNER, "minibatch", update, agent)``)."""
    stats: dict[str, list[float]] = {
        k: [] for k in ("loss", "pg_loss", "vf_loss", "entropy", "clip_frac", "approx_kl")
    }
    kl_ref = []
    for name, batch in rollouts.items():
        head = heads[name]
        everything = slice(None)
        with torch.no_grad():
            model.set_adapter(name)
            model.eval()
            batch.old_logp, _, batch.values = forward(model, head, batch, everything, cfg)
            with model.disable_adapter():
                batch.ref_logp, _, _ = forward(model, head, batch, everything, cfg)
        kl_ref.append(float(((batch.old_logp - batch.ref_logp) * batch.mask).sum(-1).mean()))
        adv, returns = gae(
            token_rewards(batch, cfg.beta), batch.values, batch.mask, cfg.gamma, cfg.lam
        )
        adv = whiten(adv, batch.mask)
        model.set_adapter(name)
        model.train()
        order_rng = rng(cfg.seed, LEARNER, "minibatch", update, name)
        for _ in range(cfg.epochs):
            order = torch.from_numpy(order_rng.permutation(len(batch.rewards)))
            order = order.to(batch.mask.device)
            for start in range(0, len(order), cfg.minibatch_size):
                rows = order[start : start + cfg.minibatch_size]
                mask = batch.mask[rows]
                logp, entropy, values = forward(model, head, batch, rows, cfg)
                log_ratio = logp - batch.old_logp[rows]
                ratio = log_ratio.exp()
                a = adv[rows]
                pg = masked_mean(
                    torch.max(-a * ratio, -a * ratio.clamp(1 - cfg.clip, 1 + cfg.clip)), mask
                )
                old_v = batch.values[rows]
                v_clipped = old_v + (values - old_v).clamp(-cfg.clip_value, cfg.clip_value)
                vf = 0.5 * masked_mean(
                    torch.max((values - returns[rows]) ** 2, (v_clipped - returns[rows]) ** 2),
                    mask,
                )
                ent = masked_mean(entropy, mask)
                loss = pg + cfg.value_coef * vf - cfg.entropy_coef * ent
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                params = [p for g in optimizer.param_groups for p in g["params"]]
                nn.utils.clip_grad_norm_([p for p in params if p.grad is not None],
                                         cfg.max_grad_norm)
                optimizer.step()
                with torch.no_grad():
                    stats["loss"].append(float(loss))
                    stats["pg_loss"].append(float(pg))
                    stats["vf_loss"].append(float(vf))
                    stats["entropy"].append(float(ent))
                    stats["clip_frac"].append(
                        float(masked_mean(((ratio - 1).abs() > cfg.clip).float(), mask))
                    )
                    stats["approx_kl"].append(float(masked_mean((ratio - 1) - log_ratio, mask)))
    out = {k: float(np.mean(v)) if v else math.nan for k, v in stats.items()}
    out["kl_ref"] = float(np.mean(kl_ref)) if kl_ref else math.nan
    return out


# ------------------------------------------------------------------------------------ learner
class PPOLearner:
    """The agents' adapters, value heads and optimizer; acts and learns on the episode engine
    (the learner protocol: module docstring), and runs, logs, checkpoints and resumes."""

    def __init__(self, cfg: PPOConfig) -> None:
        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)  # LoRA init draws from the global generator
        self.tokenizer, self.model, self.heads = load_policies(cfg)
        self.n_agents = cfg.game.n_agents
        self.lora = lora_parameters(self.model)
        params = list(self.lora.values()) + list(self.heads.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
        self.update = 0
        self.history: list[dict[str, float]] = []
        self.out = Path(cfg.out)
        self.device = next(self.model.parameters()).device

        shared = TransformersBackend.wrap(self.model, self.tokenizer, name=cfg.model,
                                          max_context=cfg.max_prompt_tokens + cfg.max_new_tokens)
        # the EOS that ends a completion is an action PPO learns; one id keeps it exact
        self.eos_id = int(self.tokenizer.eos_token_id)
        shared.eos_ids = {self.eos_id}
        self.pad_id = int(self.tokenizer.pad_token_id)
        names = agent_names(self.n_agents)
        self.backends = {name: AdapterBackend(shared, name) for name in names}
        self.agents = {name: LLMAgent(name, self.backends[name], system_prompt=cfg.system_prompt
                                      or "", n_agents=self.n_agents) for name in names}
        self.sampling = GenerationParams(temperature=cfg.temperature, top_p=1.0, top_k=0,
                                         max_new_tokens=cfg.max_new_tokens)
        self.greedy = GenerationParams(temperature=0.0, max_new_tokens=cfg.max_new_tokens)
        engine = Engine(self.backends, max_batch=cfg.batch_size, seed=cfg.seed)
        task = cfg.game.make_task()  # one instance: one copy of the data
        self.runner = EpisodeRunner(cfg.game, self, engine, task=task)
        self.eval_runner = EpisodeRunner(cfg.eval_game, Greedy(self), engine, task=task)

    # -- the learner protocol
    def act(self, agent: str, observations: Sequence[Mapping[str, Any]], *,
            greedy: bool = False) -> list[Request]:
        """Agent ``agent``'s chat prompt for each observation, sampled with its adapter at
        ``temperature`` (or decoded greedily)."""
        llm = self.agents[agent]
        params = self.greedy if greedy else self.sampling
        return [Request(llm.chat(o), params, role=agent, backend=agent) for o in observations]

    def learn(self, episodes: Sequence[Episode]) -> dict[str, float]:
        """One PPO update of every adapter and value head from finished episodes played with
        :meth:`act`; returns the episodes' metrics (``train/...``) and PPO's (``ppo/...``)."""
        rollouts = {}
        for name in self.agents:
            steps = learnable(agent_steps(episodes, name))
            if steps:
                rollouts[name] = rollout_tensors(steps, self.pad_id, self.eos_id, self.device)
        stats = update_adapters(self.model, self.heads, self.optimizer, rollouts, self.cfg,
                                self.update)
        self.update += 1
        tokens = sum(float(b.mask.sum()) for b in rollouts.values())
        return (episode_metrics(episodes, "train") | {f"ppo/{k}": v for k, v in stats.items()}
                | {"perf/tokens": tokens})

    # -- rollout and evaluation on the engine
    def play_update(self) -> list[Episode]:
        """Play this update's episodes (sampled) on the engine."""
        cfg = self.cfg
        problems = draw_problems(cfg.seed, self.update, cfg.episodes, self.runner.n_problems)
        first = self.update * cfg.episodes
        items = [(first + e, {"problem_index": p}) for e, p in enumerate(problems)]
        return self.runner.play(items, seed=cfg.seed)

    def evaluate(self) -> tuple[dict[str, float], list[Episode]]:
        """Greedy play of the first ``eval_size`` problems of ``eval_split``; returns the
        metrics (``eval/...``) and the episodes."""
        total = min(self.cfg.eval_size, self.eval_runner.n_problems)
        items = [(i, {"problem_index": i}) for i in range(total)]
        episodes = self.eval_runner.play(items, seed=derive_seed(self.cfg.seed, LEARNER, "eval"))
        return episode_metrics(episodes, "eval"), episodes

    # -- checkpoints
    def state(self) -> dict[str, Any]:
        """Everything a resumed run needs."""
        return {
            "format": FORMAT,
            "config": self.cfg.to_dict(),
            "update": self.update,
            "lora": {n: p.detach().clone() for n, p in self.lora.items()},
            "heads": self.heads.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "history": self.history,
        }

    def load(self, path: str | Path) -> None:
        """Restore a checkpoint written by :meth:`save` (on any device: tensors load on the CPU,
        then are copied to where this learner's weights live). The run's seed comes from the
        checkpoint, so the resumed run draws the same problems and seeds.

        Raises:
            ValueError: If the checkpoint was made for another game or another model or LoRA
                shape (naming the differing fields).
        """
        state = load_checkpoint(path, self.cfg.game, what="PPO checkpoint")
        saved = state["config"]
        differing = [f"{key}: {saved.get(key)!r} vs {getattr(self.cfg, key)!r}"
                     for key in ("model", "lora_r", "lora_alpha")
                     if saved.get(key) != getattr(self.cfg, key)]
        if differing:
            raise ValueError(f"PPO checkpoint {str(path)!r} holds other adapters ("
                             + "; ".join(differing) + ")")
        self.cfg = self.cfg.resumed(saved)
        with torch.no_grad():
            for name, value in state["lora"].items():
                self.lora[name].copy_(value)
        self.heads.load_state_dict(state["heads"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.update = int(state["update"])
        self.history = list(state["history"])

    def save(self) -> Path:
        """Write ``checkpoint.pt`` atomically and rewrite the metrics files to match it."""
        path = save_checkpoint(self.out / CHECKPOINT, self.state())
        self._write_metrics()
        return path

    def _write_metrics(self) -> None:
        keys = sorted({k for row in self.history for k in row}, key=lambda k: (k != "update", k))
        tmp = self.out / ".metrics.csv.tmp"
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.history)
        tmp.replace(self.out / "metrics.csv")

    # -- loop
    def train(self, *, resume: bool = False, progress: bool = True) -> list[dict[str, float]]:
        """Run (or continue) the configured number of updates; returns the metrics rows."""
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        self.out.mkdir(parents=True, exist_ok=True)
        if resume and (self.out / CHECKPOINT).exists():
            self.load(self.out / CHECKPOINT)
        cfg = self.cfg
        # the live log restarts from the checkpoint's history (drops updates after it)
        with (self.out / "metrics.jsonl").open("w") as fh:
            fh.writelines(json.dumps(row) + "\n" for row in self.history)
        task = self.runner.task
        write_run_files(self.out, cfg.to_dict(), cfg.game, device=str(self.device),
                        split_hashes={s: task.split_hash(s) for s in (cfg.game.split,
                                                                      cfg.eval_split)})
        writer = SummaryWriter(str(self.out / "tb"), purge_step=self.update + 1)
        log = (self.out / "samples.jsonl").open("a")
        if self.update == 0:
            self._evaluate(writer, log)
        bar = tqdm(range(self.update, cfg.updates), disable=not progress, desc="ppo")
        began = time.perf_counter()
        for _ in bar:
            start = time.perf_counter()
            episodes = self.play_update()
            rollout_s = time.perf_counter() - start
            row = {"update": self.update + 1} | self.learn(episodes)
            elapsed = time.perf_counter() - start
            row |= {
                "perf/update_s": elapsed,
                "perf/rollout_s": rollout_s,
                "perf/samples_per_s": cfg.episodes * self.n_agents / elapsed,
            }
            self._log(writer, row)
            bar.set_postfix(reward=f"{row.get('train/reward', math.nan):.3f}",
                            score=f"{row.get('train/task_score', math.nan):.2f}",
                            kl=f"{row['ppo/kl_ref']:.3f}")
            out_of_time = cfg.time_limit_s is not None and time.perf_counter() - began > (
                cfg.time_limit_s
            )
            final = self.update == cfg.updates or out_of_time
            if final or (cfg.eval_every and self.update % cfg.eval_every == 0):
                self._evaluate(writer, log)
            if final or self.update % cfg.save_every == 0:
                self.save()
            if final:
                break
        writer.close()
        log.close()
        return self.history

    def _evaluate(self, writer: Any, log: Any) -> None:
        start = time.perf_counter()
        metrics, episodes = self.evaluate()
        metrics["perf/eval_s"] = time.perf_counter() - start
        self._log(writer, {"update": self.update} | metrics)
        samples = [{"problem": e.problem_uid, "group_score": e.group_score}
                   | {s.agent: s.action for s in e.steps} for e in episodes[:3]]
        log.write(json.dumps({"update": self.update, "samples": samples}) + "\n")
        log.flush()
        print(
            f"[eval] update {self.update}: reward {metrics.get('eval/reward', math.nan):.3f} "
            f"task score {metrics.get('eval/task_score', math.nan):.3f}",
            flush=True,
        )

    def _log(self, writer: Any, row: dict[str, float]) -> None:
        for key, value in row.items():
            if key != "update" and math.isfinite(value):
                writer.add_scalar(key, value, row["update"])
        writer.flush()
        self.history.append(row)
        with (self.out / "metrics.jsonl").open("a") as fh:
            fh.write(json.dumps(row) + "\n")


def train(cfg: PPOConfig, *, resume: bool = False, progress: bool = True) -> PPOLearner:
    """Build a learner for ``cfg``, run it (continuing from its checkpoint if ``resume``)."""
    learner = PPOLearner(cfg)
    learner.train(resume=resume, progress=progress)
    return learner

