"""Regional compilation: ``torch.compile`` on the model's repeated decoder layer instead of the whole model (as
PyTorch documents for 2.5+: the layer compiles once and every layer reuses it, so the compile takes a fraction of
a whole-model compile's time), with dynamic shapes (length-grouped batches change length every step).

``train.torch_compile``: ``off``; ``on``: compile the layers; ``auto``: compile them when the run is long enough
to repay the compile on this machine (``decide``: the run's steps against the compile's seconds and the gain
per step measured by bench/cpu_compile.py, docs/benchmarks.md). A compile that fails, at once or on the first
step, falls back to the eager layers with one notice; the run goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

# Measured by bench/cpu_compile.py (docs/benchmarks.md): the steady gain of compiled layers on a CPU, and the
# seconds a first compile takes where this machine has not compiled this shape yet (then the run's own is kept).
CPU_GAIN = {"bf16": 1.05, "fp32": 1.11}  # the ~100 M model's steady step, compiled layers over eager
FIRST_COMPILE_S = 40.0  # a cold compile (kernels built from nothing) of one layer's forward and backward
REPAY = 2.0  # compile only when the run's saving is at least twice the compile's seconds
BACKEND = "inductor"  # torch.compile's; a test swaps in one that fails


@dataclass(frozen=True)
class Decision:
    compile: bool
    why: str


def decide(setting: str, method, splits_or_masks: bool, checkpointing: bool, steps: int,
           step_seconds: float | None, compile_seconds: float | None, precision: str = "fp32") -> Decision:
    """Whether a run compiles its layers: ``on`` / ``off`` as said; ``auto`` on a CPU when the run's expected
    saving (its steps times the seconds a step saves at ``CPU_GAIN`` for its precision) repays ``REPAY`` times
    the compile (this machine's own for the shape where it has compiled one, else ``FIRST_COMPILE_S``). Not on a
    GPU by auto (not measured there: say ``on`` to try it), not for seq2seq or masked-LM objectives, gradient
    checkpointing or a method the CPU rules do not cover (``Method.cpu_tuned``: LoRA)."""
    import torch

    if setting in ("on", "off"):
        return Decision(setting == "on", f"train.torch_compile {setting}")
    if torch.cuda.is_available():
        return Decision(False, "auto: not measured on GPUs (train.torch_compile on tries it)")
    if not method.cpu_tuned or splits_or_masks or checkpointing:
        return Decision(False, "auto: only causal LoRA runs without gradient checkpointing compile by themselves")
    if not step_seconds:
        return Decision(False, "auto: this machine's speed for the model is unknown")
    saving = steps * step_seconds * (1 - 1 / CPU_GAIN.get(precision, CPU_GAIN["fp32"]))
    cost = compile_seconds or FIRST_COMPILE_S
    if saving < REPAY * cost:
        return Decision(False, f"auto: the run would save about {saving:.0f} s against a {cost:.0f} s compile")
    return Decision(True, f"auto: the run would save about {saving:.0f} s against a {cost:.0f} s compile")


def repeated_layers(model) -> list:
    """The blocks a model repeats: the ``nn.ModuleList`` with the most parameters whose members are one class."""
    import torch

    best, most = [], 0
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 1 and len({type(m) for m in module}) == 1:
            n = sum(p.numel() for p in module.parameters())
            if n > most:
                best, most = list(module), n
    return best


def _reason(error: BaseException) -> str:
    """The compiler's own cause in one line (dynamo wraps a backend's error in BackendCompilerFailed)."""
    cause = getattr(error, "inner_exception", None) or error.__cause__ or error
    first = (str(cause).strip().splitlines() or [""])[0][:160]
    return f"{type(cause).__name__}: {first}" if first else type(cause).__name__


def compile_layers(model, say: Callable[[str], None]) -> int:
    """Compile each repeated layer in place; the first failure, in any layer, puts every layer back to eager
    and ``say``s why in one line. Returns how many layers were compiled (0: none found)."""
    import torch

    layers = repeated_layers(model)
    state = {"failed": False}

    def fall_back(error: BaseException) -> None:
        state["failed"] = True
        for layer in layers:
            layer._compiled_call_impl = None
        say(f"torch.compile failed ({_reason(error)}): training on without it")

    for layer in layers:
        compiled = torch.compile(layer._call_impl, dynamic=True, backend=BACKEND)

        def guarded(*args, _layer=layer, _compiled=compiled, **kwargs):
            if not state["failed"]:
                try:
                    return _compiled(*args, **kwargs)
                except Exception as e:  # the compiler's own failure: the eager layer computes the same
                    fall_back(e)
            return _layer._call_impl(*args, **kwargs)

        layer._compiled_call_impl = guarded
    return len(layers)


def trial(model, precision: str, say: Callable[[str], None]) -> float | None:
    """One forward and backward through the compiled layers on a short batch (compiling both passes now, where a
    failure still falls back), in the run's precision, leaving no gradient and no random state behind. Returns
    the seconds it took (the compile), or None when the compile fell back."""
    import torch

    layers = repeated_layers(model)
    vocab = model.get_input_embeddings().weight.shape[0]
    ids = torch.randint(0, vocab, (2, 24), generator=torch.Generator().manual_seed(0))  # not 1: size 1 specialises
    start = time.perf_counter()
    try:
        with torch.random.fork_rng(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            out = model(input_ids=ids, labels=ids)
        out.loss.backward()
    except Exception as e:  # the backward's compile failed: eager from here on
        for layer in layers:
            layer._compiled_call_impl = None
        say(f"torch.compile failed in the backward pass ({_reason(e)}): training on without it")
        return None
    finally:
        model.zero_grad(set_to_none=True)
    if not all(getattr(layer, "_compiled_call_impl", None) is not None for layer in layers):
        return None
    return time.perf_counter() - start
