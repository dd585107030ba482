"""Token-level PPO for LLM agents in the sequential public goods game, CleanRL style.

Read top to bottom: config, model, rollout, advantages, update, evaluation, checkpoints, loop.

Every agent ``agent_i`` is a token policy: one shared frozen base LLM (the embedded SmolLM2 by
default) plus its own LoRA adapter (``peft`` multi-adapter) and its own value head (a linear
layer on the base's last hidden state, which is detached: the head is a probe and does not
move the adapter). The frozen reference policy is the base with the adapters disabled.

One update:

1. **Rollout.** ``K`` episodes (one problem each) are played in lockstep: at position i the
   K prompts of ``agent_i`` are chat-templated and sampled from agent i's adapter at
   temperature ``tau``; the texts are the agents' actions in the env. At the end the env pays
   every agent its mechanism reward ``R_i`` (``info["reward_components"]["total"]``).
2. **Per-token rewards** over agent i's own completion ``y_1..y_T`` (prompt ``x``)::

       r_t = -beta * (log pi(y_t | x, y_<t) - log pi_ref(y_t | x, y_<t))  +  [t = T] * R_i

   where ``log pi`` is the log-softmax of ``logits / tau`` (the distribution sampled from).
3. **GAE** with ``gamma = 1``, ``lambda = 0.95`` over the completion (``V_{T+1} = 0``)::

       delta_t = r_t + gamma * V_{t+1} - V_t,   A_t = delta_t + gamma * lambda * A_{t+1},
       G_t = A_t + V_t

   and the advantages are whitened over the agent's batch of tokens.
4. **Loss** on minibatches for ``epochs`` passes, ``rho_t = exp(log pi_new - log pi_old)``::

       L = mean_t max(-A_t rho_t, -A_t clip(rho_t, 1-eps, 1+eps))
           + c_v * 0.5 * mean_t max((V_t - G_t)^2, (V_old + clip(V_t - V_old, +-eps_v) - G_t)^2)
           - c_H * mean_t H(pi(. | x, y_<t))

   then ``clip_grad_norm_`` and an AdamW step on the LoRA weights and value heads.

Checkpoints (``checkpoint.pt``, written to a temp file then ``os.replace``-d) hold the
adapters, value heads, optimizer, the trainer's random generator (which draws the problems
and every sampling seed), the update index and the metrics so far: a resumed run continues with
the same data order and, on the same machine and thread count, the same weights.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer

from spgg_env import provenance
from spgg_env.env import aec_env
from spgg_env.models import resolve_device, token_counter
from spgg_env.tasks import make_task

CHECKPOINT = "checkpoint.pt"


# ---------------------------------------------------------------------------------- config
@dataclass
class PPOConfig:
    """Everything a run depends on (saved in every checkpoint and ``config.json``)."""

    model: str | None = None  #: transformers folder; None = the embedded SmolLM2-135M-Instruct
    task: str = "arith"
    task_options: dict[str, Any] = field(default_factory=dict)
    n_agents: int = 3
    observation: str = "partial"
    #: the env's prompt style: "default" or "compact" (task and contributions only)
    prompt_style: str = "default"
    mechanism: str = "mac-spgg"
    mechanism_params: dict[str, Any] = field(default_factory=dict)
    train_split: str = "train"
    eval_split: str = "test"
    eval_size: int = 64  #: the first ``eval_size`` problems of ``eval_split`` (held out)
    eval_every: int = 10  #: updates between greedy evaluations (0 = only before and after)
    eval_batch: int = 16
    updates: int = 50
    episodes: int = 8  #: K episodes per update = batch of K completions per agent
    max_new_tokens: int = 48
    max_prompt_tokens: int = 512
    temperature: float = 0.7
    lr: float = 3e-4
    beta: float = 0.05  #: KL penalty coefficient
    gamma: float = 1.0
    lam: float = 0.95
    clip: float = 0.2
    clip_value: float = 0.2
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    epochs: int = 2
    minibatch: int = 4
    max_grad_norm: float = 1.0
    lora_r: int = 8
    lora_alpha: int = 16
    #: keep the frozen base in bf16 (LoRA, value heads, optimizer stay fp32); ~2x faster on
    #: CPU than fp32 (benchmarks/bench_ppo.py)
    bf16: bool = True
    #: the agents' own system prompt, sent before each observation prompt (None = the
    #: chat template's default)
    system_prompt: str | None = None
    threads: int | None = None  #: torch threads; None keeps torch's default
    #: "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1"...; the base, adapters,
    #: value heads and rollout tensors all live there (checkpoints load on any device)
    device: str = "auto"
    seed: int = 0
    save_every: int = 5
    #: stop (final eval and checkpoint) after the first update that ends past this many
    #: seconds of this process's training; None = run all ``updates``
    time_limit_s: float | None = None
    out_dir: str = "runs/ppo"

    def __post_init__(self) -> None:
        positive = ("n_agents", "updates", "episodes", "max_new_tokens", "epochs", "minibatch")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 for sampling, got {self.temperature!r}")
        if not 0 <= self.lam <= 1 or not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma and lam must be in [0, 1], got {self.gamma}, {self.lam}")
        if self.minibatch > self.episodes:
            raise ValueError(
                f"minibatch ({self.minibatch}) must be <= episodes ({self.episodes})"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PPOConfig:
        """Build from a dict, naming any unknown key."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown PPOConfig key(s) {sorted(unknown)}; valid: {sorted(known)}")
        return cls(**data)


# ----------------------------------------------------------------------------------- model
def agent_names(n_agents: int) -> list[str]:
    """The env's agent names, also the adapter names."""
    return [f"agent_{i}" for i in range(n_agents)]


def load_policies(cfg: PPOConfig) -> tuple[Any, nn.Module, nn.ModuleDict]:
    """Load the tokenizer, the base with one LoRA adapter per agent, and the value heads,
    all on ``cfg.device``."""
    path = cfg.model
    if path is None:
        from spgg_env.embedded_model import embedded_model_path

        path = str(embedded_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.chat_template is None:
        raise ValueError(f"the tokenizer at {path!r} has no chat template; set one first")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    dtype = torch.bfloat16 if cfg.bf16 else torch.float32
    device = resolve_device(cfg.device)
    base = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    lora = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, target_modules="all-linear"
    )
    names = agent_names(cfg.n_agents)
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


# --------------------------------------------------------------------------------- rollout
@dataclass
class Rollout:
    """One agent's K completions and what PPO needs of them (tensors of shape ``(K, ...)``)."""

    input_ids: torch.Tensor  #: (K, P + T): left-padded prompt, then the completion
    attention_mask: torch.Tensor  #: (K, P + T)
    mask: torch.Tensor  #: (K, T) 1.0 on completion tokens up to and including EOS
    texts: list[str]
    old_logp: torch.Tensor | None = None  #: (K, T)
    ref_logp: torch.Tensor | None = None
    values: torch.Tensor | None = None
    rewards: torch.Tensor | None = None  #: (K,) the mechanism's reward per episode


def render_chat(tokenizer: Any, prompts: Sequence[str], system: str | None = None) -> list[str]:
    """Wrap each observation prompt as a one-turn chat, ready for generation."""
    head = [{"role": "system", "content": system}] if system else []
    return [
        tokenizer.apply_chat_template(
            head + [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]


@torch.no_grad()
def generate(
    model: nn.Module,
    tokenizer: Any,
    adapter: str,
    prompts: Sequence[str],
    cfg: PPOConfig,
    *,
    greedy: bool,
    seed: int | None = None,
) -> Rollout:
    """Sample (or greedily decode) one completion per observation prompt with one adapter."""
    model.set_adapter(adapter)
    model.eval()
    enc = tokenizer(
        render_chat(tokenizer, prompts, cfg.system_prompt),
        return_tensors="pt",
        padding=True,
        truncation=True,
        max_length=cfg.max_prompt_tokens,
        add_special_tokens=False,
    ).to(next(model.parameters()).device)
    if seed is not None:
        torch.manual_seed(seed)  # HF sampling draws from the global generator (CUDA's too)
    sampling = {} if greedy else {"temperature": cfg.temperature, "top_k": 0, "top_p": 1.0}
    out = model.generate(
        **enc,
        do_sample=not greedy,
        max_new_tokens=cfg.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **sampling,
    )
    completion = out[:, enc.input_ids.shape[1] :]
    is_eos = completion == tokenizer.eos_token_id
    # keep tokens up to and including the first EOS
    mask = (is_eos.long().cumsum(-1) - is_eos.long() == 0).float()
    texts = [
        tokenizer.decode(row[m.bool()], skip_special_tokens=True)
        for row, m in zip(completion.cpu(), mask.cpu(), strict=True)
    ]
    attention = torch.cat([enc.attention_mask, mask.long()], dim=1)
    return Rollout(input_ids=out, attention_mask=attention, mask=mask, texts=texts)


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


def _reset(env: Any, problem_index: int, seed: int) -> None:
    env.reset(seed=seed, options={"problem_index": int(problem_index)})


def make_envs(cfg: PPOConfig, split: str, count: int, tokenizer: Any) -> list[Any]:
    """``count`` envs of the configured game; the env's token cost counts this tokenizer."""

    task = make_task(cfg.task, **cfg.task_options)  # one shared instance: one copy of the data
    return [
        aec_env(
            task=task,
            n_agents=cfg.n_agents,
            observation=cfg.observation,
            mechanism=cfg.mechanism,
            mechanism_params=cfg.mechanism_params or None,
            split=split,
            token_counter=token_counter(tokenizer),
            max_tokens=cfg.max_new_tokens,
            prompt_style=cfg.prompt_style,
        )
        for _ in range(count)
    ]


def play(
    model: nn.Module,
    tokenizer: Any,
    envs: Sequence[Any],
    problem_indices: Sequence[int],
    cfg: PPOConfig,
    *,
    greedy: bool,
    seeds: Sequence[int],
) -> tuple[list[Rollout], list[dict[str, Any]]]:
    """Play ``len(problem_indices)`` episodes in lockstep; agent i acts with adapter i.

    Returns:
        One :class:`Rollout` per agent (rewards set), and every agent's final ``info`` per
        agent (a list over episodes).
    """
    k = len(problem_indices)
    envs = envs[:k]
    for env, index, seed in zip(envs, problem_indices, seeds, strict=True):
        _reset(env, index, seed)
    names = agent_names(cfg.n_agents)
    rollouts = []
    for position, name in enumerate(names):
        prompts = []
        for env in envs:
            if env.agent_selection != name:
                raise RuntimeError(f"expected {name} to act, env selected {env.agent_selection}")
            obs = env.observe(name)
            prompts.append(obs["prompt"])
        batch = generate(
            model, tokenizer, name, prompts, cfg, greedy=greedy, seed=seeds[0] * 97 + position
        )
        for env, text in zip(envs, batch.texts, strict=True):
            env.step(text)
        rollouts.append(batch)
    infos = []
    for name, batch in zip(names, rollouts, strict=True):
        agent_infos = [dict(env.unwrapped.infos[name]) for env in envs]
        batch.rewards = torch.tensor(
            [float(i["reward_components"]["total"]) for i in agent_infos],
            dtype=torch.float32, device=batch.mask.device,
        )
        infos.append(agent_infos)
    return rollouts, infos


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
def ppo_update(
    model: nn.Module,
    heads: nn.ModuleDict,
    optimizer: torch.optim.Optimizer,
    rollouts: Sequence[Rollout],
    cfg: PPOConfig,
    rng: np.random.Generator,
) -> dict[str, float]:
    """Score the rollouts, then run the clipped PPO epochs for every agent's adapter."""
    stats: dict[str, list[float]] = {
        k: [] for k in ("loss", "pg_loss", "vf_loss", "entropy", "clip_frac", "approx_kl")
    }
    kl_ref = []
    for name, batch in zip(agent_names(cfg.n_agents), rollouts, strict=True):
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
        for _ in range(cfg.epochs):
            order = torch.from_numpy(rng.permutation(len(batch.texts))).to(batch.mask.device)
            for start in range(0, len(order), cfg.minibatch):
                rows = order[start : start + cfg.minibatch]
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
                loss = pg + cfg.vf_coef * vf - cfg.ent_coef * ent
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
    out = {k: float(np.mean(v)) for k, v in stats.items()}
    out["kl_ref"] = float(np.mean(kl_ref))
    return out


# ------------------------------------------------------------------------------ evaluation
def episode_metrics(infos: Sequence[Sequence[dict[str, Any]]], prefix: str) -> dict[str, float]:
    """Mean reward (and its parts), score and tokens per agent, and the group's task score.

    Args:
        infos: Per agent, the final ``info`` of every episode.
        prefix: ``"train"`` or ``"eval"``.
    """
    out: dict[str, float] = {}
    for i, agent_infos in enumerate(infos):
        for part in ("total", "cost", "synergy", "public_share", "penalty"):
            values = [x["reward_components"][part] for x in agent_infos]
            out[f"{prefix}/agent_{i}/reward_{part}"] = float(np.mean(values))
        out[f"{prefix}/agent_{i}/score"] = float(np.mean([x["score"] for x in agent_infos]))
        out[f"{prefix}/agent_{i}/tokens"] = float(np.mean([x["tokens"] for x in agent_infos]))
    out[f"{prefix}/reward"] = float(
        np.mean([x["reward_components"]["total"] for a in infos for x in a])
    )
    out[f"{prefix}/task_score"] = float(np.mean([x["group_score"] for x in infos[-1]]))
    out[f"{prefix}/parse_error_rate"] = float(
        np.mean([x["parse_error"] is not None for a in infos for x in a])
    )
    return out


def evaluate(
    model: nn.Module, tokenizer: Any, envs: Sequence[Any], cfg: PPOConfig
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Greedy play on the fixed held-out problems; returns metrics and 3 sample episodes."""
    total = min(cfg.eval_size, len(envs[0].unwrapped.task.problems(cfg.eval_split)))
    infos: list[list[dict[str, Any]]] = [[] for _ in range(cfg.n_agents)]
    for start in range(0, total, cfg.eval_batch):
        indices = list(range(start, min(total, start + cfg.eval_batch)))
        _, batch_infos = play(
            model, tokenizer, envs, indices, cfg, greedy=True, seeds=[i + 1 for i in indices]
        )
        for agent_infos, new in zip(infos, batch_infos, strict=True):
            agent_infos.extend(new)
    names = agent_names(cfg.n_agents)
    samples = [
        {"problem": infos[0][e]["problem_uid"], "group_score": infos[-1][e]["group_score"]}
        | {name: infos[a][e]["contribution"] for a, name in enumerate(names)}
        for e in range(min(3, total))
    ]
    return episode_metrics(infos, "eval"), samples


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` with ``torch.save`` to a temp file, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(state, tmp)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------ loop
class PPOTrainer:
    """Owns the policies, optimizer, random generator, logs and checkpoints of one run."""

    def __init__(self, cfg: PPOConfig) -> None:
        self.cfg = cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)  # LoRA init draws from the global generator
        self.tokenizer, self.model, self.heads = load_policies(cfg)
        self.lora = lora_parameters(self.model)
        params = list(self.lora.values()) + list(self.heads.parameters())
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
        self.rng = np.random.default_rng(cfg.seed)
        self.update = 0
        self.history: list[dict[str, float]] = []
        self.out = Path(cfg.out_dir)
        self.train_envs = make_envs(cfg, cfg.train_split, cfg.episodes, self.tokenizer)
        self.eval_envs = make_envs(cfg, cfg.eval_split, cfg.eval_batch, self.tokenizer)
        self.n_train = len(self.train_envs[0].unwrapped.task.problems(cfg.train_split))

    # -- state
    def state(self) -> dict[str, Any]:
        """Everything a resumed run needs."""
        return {
            "config": asdict(self.cfg),
            "update": self.update,
            "lora": {n: p.detach().clone() for n, p in self.lora.items()},
            "heads": self.heads.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "history": self.history,
        }

    def load(self, path: str | Path) -> None:
        """Restore a checkpoint written by :meth:`save` (on any device: tensors load on the CPU,
        then are copied to where this trainer's weights live)."""
        state = torch.load(path, map_location="cpu", weights_only=False)
        with torch.no_grad():
            for name, value in state["lora"].items():
                self.lora[name].copy_(value)
        self.heads.load_state_dict(state["heads"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.update = int(state["update"])
        self.history = list(state["history"])

    def save(self) -> Path:
        """Write ``checkpoint.pt`` atomically and rewrite the metrics files to match it."""
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / CHECKPOINT
        save_checkpoint(path, self.state())
        self._write_metrics()
        return path

    def _write_metrics(self) -> None:
        keys = sorted({k for row in self.history for k in row}, key=lambda k: (k != "update", k))
        tmp = self.out / ".metrics.csv.tmp"
        with tmp.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.history)
        os.replace(tmp, self.out / "metrics.csv")

    # -- loop
    def train(self, *, resume: bool = False, progress: bool = True) -> list[dict[str, float]]:
        """Run (or continue) the configured number of updates; returns the metrics rows."""
        from torch.utils.tensorboard import SummaryWriter
        from tqdm import tqdm

        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        if resume and (self.out / CHECKPOINT).exists():
            self.load(self.out / CHECKPOINT)
        # the live log restarts from the checkpoint's history (drops updates after it)
        with (self.out / "metrics.jsonl").open("w") as fh:
            fh.writelines(json.dumps(row) + "\n" for row in self.history)
        (self.out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        task = self.train_envs[0].unwrapped.task
        meta = {**provenance.environment(), "task": task.name, "task_version": task.version,
                "split_hashes": {s: task.split_hash(s) for s in (cfg.train_split, cfg.eval_split)},
                "device": str(next(self.model.parameters()).device)}
        (self.out / "run_meta.json").write_text(json.dumps(meta, indent=2))
        writer = SummaryWriter(str(self.out / "tb"), purge_step=self.update + 1)
        log = (self.out / "samples.jsonl").open("a")
        if self.update == 0:
            self._evaluate(writer, log)
        bar = tqdm(range(self.update, cfg.updates), disable=not progress, desc="ppo")
        began = time.perf_counter()
        for _ in bar:
            start = time.perf_counter()
            indices = self.rng.integers(self.n_train, size=cfg.episodes)
            seed = int(self.rng.integers(2**31))
            rollouts, infos = play(
                self.model, self.tokenizer, self.train_envs, indices, cfg, greedy=False,
                seeds=[seed + e for e in range(cfg.episodes)],
            )
            rollout_s = time.perf_counter() - start
            stats = ppo_update(self.model, self.heads, self.optimizer, rollouts, cfg, self.rng)
            self.update += 1
            elapsed = time.perf_counter() - start
            row = {"update": self.update} | episode_metrics(infos, "train") | {
                f"ppo/{k}": v for k, v in stats.items()
            }
            tokens = sum(float(b.mask.sum()) for b in rollouts)
            row |= {
                "perf/update_s": elapsed,
                "perf/rollout_s": rollout_s,
                "perf/samples_per_s": cfg.episodes * cfg.n_agents / elapsed,
                "perf/tokens": tokens,
            }
            self._log(writer, row)
            bar.set_postfix(reward=f"{row['train/reward']:.3f}",
                            score=f"{row['train/task_score']:.2f}", kl=f"{stats['kl_ref']:.3f}")
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
        metrics, samples = evaluate(self.model, self.tokenizer, self.eval_envs, self.cfg)
        metrics["perf/eval_s"] = time.perf_counter() - start
        self._log(writer, {"update": self.update} | metrics)
        log.write(json.dumps({"update": self.update, "samples": samples}) + "\n")
        log.flush()
        print(
            f"[eval] update {self.update}: reward {metrics['eval/reward']:.3f} "
            f"task score {metrics['eval/task_score']:.3f}",
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


def train(cfg: PPOConfig, *, resume: bool = False, progress: bool = True) -> PPOTrainer:
    """Build a trainer for ``cfg``, run it (continuing from its checkpoint if ``resume``)."""
    trainer = PPOTrainer(cfg)
    trainer.train(resume=resume, progress=progress)
    return trainer
