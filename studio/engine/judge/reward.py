"""What a reward model says: scores of answers, how often it ranks chosen above rejected, and whether an RL stage raised
the scores of what the model writes.

Contract: ``scores(model, tokenizer, conversations)`` -> one float per conversation (the score head at the last token,
as TRL's RewardTrainer trains it); ``pair_accuracy(model, tokenizer, pairs)`` -> accuracy on held-out preference pairs
with a 95 % Wilson interval (chance is 0.5; honest at 24 of 24, where a bootstrap is zero-wide);
``sample_rewards(policy, tokenizer, reward, reward_tokenizer, prompts, max_new_tokens)`` -> the reward model's mean
score of the policy's greedy answers with its adapter off (base) and on (tuned), each with an interval, and the paired
difference.
"""

from __future__ import annotations

import numpy as np
import torch

from studio.config import EvalConfig
from studio.engine.data.encode import render
from studio.engine.judge.human import wilson
from studio.engine.judge.metrics import _mean_metric, interval, paired, rouge


def scores(model, tokenizer, conversations: list[list[dict]], batch_size: int = 16) -> list[float]:
    texts = [render(tokenizer, c) for c in conversations]
    device = next(model.parameters()).device
    out: list[float] = []
    tokenizer.padding_side = "right"
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(device)
            out += model(**enc).logits[:, 0].float().tolist()
    return out


def pair_accuracy(model, tokenizer, pairs: list[dict]) -> dict:
    """``pairs``: the studio's preference examples ({"prompt", "chosen", "rejected"} as messages)."""
    chosen = scores(model, tokenizer, [p["prompt"] + p["chosen"] for p in pairs])
    rejected = scores(model, tokenizer, [p["prompt"] + p["rejected"] for p in pairs])
    right = sum(c > r for c, r in zip(chosen, rejected))
    low, high = wilson(right, len(pairs))
    return {"accuracy": right / len(pairs) if pairs else 0.0, "low": low, "high": high, "n": len(pairs),
            "margin": float(np.mean(np.subtract(chosen, rejected))) if pairs else 0.0}


def sample_rewards(policy, tokenizer, reward, reward_tokenizer, prompts: list[list[dict]], max_new_tokens: int,
                   seed: int = 0, preferred: list[str] | None = None) -> dict:
    """Greedy answers of base (the adapter switched off) and tuned, scored by the reward model; with the held-out
    ``preferred`` (chosen) answers, also how close each side's answers are to them (ROUGE-L), so a reward that
    rose while the answers left what people preferred shows as what it is: the policy gaming the reward model."""
    from studio.engine.judge.generate import generate

    settings = EvalConfig(max_new_tokens=max_new_tokens, batch_size=16)
    policy.eval()
    with policy.disable_adapter():
        base = generate(policy, tokenizer, prompts, settings)
    tuned = generate(policy, tokenizer, prompts, settings)
    sides = {}
    for name, answers in (("base", base), ("tuned", tuned)):
        convos = [p + [{"role": "assistant", "content": a}] for p, a in zip(prompts, answers)]
        sides[name] = _mean_metric(scores(reward, reward_tokenizer, convos))
    out = {name: {"mean": (ci := interval(m, seed)).value, "low": ci.ci_low, "high": ci.ci_high}
           for name, m in sides.items()}
    d = paired(sides["base"], sides["tuned"], seed)
    out["difference"] = {"value": d.value, "low": d.ci_low, "high": d.ci_high, "p_value": d.p_value}
    if preferred:
        near = {name: rouge(answers, preferred)["rougeL"] for name, answers in (("base", base), ("tuned", tuned))}
        moved = paired(near["base"], near["tuned"], seed)
        out["preferred_rougeL"] = {"base": near["base"].value,
                                   "tuned": near["tuned"].value,
                                   "difference": {"value": moved.value, "low": moved.ci_low, "high": moved.ci_high}}
    out["n"] = len(prompts)
    out["examples"] = [{"prompt": p[-1]["content"], "base": b, "tuned": t} for p, b, t in
                       list(zip(prompts, base, tuned))[:3]]
    return out
