"""The MAC-SPGG paper's learner: frozen LLMs, a small PPO policy per agent over generation params.

The LLMs are never fine-tuned. Agent i owns a small network that reads a state and outputs the
six generation parameters its (frozen) LLM then samples with; the network is trained with PPO on
agent i's mechanism reward. Works with any :class:`~spgg_env.agents.backend.Backend`.

**State** ``s = [E(task), onehot(position), n_visible / (n - 1), log(1 + T_vis) / log(1 + T_max),
E(visible context)]`` where ``E`` is a frozen sentence embedding (:class:`TextEmbedder`: mean of
the last hidden states over the text's tokens, L2-normalised), ``T_vis`` the tokens of the visible
predecessors' contributions and ``T_max = n * max_tokens``. ``E(visible context)`` is 0 when
nothing is visible.

**Policy.** ``h = MLP(s)`` (two tanh layers); ``z ~ Normal(mu(h), diag(sigma^2))`` over six
unbounded pre-activations with a learned, state-independent ``log sigma``; a value head ``V(h)``.
The bounded map (:class:`ParamRanges`) sends ``z_j`` to ``low_j + (high_j - low_j) *
sigmoid(z_j)``; ``top_k`` and ``max_new_tokens`` are rounded. Log-probabilities are taken on
``z`` (the map is fixed, so PPO ratios need no Jacobian).

**PPO** (the paper's settings, :class:`GenParamConfig`): Adam lr 5e-4, clip 0.2, 4 epochs,
entropy coefficient 0.02, early stop once the approximate KL ``E[(r - 1) - log r]`` exceeds
0.015. Each agent acts once per episode, so the return is its reward ``R`` and the advantage is
``A = R - V(s)``, normalised over the batch; the value loss is ``0.5 * (V(s) - R)^2``.
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Normal

from spgg_env.agents.backend import Backend, ChatPrompt, Generation, GenerationParams

PARAM_NAMES = tuple(f.name for f in fields(GenerationParams))
INTEGER_PARAMS = ("top_k", "max_new_tokens")


# --------------------------------------------------------------------------- bounded map
@dataclass(frozen=True)
class ParamRanges:
    """The configured range ``(low, high)`` of each generation parameter, and where it starts.

    ``initial`` holds the parameters the untrained policy's mean maps to (default: the middle
    of each range would be arbitrary, so a moderate decoding setup is used).
    """

    temperature: tuple[float, float] = (0.05, 1.5)
    top_p: tuple[float, float] = (0.5, 1.0)
    top_k: tuple[float, float] = (1, 100)
    max_new_tokens: tuple[float, float] = (16, 512)
    repetition_penalty: tuple[float, float] = (1.0, 1.5)
    presence_penalty: tuple[float, float] = (0.0, 1.0)
    initial: dict[str, float] = field(
        default_factory=lambda: {
            "temperature": 0.7,
            "top_p": 0.9,
            "top_k": 50,
            "max_new_tokens": 256,
            "repetition_penalty": 1.1,
            "presence_penalty": 0.2,
        }
    )

    def __post_init__(self) -> None:
        for name in PARAM_NAMES:
            low, high = getattr(self, name)
            if not low < high:
                raise ValueError(f"range of {name} must satisfy low < high, got {(low, high)}")
            start = self.initial.get(name)
            if start is None or not low < start < high:
                raise ValueError(
                    f"initial {name} must lie strictly inside {(low, high)}, got {start!r}"
                )
        GenerationParams(**{n: getattr(self, n)[0] for n in PARAM_NAMES})  # lows valid
        GenerationParams(**{n: getattr(self, n)[1] for n in PARAM_NAMES})  # highs valid

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(low, high)`` tensors of shape ``(6,)``, in :data:`PARAM_NAMES` order."""
        low = torch.tensor([getattr(self, n)[0] for n in PARAM_NAMES], dtype=torch.float32)
        high = torch.tensor([getattr(self, n)[1] for n in PARAM_NAMES], dtype=torch.float32)
        return low, high

    def initial_logits(self) -> torch.Tensor:
        """Pre-activations ``z0`` whose bounded values are :attr:`initial`."""
        low, high = self.bounds()
        start = torch.tensor([float(self.initial[n]) for n in PARAM_NAMES])
        return torch.logit((start - low) / (high - low))

    def values(self, z: torch.Tensor) -> torch.Tensor:
        """The bounded map ``low + (high - low) * sigmoid(z)``, unrounded, shape ``(..., 6)``."""
        low, high = (bound.to(z.device) for bound in self.bounds())
        return low + (high - low) * torch.sigmoid(z)

    def to_params(self, z: torch.Tensor) -> list[GenerationParams]:
        """One :class:`GenerationParams` per row of ``z`` (shape ``(batch, 6)``)."""
        out = []
        for row in self.values(z.detach().cpu().reshape(-1, len(PARAM_NAMES))).tolist():
            kwargs: dict[str, Any] = dict(zip(PARAM_NAMES, row, strict=True))
            for name in INTEGER_PARAMS:
                kwargs[name] = int(round(kwargs[name]))
            out.append(GenerationParams(**kwargs))
        return out


# ----------------------------------------------------------------------------- state
class TextEmbedder:
    """Frozen sentence embedding: mean of a transformer's last hidden states, L2-normalised.

    Works with any transformers model folder or object: an encoder such as all-MiniLM-L6-v2
    (its sentence-transformers recipe is exactly this mean pooling) or a causal LM such as the
    embedded SmolLM2 (the default, :func:`spgg_env.embedded_model.embedded_model_path`, so no
    extra download or package is needed). Embeddings are cached by text.

    Args:
        model: A folder, a hub id, ``"embedded"``, or a ready ``PreTrainedModel``.
        tokenizer: Needed with a ready model; loaded from the folder otherwise.
        max_length: Texts are cut to this many tokens (from the left: the end of a prompt
            holds the newest context).
        batch_size: Texts embedded per forward pass.
        device: Where the model runs: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``,
            ``"cuda"``...; ``None`` (default) keeps a ready model where it is and loads a folder
            on ``"auto"``. Embeddings come back on the CPU either way.
    """

    def __init__(
        self,
        model: Any = "embedded",
        tokenizer: Any = None,
        *,
        max_length: int = 256,
        batch_size: int = 16,
        device: str | None = None,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        from spgg_env.models import resolve_device

        if isinstance(model, str | Path):
            path = str(model)
            if path == "embedded":
                from spgg_env.embedded_model import embedded_model_path

                path = str(embedded_model_path())
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(path)
            model = AutoModel.from_pretrained(path, dtype=torch.float32)
            device = device or "auto"
        if tokenizer is None:
            raise ValueError("a ready model needs its tokenizer: TextEmbedder(model, tokenizer)")
        if device is not None:
            model = model.to(resolve_device(device))
        self.model = model.eval().requires_grad_(False)
        self.device = next(model.parameters()).device
        self.tokenizer = copy.deepcopy(tokenizer)  # a backend's shared tokenizer stays as it was
        self.tokenizer.truncation_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or self.tokenizer.unk_token
        self.max_length = max_length
        self.batch_size = batch_size
        self.dim = int(model.config.hidden_size)
        self._cache: dict[str, np.ndarray] = {}

    @torch.inference_mode()
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts``, shape ``(len(texts), dim)``, float32."""
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        for start in range(0, len(todo), self.batch_size):
            chunk = todo[start : start + self.batch_size]
            batch = self.tokenizer(
                [t or " " for t in chunk],
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self.max_length,
            ).to(self.device)
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            pooled = torch.nn.functional.normalize(pooled.float(), dim=-1)
            for text, vector in zip(chunk, pooled.cpu().numpy(), strict=True):
                self._cache[text] = vector
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts]).astype(np.float32)


class StateEncoder:
    """Builds the policy's state vector (formula in the module docstring).

    Args:
        embedder: Anything with ``dim`` and ``embed(texts) -> (len, dim)`` array.
        n_agents: Number of agents.
        max_tokens: The env's ``max_tokens`` (tokens at which effort reaches 1).
        count_tokens: ``text -> tokens`` (e.g. ``backend.count_tokens``).
    """

    def __init__(
        self,
        embedder: Any,
        n_agents: int,
        max_tokens: int = 512,
        count_tokens: Callable[[str], int] | None = None,
    ) -> None:
        self.embedder = embedder
        self.n_agents = n_agents
        self.max_tokens = max_tokens
        self.count_tokens = count_tokens or (lambda text: len(text.split()))
        self.dim = 2 * embedder.dim + n_agents + 2

    def encode(self, task_texts: Sequence[str], positions: Sequence[int],
               visible: Sequence[Sequence[str]]) -> torch.Tensor:
        """States of a batch: task text, position and visible contributions of each row."""
        task = self.embedder.embed(list(task_texts))
        joined = ["\n\n".join(v) for v in visible]
        nonempty = [t for t in joined if t]
        context = np.zeros((len(joined), self.embedder.dim), dtype=np.float32)
        if nonempty:
            embedded = dict(zip(nonempty, self.embedder.embed(nonempty), strict=True))
            for row, text in enumerate(joined):
                if text:
                    context[row] = embedded[text]
        onehot = np.eye(self.n_agents, dtype=np.float32)[list(positions)]
        n_visible = np.array([len(v) for v in visible], np.float32) / max(1, self.n_agents - 1)
        tokens = np.array([sum(self.count_tokens(t) for t in v) for v in visible], np.float32)
        length = np.log1p(tokens) / math.log1p(self.n_agents * self.max_tokens)
        parts = [task, onehot, n_visible[:, None], length[:, None], context]
        return torch.from_numpy(np.concatenate(parts, axis=1))


# ---------------------------------------------------------------------------- policy
@dataclass
class GenParamConfig:
    """PPO and network settings; defaults are the paper's PPO settings."""

    lr: float = 5e-4
    clip: float = 0.2
    epochs: int = 4
    entropy_coef: float = 0.02
    target_kl: float = 0.015
    value_coef: float = 0.5
    minibatch_size: int = 16
    max_grad_norm: float = 0.5
    hidden: int = 64
    init_log_std: float = -0.5

    def __post_init__(self) -> None:
        positive = ("lr", "clip", "epochs", "target_kl", "minibatch_size", "hidden")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")


class GenParamPolicy(nn.Module):
    """Gaussian policy over the six pre-activations, with a value head.

    Args:
        state_dim: Length of the state vector.
        ranges: The bounded map; the mean head starts at its :meth:`ParamRanges.initial_logits`.
        config: Network sizes and the initial ``log sigma``.
    """

    def __init__(self, state_dim: int, ranges: ParamRanges, config: GenParamConfig) -> None:
        super().__init__()
        self.ranges = ranges
        self.trunk = nn.Sequential(
            nn.Linear(state_dim, config.hidden), nn.Tanh(),
            nn.Linear(config.hidden, config.hidden), nn.Tanh(),
        )
        self.mean = nn.Linear(config.hidden, len(PARAM_NAMES))
        self.value = nn.Linear(config.hidden, 1)
        self.log_std = nn.Parameter(torch.full((len(PARAM_NAMES),), config.init_log_std))
        with torch.no_grad():
            self.mean.weight.mul_(0.01)
            self.mean.bias.copy_(ranges.initial_logits())

    def forward(self, state: torch.Tensor) -> tuple[Normal, torch.Tensor]:
        """The action distribution over ``z`` and the value, for a batch of states."""
        h = self.trunk(state)
        return Normal(self.mean(h), self.log_std.exp()), self.value(h).squeeze(-1)

    @torch.no_grad()
    def act(self, state: torch.Tensor, generator: torch.Generator | None = None,
            deterministic: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample ``z`` (or take the mean); return ``(z, log_prob(z), value)``."""
        dist, value = self(state)
        if deterministic:
            z = dist.mean
        else:
            # drawn on the CPU generator: the same noise on every device
            noise = torch.randn(dist.mean.shape, generator=generator).to(dist.mean.device)
            z = dist.mean + dist.stddev * noise
        return z, dist.log_prob(z).sum(-1), value

    @torch.no_grad()
    def mean_params(self, state: torch.Tensor) -> dict[str, float]:
        """The bounded parameters at the policy's mean, averaged over the batch of states."""
        dist, _ = self(state)
        values = self.ranges.values(dist.mean).mean(0)
        return dict(zip(PARAM_NAMES, values.tolist(), strict=True))


def ppo_update(
    policy: GenParamPolicy,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, torch.Tensor],
    config: GenParamConfig,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """One PPO update on a batch of one-step episodes (formulas in the module docstring).

    Args:
        batch: ``states (B, d)``, ``z (B, 6)``, ``log_probs (B,)``, ``rewards (B,)``.

    Returns:
        Mean policy loss, value loss, entropy, last approximate KL, epochs run, clip fraction.
    """
    states, z, old_logp, rewards = (batch[k] for k in ("states", "z", "log_probs", "rewards"))
    with torch.no_grad():
        _, values = policy(states)
        adv = rewards - values
        if adv.numel() > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    size = states.shape[0]
    stats = {"policy_loss": 0.0, "value_loss": 0.0, "entropy": 0.0, "approx_kl": 0.0,
             "clip_frac": 0.0, "epochs": 0.0}
    steps = 0
    for epoch in range(config.epochs):
        order = torch.randperm(size, generator=generator).to(states.device)
        for start in range(0, size, config.minibatch_size):
            idx = order[start : start + config.minibatch_size]
            dist, value = policy(states[idx])
            logp = dist.log_prob(z[idx]).sum(-1)
            log_ratio = logp - old_logp[idx]
            ratio = log_ratio.exp()
            clipped = ratio.clamp(1 - config.clip, 1 + config.clip)
            policy_loss = -torch.min(ratio * adv[idx], clipped * adv[idx]).mean()
            value_loss = 0.5 * (value - rewards[idx]).pow(2).mean()
            entropy = dist.entropy().sum(-1).mean()
            loss = policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                kl = ((ratio - 1) - log_ratio).mean().item()
                frac = ((ratio - 1).abs() > config.clip).float().mean().item()
            for key, val in (("policy_loss", policy_loss.item()), ("value_loss", value_loss.item()),
                             ("entropy", entropy.item()), ("clip_frac", frac)):
                stats[key] += val
            stats["approx_kl"] = kl
            steps += 1
        stats["epochs"] = epoch + 1
        if stats["approx_kl"] > config.target_kl:
            break
    for key in ("policy_loss", "value_loss", "entropy", "clip_frac"):
        stats[key] /= max(steps, 1)
    return stats


# --------------------------------------------------------------------------- rollouts
@dataclass
class AgentStep:
    """What one agent saw, chose and got in one episode of the text game."""

    position: int
    task_text: str
    visible: list[str]
    params: GenerationParams
    generation: Generation
    reward: float
    info: dict[str, Any]


def play_text_episodes(
    envs: Sequence[Any],
    backend: Backend,
    choose: Callable[[int, list[tuple[str, list[str]]]], list[GenerationParams]],
    *,
    seed: int = 0,
    system_prompt: str | None = None,
    reset_options: Sequence[dict[str, Any] | None] | None = None,
) -> list[list[AgentStep]]:
    """Play one episode in each env in lockstep: agent i of every env in one backend call.

    Args:
        envs: Text-game envs from ``spgg_env.aec_env`` with the same number of agents.
        backend: Generates the contributions.
        choose: ``choose(position, [(task_text, visible_texts) per env]) -> params per env``.
        seed: Env ``b`` resets with ``seed + b``; agent i's backend call uses ``seed * 7919 + i``.
        system_prompt: Optional system message before each prompt.
        reset_options: Per-env ``reset`` options (e.g. ``{"problem_index": k}``).

    Returns:
        ``steps[b][i]``: agent i's step in env b, with its reward and final ``info``.
    """
    bases = [env.unwrapped for env in envs]
    n = len(bases[0].possible_agents)
    if any(len(b.possible_agents) != n for b in bases):
        raise ValueError("all envs of a lockstep batch need the same number of agents")
    for b, env in enumerate(envs):
        env.reset(seed=seed + b, options=(reset_options or [None] * len(envs))[b])
    chosen: list[list[GenerationParams]] = []
    generations: list[list[Generation]] = []
    seen: list[list[tuple[str, list[str]]]] = []
    for position in range(n):
        views = []
        for base in bases:
            views.append((base.problem.question, [t for _, t in base.visible(position)]))
        params = choose(position, views)
        prompts: list[ChatPrompt] = []
        for env in envs:
            obs = env.observe(env.agent_selection)
            chat = [{"role": "user", "content": obs["prompt"]}]
            prompts.append(([{"role": "system", "content": system_prompt}] if system_prompt
                            else []) + chat)
        gens = backend.generate(prompts, params, seed=seed * 7919 + position)
        for env, gen in zip(envs, gens, strict=True):
            env.step(gen.text)
        chosen.append(list(params))
        generations.append(gens)
        seen.append(views)
    steps = []
    for b, base in enumerate(bases):
        steps.append([
            AgentStep(i, seen[i][b][0], seen[i][b][1], chosen[i][b], generations[i][b],
                      float(base.rewards[agent]), dict(base.infos[agent]))
            for i, agent in enumerate(base.possible_agents)
        ])
    return steps


def play_text_episode(
    env: Any,
    backend: Backend,
    choose: Callable[[int, Any], GenerationParams],
    *,
    seed: int = 0,
    system_prompt: str | None = None,
) -> list[AgentStep]:
    """One episode in one env; ``choose(position, (task_text, visible)) -> params``."""
    def batched(position: int, views: list[tuple[str, list[str]]]) -> list[GenerationParams]:
        return [choose(position, view) for view in views]

    return play_text_episodes([env], backend, batched, seed=seed,
                              system_prompt=system_prompt)[0]


# ---------------------------------------------------------------------------- training
class GenParamLearner:
    """One :class:`GenParamPolicy` per agent, trained with PPO on their mechanism rewards.

    Args:
        envs: Text-game envs (a lockstep batch; one episode each per iteration).
        backend: Any backend; its ``count_tokens`` measures the visible context.
        embedder: Frozen text embedder (default: :class:`TextEmbedder` on the embedded model).
        ranges: Parameter ranges and initial values.
        config: PPO settings.
        seed: Seeds the networks, the sampling of ``z`` and the episodes.
        system_prompt: Optional system message before each prompt.
        device: Where the policies train: ``"auto"`` (CUDA when available, else CPU),
            ``"cpu"``, ``"cuda"``... The random generator stays on the CPU, so a seed draws
            the same ``z`` noise and minibatch order on every device.
        train_uids: Problems to train on (uids of the envs' split); iteration t draws one per
            env with ``numpy.random.default_rng([seed, t])``. ``None``: each env draws from its
            whole split. Use it to keep benchmark problems out of training.
        embedder_spec: How to rebuild ``embedder`` at inference (``model``, ``dtype``,
            ``max_length``), stored in checkpoints; derived for the default embedder.
    """

    def __init__(
        self,
        envs: Sequence[Any],
        backend: Backend,
        embedder: Any = None,
        *,
        ranges: ParamRanges | None = None,
        config: GenParamConfig | None = None,
        seed: int = 0,
        system_prompt: str | None = None,
        device: str = "auto",
        train_uids: Sequence[str] | None = None,
        embedder_spec: dict[str, Any] | None = None,
    ) -> None:
        from spgg_env.models import resolve_device

        if not envs:
            raise ValueError("GenParamLearner needs at least one env")
        self.envs = list(envs)
        self.backend = backend
        base = self.envs[0].unwrapped
        self.n_agents = len(base.possible_agents)
        self.ranges = ranges or ParamRanges()
        self.config = config or GenParamConfig()
        if embedder is None:
            embedder = TextEmbedder()
            embedder_spec = {"model": "embedded", "dtype": "float32",
                             "max_length": embedder.max_length}
        self.embedder_spec = embedder_spec
        self.encoder = StateEncoder(embedder, self.n_agents, base.max_tokens,
                                    backend.count_tokens)
        self.train_uids = list(train_uids) if train_uids is not None else None
        if self.train_uids == []:
            raise ValueError("train_uids is empty: give at least one problem uid, or None")
        torch.manual_seed(seed)
        self.device = resolve_device(device)
        self.policies = nn.ModuleList(
            GenParamPolicy(self.encoder.dim, self.ranges, self.config)
            for _ in range(self.n_agents)
        ).to(self.device)
        self.optimizers = [torch.optim.Adam(p.parameters(), lr=self.config.lr)
                           for p in self.policies]
        self.generator = torch.Generator().manual_seed(seed)
        self.seed = seed
        self.system_prompt = system_prompt
        self.iteration = 0
        self.history: list[dict[str, Any]] = []

    @classmethod
    def for_task(
        cls,
        task: str = "arith",
        *,
        model: str = "embedded",
        n_agents: int = 3,
        n_envs: int = 8,
        observation: str = "full",
        mechanism: str = "mac-spgg",
        max_tokens: int = 192,
        seed: int = 0,
        config: GenParamConfig | None = None,
        device: str = "auto",
        train_uids: Sequence[str] | None = None,
        **env_options: Any,
    ) -> GenParamLearner:
        """A learner on ``task`` with a local transformers model (default: the embedded one).

        The state embedder reuses the backend's frozen transformer body, so one model is
        loaded; ``max_new_tokens`` ranges over ``[16, max_tokens]`` starting at its middle, and
        the env counts effort in the model's own tokens. ``device`` places the model, the
        embedder and the policies (``"auto"``: CUDA when available). ``train_uids``: see the
        class; ``env_options`` go to ``aec_env`` (e.g. ``split="train"``).
        """
        from spgg_env.agents.transformers_backend import TransformersBackend
        from spgg_env.env import aec_env

        backend = TransformersBackend(model, seed=seed, device=device)
        embedder = TextEmbedder(backend.model.base_model, backend.tokenizer)
        envs = [
            aec_env(task=task, n_agents=n_agents, observation=observation, mechanism=mechanism,
                    max_tokens=max_tokens, token_counter=backend.count_tokens, **env_options)
            for _ in range(n_envs)
        ]
        ranges = ParamRanges(
            max_new_tokens=(16, max_tokens),
            initial={**ParamRanges().initial, "max_new_tokens": (16 + max_tokens) // 2},
        )
        spec = {"model": str(model), "dtype": str(backend.dtype).removeprefix("torch."),
                "max_length": embedder.max_length}
        return cls(envs, backend, embedder, ranges=ranges, config=config, seed=seed,
                   device=device, train_uids=train_uids, embedder_spec=spec)

    def _states(self, position: int, views: list[tuple[str, list[str]]]) -> torch.Tensor:
        states = self.encoder.encode([v[0] for v in views], [position] * len(views),
                                     [v[1] for v in views])
        return states.to(self.device)

    def collect(self, deterministic: bool = False) -> tuple[list[dict[str, torch.Tensor]], list]:
        """Play one lockstep batch; return per-agent PPO batches and the raw steps."""
        record: list[dict[str, torch.Tensor]] = [{} for _ in range(self.n_agents)]

        def choose(position: int, views: list[tuple[str, list[str]]]) -> list[GenerationParams]:
            states = self._states(position, views)
            z, logp, _ = self.policies[position].act(states, self.generator, deterministic)
            record[position].update(states=states, z=z, log_probs=logp)
            return self.ranges.to_params(z)

        episode_seed = self.seed * 1_000_003 + self.iteration * len(self.envs)
        reset_options = None
        if self.train_uids is not None:
            rng = np.random.default_rng([self.seed, self.iteration])
            picks = rng.choice(len(self.train_uids), size=len(self.envs),
                               replace=len(self.train_uids) < len(self.envs))
            reset_options = [{"problem_uid": self.train_uids[int(k)]} for k in picks]
        steps = play_text_episodes(self.envs, self.backend, choose, seed=episode_seed,
                                   system_prompt=self.system_prompt,
                                   reset_options=reset_options)
        for i in range(self.n_agents):
            record[i]["rewards"] = torch.tensor([s[i].reward for s in steps],
                                                dtype=torch.float32, device=self.device)
        return record, steps

    def train_step(self) -> dict[str, Any]:
        """Collect one batch and run one PPO update per agent; return the iteration's metrics."""
        record, steps = self.collect()
        row: dict[str, Any] = {"iteration": self.iteration}
        for i, (policy, opt) in enumerate(zip(self.policies, self.optimizers, strict=True)):
            # the parameters this batch was played with (at the policy's mean), then the update
            means = policy.mean_params(record[i]["states"])
            stats = ppo_update(policy, opt, record[i], self.config, self.generator)
            row[f"agent_{i}/reward"] = float(record[i]["rewards"].mean())
            row[f"agent_{i}/score"] = float(np.mean([s[i].info.get("score", 0.0) for s in steps]))
            row |= {f"agent_{i}/{k}": v for k, v in stats.items()}
            row |= {f"agent_{i}/{k}": v for k, v in means.items()}
        self.iteration += 1
        self.history.append(row)
        return row

    def train(self, iterations: int, *, log_dir: str | Path | None = None,
              checkpoint: str | Path | None = None, progress: bool = True) -> list[dict]:
        """Run ``iterations`` PPO iterations; resume from ``checkpoint`` when it exists.

        Args:
            iterations: Total iterations wanted (a resumed run does only the remainder).
            log_dir: TensorBoard folder (scalars of every metric), or ``None``.
            checkpoint: File written atomically after every iteration, or ``None``.
            progress: Show a tqdm bar.
        """
        from tqdm.auto import tqdm

        if checkpoint is not None and Path(checkpoint).exists():
            self.load(checkpoint)
        writer = None
        if log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(log_dir))
        bar = tqdm(total=iterations, initial=self.iteration, disable=not progress,
                   desc="genparam PPO")
        while self.iteration < iterations:
            row = self.train_step()
            if writer is not None:
                for key, value in row.items():
                    if key != "iteration":
                        writer.add_scalar(key, value, row["iteration"])
            if checkpoint is not None:
                self.save(checkpoint)
            bar.update(1)
            bar.set_postfix(reward=np.mean([row[f"agent_{i}/reward"]
                                            for i in range(self.n_agents)]))
        bar.close()
        if writer is not None:
            writer.close()
        return self.history

    def inference_spec(self) -> dict[str, Any]:
        """What inference needs besides the weights (read by
        :func:`spgg_env.agents.genparam_inference.load_inference_policy`): the state encoder's
        embedder, ``n_agents`` and ``max_tokens``, the state size, the ranges, and the setting
        trained for (task, split, observation, mechanism)."""
        base = self.envs[0].unwrapped
        ranges = {name: list(getattr(self.ranges, name)) for name in PARAM_NAMES}
        return {
            "format": "spgg-genparam/1",
            "task": base.task.name,
            "split": base.split,
            "observation": base.observation_mode,
            "mechanism": base.mechanism.name,
            "n_agents": self.n_agents,
            "max_tokens": self.encoder.max_tokens,
            "state_dim": self.encoder.dim,
            "ranges": {**ranges, "initial": dict(self.ranges.initial)},
            "embedder": self.embedder_spec,
            "train_problems": None if self.train_uids is None else {
                "n": len(self.train_uids),
                "uids_sha256": hashlib.sha256("\n".join(self.train_uids).encode()).hexdigest(),
            },
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (networks, optimisers, generator, history, config) and
        to run the policy alone (``inference``: :meth:`inference_spec`)."""
        return {
            "inference": self.inference_spec(),
            "policies": self.policies.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "generator": self.generator.get_state(),
            "iteration": self.iteration,
            "history": self.history,
            "config": asdict(self.config),
        }

    def save(self, path: str | Path) -> None:
        """Write :meth:`state_dict` atomically (temp file in the same folder, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
            torch.save(self.state_dict(), tmp)
        os.replace(tmp.name, path)

    def load(self, path: str | Path) -> None:
        """Restore a :meth:`save` checkpoint, written on any device (it loads on the CPU, then
        the weights and optimiser state are copied to this learner's device)."""
        state = torch.load(path, map_location="cpu", weights_only=False)
        self.policies.load_state_dict(state["policies"])
        for opt, opt_state in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(opt_state)
        self.generator.set_state(state["generator"])
        self.iteration = int(state["iteration"])
        self.history = list(state["history"])
