"""A method from one file: LoRA whose rank doubles in the later half of the layers (the deeper layers, which
fine-tuning changes most, get more capacity). Everything it differs in is here; the rest is the registry's
defaults and the LoRA family's helpers."""

from typing import Literal

from studio.engine.methods import Method, register
from studio.engine.methods.lora import LoraShape, lora_config

NAME = "lora-deep"


class DeepSettings(LoraShape):
    kind: Literal["lora-deep"] = "lora-deep"


def deeper_rank(model, method, total_steps, task):
    layers = model.config.num_hidden_layers
    later = "|".join(str(i) for i in range(layers // 2, layers))
    return lora_config(model, method, total_steps, task, rank_pattern={rf"layers\.({later})\..*": 2 * method.lora_r})


METHOD = register(Method(name=NAME, help="LoRA with twice the rank in the later half of the layers",
                         settings_class=DeepSettings, peft_config=deeper_rank, tags=("lora",)))
