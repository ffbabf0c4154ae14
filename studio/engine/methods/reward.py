"""A reward model: the base with a one-score head instead of its LM head, a LoRA adapter and the new head
trained whole (PEFT's modules_to_save) to rank chosen above rejected (TRL's RewardTrainer). It scores answers
(Compare's reward column, an rl run's reward) and writes none."""

from __future__ import annotations

from typing import Literal

from studio.engine.methods.lora import LoraShape, lora_config
from studio.engine.registry import Judging, Method, batch_tokens, register


class RewardSettings(LoraShape):
    kind: Literal["reward"] = "reward"

MEASURE_PAIRS = 200  # held-out pairs a reward run is measured on
GRAD_SPIKE = 100.0  # a pairwise loss's norms are heavy-tailed and the score head starts random: default runs
#                     burst to 47x the clipping threshold on clipped steps; a learning rate 25x too high, to 679


def _args(common: dict, cfg):
    from trl import RewardConfig

    return RewardConfig(**common, max_length=cfg.data.max_length)


def _trainer(parts):
    from trl import RewardTrainer

    return RewardTrainer, {}


def _measure(trainer, p, run, on_event) -> None:
    """How often it ranks chosen above rejected on held-out pairs, with a Wilson interval."""
    from studio.engine import runs
    from studio.engine.events import Result
    from studio.engine.judge import reward

    if not p.val_rows:
        return
    acc = reward.pair_accuracy(trainer.model, p.tokenizer, p.val_rows[:MEASURE_PAIRS])
    runs.write_status(run, "running", reward_accuracy=acc)
    on_event(Result(f"held-out pairs: the reward model ranks chosen above rejected in {acc['accuracy']:.0%} "
                    f"[{acc['low']:.0%}, {acc['high']:.0%}] of {acc['n']} (chance: 50%)", acc))


def _tokens(cfg) -> int:
    return 2 * batch_tokens(cfg)  # each pair is two sequences, chosen and rejected


register(Method(name="reward", help="a reward model: LoRA and a score head learn to rank chosen above rejected",
                packages=("peft", "trl"), settings_class=RewardSettings, data="preference", score_head=True,
                packing="TRL's trainer batches its pairs itself", peft_config=lora_config, training_args=_args,
                trainer=_trainer, measure=_measure, tokens=_tokens,
                judging=Judging(pairwise=True, grad_spike=GRAD_SPIKE), order=40))
