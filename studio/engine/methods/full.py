"""Full fine-tuning: every weight trains (fp32 master weights, autocast for speed); the run saves ``model/``."""

from __future__ import annotations

from studio.engine.registry import SUPERVISED, Method, Sizes, register


def _load(method, precision: str) -> dict:
    import torch

    return {"dtype": torch.float32}  # master weights in fp32; autocast makes the half-precision copies per op


def _weights(s: Sizes) -> float:
    return s.params * 4


register(Method(
    name="full", help="every weight trains (the most memory; the run is a whole model)", packages=(),
    adapter=False, objectives=(*SUPERVISED, "masked_lm", "seq2seq"), load=_load, weights=_weights,
    default_lr=2e-5, tags=("full-finetune",), order=0))
