"""The training precision: what ``train.precision: auto`` becomes on this machine, and why, in one place.

On a CUDA GPU, auto is bf16 where the GPU supports it, else fp16. On a CPU, auto is bf16 autocast (the frozen
base stored in bf16, the matrix multiplies in bf16, the adapter's weights, gradients and optimizer in fp32) for a
method that allows it (``Method.cpu_tuned``: LoRA) when the CPU multiplies bf16 in hardware (AMX or AVX512-BF16,
by torch's own probe) and bf16 is measurably faster for this model's shape on this machine: ``gain`` times one
decoder layer of the model's architecture (its own hidden and vocabulary sizes, random weights, a LoRA adapter,
the run's tokens a step up to 512) in both precisions, alternated, and keeps the ratio in the studio home
(engine/calibration.py, keyed by CPU, torch, threads and shape), so a machine measures each shape once. bf16 is
chosen when the ratio is at least ``MIN_GAIN``. The same rule on another CPU can say fp32: the reason is the
measurement (``bench/cpu_precision.py`` times whole models by size; docs/benchmarks.md). Everything else trains
in fp32 on a CPU. Evaluation and generation follow ``resolve`` (fp32 on a CPU), so their numbers stay
comparable from run to run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

MIN_GAIN = 1.1  # bf16 must be at least 10 % faster: below that its rounding and its oneDNN buffers do not pay
MAX_TOKENS = 512  # the calibration's tokens a step, at most (a 7 B layer then takes seconds, not minutes)


@dataclass(frozen=True)
class Choice:
    """The precision a run trains in and the reason, as the log and the run's record say it."""

    name: str  # fp32 | bf16 | fp16
    why: str


def cpu_bf16() -> str | None:
    """The CPU's bf16 hardware by torch's own probe: "AMX", "AVX512-BF16", or None."""
    import torch

    probe = getattr(torch, "cpu", None)
    try:
        if probe is not None and probe._is_amx_tile_supported():
            return "AMX"
        if probe is not None and probe._is_avx512_bf16_supported():
            return "AVX512-BF16"
    except (AttributeError, RuntimeError):  # an older or newer torch without the private probes: no claim
        return None
    return None


def resolve(setting: str) -> str:
    """The precision for loading a model outside training (evaluation, generation, export): the setting, or for
    auto the GPU's half precision and fp32 on a CPU."""
    import torch

    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def _time_layer(arch, tokens: int, steps: int = 3) -> dict[str, float]:
    """The seconds of a LoRA step of one decoder layer of ``arch`` in fp32 and in bf16 (medians, alternated), with
    the global random state put back afterwards (the run's own initialisation draws from it next)."""
    import torch

    with torch.random.fork_rng():
        return _timed_steps(arch, tokens, steps)


def _timed_steps(arch, tokens: int, steps: int) -> dict[str, float]:
    import copy
    import statistics
    import time

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    one = copy.deepcopy(arch)
    one.num_hidden_layers = 1
    for k in ("layer_types", "sliding_window_pattern"):
        if isinstance(getattr(one, k, None), list):
            setattr(one, k, getattr(one, k)[:1])
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, min(one.vocab_size, 1000), (1, tokens), generator=gen)
    models, opts = {}, {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(one, dtype=dtype)
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                                 task_type="CAUSAL_LM"))
        models[name], opts[name] = model, torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for i in range(steps + 1):
        for name in ("fp32", "bf16") if i % 2 else ("bf16", "fp32"):
            start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bf16"):
                loss = models[name](input_ids=ids, labels=ids).loss
            loss.backward()
            opts[name].step()
            opts[name].zero_grad()
            if i:  # the first step of each picks oneDNN's kernels
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(spent) for name, spent in times.items()}


def layer_timing(model_dir: str | Path, tokens: int) -> dict | None:
    """One decoder layer of this model's shape on this machine, a LoRA step of ``tokens`` (capped at
    ``MAX_TOKENS``) in both precisions: ``{"fp32": s, "bf16": s, "tokens": n, "layers": the model's}``, measured
    once and kept (engine/calibration.py); None when it cannot be measured (a model the copy cannot build)."""
    from transformers import AutoConfig

    from studio.engine import calibration

    try:
        arch = AutoConfig.from_pretrained(str(model_dir))
    except (OSError, ValueError):
        return None
    tokens = max(16, min(2 ** round(math.log2(max(1, int(tokens)))), MAX_TOKENS))  # a power of two: few shapes

    def measure() -> dict | None:
        try:
            seconds = _time_layer(arch, tokens)
        except Exception:  # an architecture the one-layer copy cannot build: no claim
            return None
        return {**{k: round(v, 5) for k, v in seconds.items()}, "tokens": tokens}

    found = calibration.measured("layer_step", f"{calibration.machine()} | {calibration.shape(arch)} | {tokens} tokens",
                                 measure)
    return None if found is None else {**found, "layers": getattr(arch, "num_hidden_layers", 1)}


def gain(model_dir: str | Path, tokens: int) -> float | None:
    """How much faster a LoRA step of this model's shape is in bf16 than in fp32 on this machine (measured)."""
    timing = layer_timing(model_dir, tokens)
    return None if timing is None else round(timing["fp32"] / timing["bf16"], 3)


def choose(setting: str, model_dir: str | Path | None, method, tokens: int) -> Choice:
    """What a run trains in: the setting itself unless it is auto; for auto, the rule of this module's doc.
    ``method``: the registry's Method; ``tokens``: the run's tokens a step (batch size times length)."""
    import torch

    if setting != "auto":
        return Choice(setting, "train.precision says so")
    if torch.cuda.is_available():
        name = resolve(setting)
        return Choice(name, "auto: the GPU supports bf16" if name == "bf16" else "auto: the GPU has no bf16, fp16")
    hardware = cpu_bf16()
    if not hardware:
        return Choice("fp32", "auto: this CPU has no bf16 in hardware (neither AMX nor AVX512-BF16)")
    if not method.cpu_tuned:
        return Choice("fp32", f"auto: method.kind {method.name} trains in fp32 on a CPU")
    ratio = gain(model_dir, tokens) if model_dir else None
    if ratio is None:
        return Choice("fp32", "auto: bf16's speed for this model could not be measured on this CPU")
    if ratio < MIN_GAIN:
        return Choice("fp32", f"auto: on this CPU ({hardware}) bf16 measured {ratio:.2f}x fp32 for this model's "
                              f"layers, under the {MIN_GAIN:.1f}x that pays for its rounding")
    return Choice("bf16", f"auto: this CPU multiplies bf16 in hardware ({hardware}) and bf16 measured {ratio:.2f}x "
                          "fp32 for this model's layers: bf16 autocast, the adapter kept in fp32")
