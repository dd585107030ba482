"""The generation-parameter learner's network and its PPO update.

**Network.** ``h = MLP(s)`` (two tanh layers); ``z ~ Normal(mu(h), diag(sigma^2))`` over the six
unbounded pre-activations of :mod:`~spgg_env.agents.genparam_ranges`, with a learned,
state-independent ``log sigma``; a value head ``V(h)``. The mean head starts at the ranges'
initial parameters.

**PPO** (:func:`update_network`; the paper's settings are the defaults of
:class:`~spgg_env.agents.genparam_learner.GenParamConfig`: Adam lr 5e-4, clip 0.2, 4 epochs,
entropy coefficient 0.02, early stop once the approximate KL ``E[(r - 1) - log r]`` exceeds
0.015). Each agent acts once per episode, so the return is its reward ``R`` and the advantage is
``A = R - V(s)``, normalised over the batch; the loss on a minibatch is

    L = -mean min(r A, clip(r, 1 - eps, 1 + eps) A) + c_v * 0.5 * mean (V(s) - R)^2
        - c_H * mean H(pi(. | s)),      r = exp(log pi(z | s) - log pi_old(z | s)).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.distributions import Normal

from spgg_env.agents.genparam_ranges import PARAM_NAMES, ParamRanges


class GenParamNetwork(nn.Module):
    """Gaussian policy over the six pre-activations, with a value head.

    Args:
        state_dim: Length of the state vector.
        ranges: The bounded map; the mean head starts at its :meth:`ParamRanges.initial_logits`.
        hidden: Width of the two tanh layers.
        init_log_std: Initial ``log sigma``.
    """

    def __init__(self, state_dim: int, ranges: ParamRanges, hidden: int = 64,
                 init_log_std: float = -0.5) -> None:
        super().__init__()
        self.ranges = ranges
        self.trunk = nn.Sequential(
            nn.Linear(state_dim, hidden), nn.Tanh(),
            nn.Linear(hidden, hidden), nn.Tanh(),
        )
        self.mean = nn.Linear(hidden, len(PARAM_NAMES))
        self.value = nn.Linear(hidden, 1)
        self.log_std = nn.Parameter(torch.full((len(PARAM_NAMES),), float(init_log_std)))
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


def update_network(
    network: GenParamNetwork,
    optimizer: torch.optim.Optimizer,
    batch: dict[str, torch.Tensor],
    config: Any,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """One PPO update of one agent's network on its one-step episodes (module docstring).

    Args:
        batch: ``states (B, d)``, ``z (B, 6)``, ``log_probs (B,)``, ``rewards (B,)``.
        config: Has ``epochs``, ``minibatch_size``, ``clip``, ``value_coef``, ``entropy_coef``,
            ``max_grad_norm`` and ``target_kl``.
        generator: Draws the minibatch order.

    Returns:
        Mean policy loss, value loss, entropy, last approximate KL, epochs run, clip fraction.
    """
    states, z, old_logp, rewards = (batch[k] for k in ("states", "z", "log_probs", "rewards"))
    with torch.no_grad():
        _, values = network(states)
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
            dist, value = network(states[idx])
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
            nn.utils.clip_grad_norm_(network.parameters(), config.max_grad_norm)
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
