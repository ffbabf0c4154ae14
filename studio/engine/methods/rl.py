"""Online RL with GRPO (TRL): the model samples answers to prompts and learns from a reward run's scores; no
KL term (beta 0, as in DAPO and Dr GRPO), so no reference model is held. The run ends with its own measure
instead of an evaluation loop: the reward model's mean score of greedy answers, base and tuned."""

from __future__ import annotations

from typing import Literal

from studio.engine.methods.lora import LoraShape, lora_config
from studio.engine.registry import Judging, Method, Sizes, adapter_weights, register


class RlSettings(LoraShape):
    """LoRA's, the reward model that scores the samples, and how many and how long they are."""

    kind: Literal["rl"] = "rl"
    reward_model: str
    num_generations: int
    max_completion_length: int

MEASURE_PROMPTS = 32  # held-out prompts an RL run answers at its end


def _args(common: dict, cfg):
    from trl import GRPOConfig

    m = cfg.method
    return GRPOConfig(**common, num_generations=m.num_generations,
                      max_completion_length=m.max_completion_length, beta=0.0, temperature=1.0)


def _trainer(parts):
    from trl import GRPOTrainer

    from studio.engine.models import load_reward_model

    reward, reward_tok = load_reward_model(parts.prepared.config.method.reward_model)
    return GRPOTrainer, {"reward_funcs": reward, "reward_processing_classes": reward_tok, "eval_dataset": None}


def _measure(trainer, p, run, on_event) -> None:
    """The reward model's mean score of greedy answers to held-out prompts, before (adapter off) and after, and
    how close they stay to the preferred answers (ROUGE-L): the doctor warns when the reward rose while that
    fell (reward hacking)."""
    from studio.engine import runs
    from studio.engine.events import Result
    from studio.engine.judge import reward

    rows = (p.val_rows or p.train_rows)[:MEASURE_PROMPTS]
    preferred = [str(r["chosen"][-1]["content"]) for r in rows] if all(r.get("chosen") for r in rows) else None
    got = reward.sample_rewards(trainer.model, p.tokenizer, trainer.reward_funcs[0],
                                trainer.reward_processing_classes[0], [r["prompt"] for r in rows],
                                p.config.method.max_completion_length, p.config.train.seed, preferred)
    runs.write_status(run, "running", rl_reward=got)
    d, near = got["difference"], got.get("preferred_rougeL")
    closeness = f"; ROUGE-L against the preferred answers {near['base']:.2f} -> {near['tuned']:.2f}" if near else ""
    on_event(Result(f"mean reward of greedy answers to {got['n']} held-out prompts: base {got['base']['mean']:.2f} "
                    f"-> tuned {got['tuned']['mean']:.2f} (difference {d['value']:+.2f} [{d['low']:+.2f}, "
                    f"{d['high']:+.2f}]){closeness}", got))
    trainer.studio_callback.report(trainer.studio_callback.doctor.rewarded(got, trainer.state.global_step))


def _weights(s: Sizes) -> float:
    return adapter_weights(s) + s.params * s.bytes_per_param  # the reward model (taken as the base's size) beside


def _tokens(cfg) -> int:
    return cfg.train.batch_size * (cfg.data.max_length + cfg.method.max_completion_length)  # prompts + answers


def _refuse(cfg) -> str | None:
    m = cfg.method
    if not m.reward_model.strip():
        return ("method.kind rl needs method.reward_model: train one first (method.kind reward on preference "
                "pairs), then give it as run:NAME (its run name)")
    if cfg.train.batch_size % m.num_generations:
        return (f"method.kind rl: train.batch_size {cfg.train.batch_size} must be a multiple of "
                f"method.num_generations {m.num_generations} (each prompt's answers are sampled together)")
    return None


register(Method(name="rl", help="online RL with GRPO: the model samples answers and learns from a reward model's "
                                "scores", packages=("peft", "trl"),
                settings_class=RlSettings, data="prompts",
                packing="TRL's trainer samples its answers itself", peft_config=lora_config, training_args=_args,
                trainer=_trainer, evaluates=False, measure=_measure, weights=_weights, tokens=_tokens,
                judging=Judging(loss_is_the_goal=False), refuse=_refuse, order=50))
