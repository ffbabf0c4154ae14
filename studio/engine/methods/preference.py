"""Preference tuning with TRL, a LoRA adapter on the policy and the base (the adapter switched off) as the
reference: DPO on (prompt, chosen, rejected) pairs, KTO on answers labelled desirable or not."""

from __future__ import annotations

from typing import Literal

from studio.engine.methods.lora import LoraShape, lora_config
from studio.engine.registry import Judging, Method, register


class DpoSettings(LoraShape):
    kind: Literal["dpo"] = "dpo"


class KtoSettings(LoraShape):
    kind: Literal["kto"] = "kto"

PACKING = "TRL's trainer batches its pairs or samples itself"
DROP_UNUSED = {"remove_unused_columns": True}  # TRL's default for these trainers: they drop the columns they do not use


def _dpo_args(common: dict, cfg):
    from trl import DPOConfig

    return DPOConfig(**(common | DROP_UNUSED), beta=0.1, max_length=cfg.data.max_length)


def _kto_args(common: dict, cfg):
    from trl import KTOConfig

    return KTOConfig(**(common | DROP_UNUSED), beta=0.1, max_length=cfg.data.max_length)


def _dpo(parts):
    from trl import DPOTrainer

    return DPOTrainer, {}


def _kto(parts):
    from trl import KTOTrainer

    return KTOTrainer, {}


register(Method(name="dpo", help="preference pairs: prefer chosen over rejected (DPO, beta 0.1)",
                packages=("peft", "trl"), settings_class=DpoSettings, data="preference", packing=PACKING,
                peft_config=lora_config,
                training_args=_dpo_args, trainer=_dpo, judging=Judging(pairwise=True), tags=("lora",), order=12))
register(Method(name="kto", help="answers labelled desirable or not (KTO)", packages=("peft", "trl"),
                settings_class=KtoSettings,
                data="kto", packing=PACKING, peft_config=lora_config, training_args=_kto_args, trainer=_kto,
                tags=("lora",), order=13))
