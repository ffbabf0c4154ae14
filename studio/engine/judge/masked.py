"""Base vs tuned for a masked-LM (BERT-style) run: the masked-token accuracy and the pseudo-perplexity on held-out
texts, with the same intervals and paired tests as every other comparison.

Contract: ``is_masked_run(run)`` says whether a run trained the masked-LM objective. ``evaluate_masked(run, ...)``
-> ``EvalSummary`` with ``masked_accuracy`` (15 % of each text's tokens hidden, the same positions for both
models, chosen by ``eval.seed``; the share predicted exactly) and ``pseudo_perplexity`` (Salazar et al. 2020: each
token hidden in turn, exp of the mean negative log-likelihood; lower is better), and writes ``eval/NAME/`` like
``evaluate_run``: each row shows the text with its hidden tokens and what each model put there.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from studio.config import EvalConfig, StudioConfig
from studio.engine import objectives, runs
from studio.engine.data.encode import MASK_SHARE
from studio.engine.judge import metrics as M
from studio.engine.judge.summary import EvalSummary


def is_masked_run(run: Path) -> bool:
    from studio.engine.models import trained_objective

    return objectives.find(trained_objective(run)).masks_tokens


def _models(run: Path, cfg: StudioConfig):
    """(tuned model, tokenizer, base_of): an adapter run's base is the tuned model with its adapter off."""
    import contextlib

    from studio.engine.models import load_tuned

    tuned = load_tuned(run, with_base=True)
    if tuned.base is not None:
        base = tuned.base.eval()
        return tuned.model.eval(), tuned.tokenizer, lambda: contextlib.nullcontext(base)
    return tuned.model.eval(), tuned.tokenizer, tuned.model.disable_adapter


def _hidden(ids: list[int], special: list[int], seed: int) -> list[int]:
    """The positions hidden for the accuracy: 15 % of the ordinary tokens (at least one), the same for both models."""
    ordinary = [i for i, s in enumerate(special) if not s]
    rng = np.random.default_rng(seed)
    k = max(1, round(MASK_SHARE * len(ordinary)))
    return sorted(rng.choice(ordinary, size=min(k, len(ordinary)), replace=False).tolist()) if ordinary else []


@torch.inference_mode()
def _score(model, tokenizer, ids: list[int], special: list[int], hidden: list[int]) -> tuple[float, list[int], float,
                                                                                           int]:
    """(accuracy at the hidden positions, the predicted ids there, summed NLL of every ordinary token with that
    token hidden alone, the number of those tokens)."""
    mask_id = tokenizer.mask_token_id
    x = torch.tensor([ids])
    masked = x.clone()
    masked[0, hidden] = mask_id
    predicted = model(input_ids=masked).logits[0, hidden].argmax(-1).tolist()
    accuracy = float(np.mean([p == ids[h] for p, h in zip(predicted, hidden)])) if hidden else 0.0
    ordinary = [i for i, s in enumerate(special) if not s]
    copies = x.repeat(len(ordinary), 1)
    copies[torch.arange(len(ordinary)), ordinary] = mask_id
    logp = model(input_ids=copies).logits.float().log_softmax(-1)
    nll = -float(sum(logp[row, pos, ids[pos]] for row, pos in enumerate(ordinary)))
    return accuracy, predicted, nll, len(ordinary)


def evaluate_masked(run_dir: str | Path, texts: list[str], settings: EvalConfig | None = None,
                    name: str | None = None, progress=None, eval_set: str = "validation split") -> EvalSummary:
    run = Path(run_dir)
    cfg = runs.Run(run).config
    s = settings or cfg.eval
    say = progress or (lambda msg: None)
    say(f"loading the models for {len(texts)} texts")
    tuned, tokenizer, base_of = _models(run, cfg)
    started, sides, rows = time.time(), {"base": [], "tuned": []}, []
    for i, text in enumerate(texts):
        enc = tokenizer(text, truncation=True, max_length=cfg.data.max_length, return_special_tokens_mask=True)
        ids, special = enc["input_ids"], enc["special_tokens_mask"]
        hidden = _hidden(ids, special, s.seed + i)
        with base_of() as other:  # a full run's own base model; an adapter run's tuned model, adapter off
            base = _score(other if other is not None else tuned, tokenizer, ids, special, hidden)
        mine = _score(tuned, tokenizer, ids, special, hidden)
        sides["base"].append(base)
        sides["tuned"].append(mine)
        shown = [tokenizer.mask_token_id if j in hidden else t for j, t in enumerate(ids)]
        rows.append({"prompt": tokenizer.decode(shown, skip_special_tokens=False),
                     "reference": tokenizer.decode([ids[h] for h in hidden]),
                     "base": tokenizer.decode(base[1]), "tuned": tokenizer.decode(mine[1])})
    say("scoring")
    metrics = {side: {"masked_accuracy": M._mean_metric([r[0] for r in got]),
                      "pseudo_perplexity": M.perplexity_metric([r[2] for r in got], [r[3] for r in got])}
               for side, got in sides.items()}
    b, t = metrics["base"], metrics["tuned"]
    summary = EvalSummary(base={m: M.interval(b[m], s.seed) for m in b}, tuned={m: M.interval(t[m], s.seed) for m in t},
                          delta={m: M.paired(b[m], t[m], s.seed) for m in b},
                          win_tie_loss={m: M.win_tie_loss(b[m], t[m], m) for m in b},
                          info={"objective": "masked_lm", "mask_share": MASK_SHARE,
                                "bootstrap_resamples": M.BOOTSTRAP})
    summary.run, summary.examples, summary.eval_set = run.name, len(texts), eval_set
    summary.generation_s = round(time.time() - started, 2)
    for i, row in enumerate(rows):
        row["scores"] = {side: {m: float(metrics[side][m].per_example[i]) for m in b} for side in metrics}
    runs.write_eval(run, name, summary, rows)
    return summary
