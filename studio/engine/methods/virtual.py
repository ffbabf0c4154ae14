"""Virtual tokens: prefix tuning (trained key/value prefixes in every layer), P-tuning (virtual tokens from a
small encoder) and prompt tuning (trained virtual-token embeddings only). Nothing merges into the base."""

from __future__ import annotations

from typing import Literal

from studio.engine.registry import Method, Settings, register


class PrefixSettings(Settings):
    kind: Literal["prefix"] = "prefix"
    num_virtual_tokens: int


class PtuningSettings(Settings):
    kind: Literal["ptuning"] = "ptuning"
    num_virtual_tokens: int
    encoder_hidden_size: int


class PromptSettings(Settings):
    kind: Literal["prompt"] = "prompt"
    num_virtual_tokens: int

PACKING = "its virtual tokens go in front of each row, not of each example packed into it"


def _prefix(model, method, total_steps, task):
    import peft

    return peft.PrefixTuningConfig(num_virtual_tokens=method.num_virtual_tokens, task_type=task)


def _ptuning(model, method, total_steps, task):
    import peft

    return peft.PromptEncoderConfig(num_virtual_tokens=method.num_virtual_tokens,
                                    encoder_hidden_size=method.encoder_hidden_size, task_type=task)


def _prompt(model, method, total_steps, task):
    import peft

    return peft.PromptTuningConfig(num_virtual_tokens=method.num_virtual_tokens, task_type=task)


def _no_checkpointing(cfg) -> str | None:
    if cfg.train.gradient_checkpointing:
        return ("method.kind prefix does not work with train.gradient_checkpointing (the prefix is a key/value "
                "cache the recomputed layers do not see); turn checkpointing off")
    return None


register(Method(name="prefix", help="trained key/value prefixes in every layer", settings_class=PrefixSettings,
                merges=False, packing=PACKING, peft_config=_prefix, refuse=_no_checkpointing, order=30))
register(Method(name="ptuning", help="virtual tokens from a small encoder (an MLP)",
                settings_class=PtuningSettings, merges=False, packing=PACKING,
                peft_config=_ptuning, order=31))
register(Method(name="prompt", help="trained virtual-token embeddings only", settings_class=PromptSettings,
                merges=False, packing=PACKING, peft_config=_prompt, order=32))
