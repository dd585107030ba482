"""Linear layers with prepacked oneDNN weights, for bfloat16 decoding on CPU.

In bfloat16 on CPU, ``torch.nn.functional.linear`` hands oneDNN the plain weight on every call;
oneDNN then prepares it for its kernel each time, which at decoding's few rows costs about as
much as the product itself. Packing each weight once (``torch.ops.mkldnn._reorder_linear_weight``)
and multiplying with ``torch.ops.mkldnn._linear_pointwise`` gives the same products, bit for bit
(oneDNN computes both; ``tests/test_packed_linear.py`` checks it), faster. Measured on a 2-core
AMD EPYC, one thread, 8 rows: SmolLM2-135M's LM head 9.97 -> 5.50 ms, its MLP projections
0.127 -> 0.087 ms, one whole decoding step over 1,060 cache columns 121 -> 97 ms
(``python benchmarks/decode_step_profile.py``, which times both). The packed copies cost the
weights' memory again (250 MiB for SmolLM2-135M).

Only for bfloat16 on CPU with oneDNN's bfloat16 kernels: in float32 the plain path is MKL's,
the packed one oneDNN's, and their products differ in the last bits, which would change texts
and float32 results recorded before.

:meth:`PackedLinears.active` routes the model's ``nn.Linear`` layers through their packed
weights for the duration of a block, and the plain path stays the model's own outside it (so a
learner's training forward, or ``model.generate``, are untouched). Inside the block a layer
still takes the plain path when autograd records. A weight is repacked when it has changed
since it was packed: another tensor (``model.to``, a loaded state dict's new storage) or the
same tensor modified in place (an optimizer step, ``copy_``; its version counter).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F


def packing_supported(model: torch.nn.Module) -> bool:
    """Whether :class:`PackedLinears` speeds this model up: bfloat16 weights on CPU, and a
    PyTorch whose oneDNN has bfloat16 kernels for this CPU."""
    first = next(model.parameters(), None)
    if first is None or first.device.type != "cpu" or first.dtype != torch.bfloat16:
        return False
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class PackedLinears:
    """Prepacked weights of a model's ``nn.Linear`` layers, used inside :meth:`active`.

    Args:
        model: The model; nothing happens unless :func:`packing_supported` holds for it.
        rows: The batch size oneDNN is told to expect (a layout hint; any row count works).
    """

    def __init__(self, model: torch.nn.Module, rows: int = 8) -> None:
        self.enabled = packing_supported(model)
        self.rows = int(rows)
        self.layers = [m for m in model.modules() if type(m) is torch.nn.Linear]
        #: id(layer) -> (the weight packed, its version then, the packed weight)
        self._packed: dict[int, tuple[torch.Tensor, int, torch.Tensor]] = {}
        self._depth = 0  # nested active() blocks

    @contextmanager
    def active(self) -> Iterator[None]:
        """Within the block, the linear layers multiply by their packed weights."""
        if not self.enabled:
            yield
            return
        if self._depth == 0:
            for layer in self.layers:
                layer.forward = self._forward_of(layer)
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                for layer in self.layers:
                    del layer.forward  # back to nn.Linear.forward

    def _forward_of(self, layer: torch.nn.Linear) -> Any:
        def forward(x: torch.Tensor) -> torch.Tensor:
            weight = layer.weight
            if (torch.is_grad_enabled() and weight.requires_grad) or not weight.is_cpu \
                    or weight.dtype != torch.bfloat16 or x.dtype != torch.bfloat16:
                return F.linear(x, weight, layer.bias)  # training, or moved since
            packed = self.packed_weight(layer)
            flat = x.reshape(-1, x.shape[-1]).contiguous()
            y = torch.ops.mkldnn._linear_pointwise(flat, packed, layer.bias, "none", [], "")
            return y.reshape(*x.shape[:-1], y.shape[-1])
        return forward

    def packed_weight(self, layer: torch.nn.Linear) -> torch.Tensor:
        """The layer's packed weight, repacked if the weight changed since it was packed."""
        weight = layer.weight
        cached = self._packed.get(id(layer))
        if cached is None or cached[0] is not weight or cached[1] != weight._version:
            with torch.no_grad():
                packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), self.rows)
            cached = (weight, weight._version, packed)
            self._packed[id(layer)] = cached
        return cached[2]
