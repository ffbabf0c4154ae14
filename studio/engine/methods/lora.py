"""The LoRA family: LoRA (with rsLoRA and DoRA as options), QLoRA (LoRA on a 4/8-bit base) and AdaLoRA (LoRA
whose ranks move to where they help)."""

from __future__ import annotations

from typing import Any, Literal

from studio.engine.registry import SUPERVISED, Method, Settings, Sizes, register


class LoraShape(Settings):
    """What every LoRA-style adapter reads: its rank, scaling, dropout, targets, rsLoRA and DoRA."""

    lora_r: int
    lora_alpha: int
    lora_dropout: float
    target_modules: Any
    use_rslora: bool
    use_dora: bool


class LoraSettings(LoraShape):
    kind: Literal["lora"] = "lora"


class QLoraSettings(LoraShape):
    """LoRA's, and how the base is quantized."""

    kind: Literal["qlora"] = "qlora"
    quant_bits: int
    quant_type: str
    double_quant: bool
    compute_dtype: str


class AdaLoraSettings(Settings):
    """AdaLoRA's budget (its rank moves, so no lora_r), scaling, dropout and targets."""

    kind: Literal["adalora"] = "adalora"
    lora_alpha: int
    lora_dropout: float
    target_modules: Any
    adalora_init_r: int
    adalora_target_r: int


LORA = tuple(f for f in LoraShape.model_fields if f != "kind")  # the LoRA fields, as the Model tab lists them


def targets(model, method):
    from studio.engine.models import lora_targets

    return lora_targets(model, method.target_modules)


def lora_config(model, method, total_steps, task, **extra):
    import peft

    return peft.LoraConfig(r=method.lora_r, lora_alpha=method.lora_alpha, lora_dropout=method.lora_dropout,
                           target_modules=targets(model, method), use_rslora=method.use_rslora,
                           use_dora=method.use_dora, task_type=task, **extra)


def _adalora_config(model, method, total_steps, task):
    """AdaLoRA's rank budget falls from ``adalora_init_r`` to ``adalora_target_r`` between the first tenth and
    the last fifth of the run, so it needs the run's length."""
    import peft

    total = max(2, total_steps or 100)
    return peft.AdaLoraConfig(init_r=method.adalora_init_r, target_r=method.adalora_target_r,
                              lora_alpha=method.lora_alpha, lora_dropout=method.lora_dropout,
                              target_modules=targets(model, method), total_step=total, tinit=total // 10,
                              tfinal=total // 5, deltaT=max(1, total // 50), task_type=task)


def _adalora_callbacks(cfg) -> list:
    """AdaLoRA reallocates its rank budget from the gradients after every optimizer step (PEFT's
    ``update_and_allocate``): after the step, before the gradients are cleared."""
    from transformers import TrainerCallback

    class AdaLoraCallback(TrainerCallback):
        def on_optimizer_step(self, args, state, control, model=None, **kwargs):
            peft_model = getattr(model, "module", model)  # under DDP the model is wrapped
            peft_model.base_model.update_and_allocate(state.global_step)

    return [AdaLoraCallback()]


def _qlora_load(method, precision: str) -> dict:
    import torch

    return {"quantization_config": quantization_config(method, precision),
            "device_map": {"": 0} if torch.cuda.is_available() else {"": "cpu"}}


def quantization_config(method, precision: str):
    import torch
    from transformers import BitsAndBytesConfig

    from studio.engine.models import DTYPES

    compute = precision if method.compute_dtype == "auto" else method.compute_dtype
    if method.quant_bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=method.quant_type,
                              bnb_4bit_use_double_quant=method.double_quant,
                              bnb_4bit_compute_dtype=getattr(torch, DTYPES[compute]),
                              bnb_4bit_quant_storage=torch.uint8)


def _qlora_prepare(model, gradient_checkpointing: bool):
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)


def _qlora_weights(s: Sizes) -> float:
    """Linear layers at 4 bits (+ their constants, quantized again with double quantization) or 8 bits; the
    rest in the training precision; the adapter in fp32."""
    m = s.method
    per = 0.5 + (0.127 / 8 if m.double_quant else 0.5 / 8) if m.quant_bits == 4 else 1.0 + 4 / 64
    return s.linear * per + (s.params - s.linear) * s.bytes_per_param + s.trainable * 4


register(Method(name="lora", help="low-rank adapters beside the frozen base (rsLoRA and DoRA as options)",
                settings_class=LoraSettings, objectives=(*SUPERVISED, "masked_lm", "seq2seq"),
                peft_config=lora_config, cpu_tuned=True, order=10))
register(Method(name="qlora", help="LoRA on a 4- or 8-bit base: the least memory for a large model",
                packages=("peft", "bitsandbytes"), settings_class=QLoraSettings, peft_config=lora_config,
                load=_qlora_load, prepare_model=_qlora_prepare, weights=_qlora_weights, tags=("lora",), order=11))
register(Method(name="adalora", help="LoRA whose ranks move to where they help",
                settings_class=AdaLoraSettings,
                peft_config=_adalora_config, callbacks=_adalora_callbacks, tags=("lora",), order=14))
