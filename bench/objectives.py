"""Issue 14's other stages on the bundled samples, measured: the reward model, the RL stage (from studio-tiny and
from an SFT run), masked LM on studio-minilm, seq2seq on studio-tiny-t5.

    python bench/objectives.py            # about 5 minutes on 2 CPU cores

Each line: what trained, its steps and wall time, and the measure the studio reports for it (held-out pair
accuracy; the reward model's mean score of greedy answers before and after; masked-token accuracy and
pseudo-perplexity; ROUGE-L), base against tuned with 95 % bootstrap intervals.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLES = ROOT / "assets" / "samples"


def train(cfg: dict, out: Path):
    from studio.config import StudioConfig
    from studio.engine.train import loop

    t = time.time()
    result = loop.run(StudioConfig.from_dict(cfg), out)
    assert result.state == "completed", result.error
    return result.run_dir, round(time.time() - t, 1)


def config(data, model="studio-tiny", method=None, train_=None, data_=None) -> dict:
    return {"data": {"path": str(data), "max_length": 96, "val_size": 0.15, **(data_ or {})},
            "model": {"name": model}, "method": {"kind": "lora", "target_modules": "all-linear", **(method or {})},
            "train": {"batch_size": 8, "logging_steps": 10, **(train_ or {})}}


def cell(d: dict, key="value", lo="ci_low", hi="ci_high") -> str:
    return f"{d[key]:.3g} [{d[lo]:.3g}, {d[hi]:.3g}]"


def compare(run: Path, metrics: list[str], **settings) -> dict:
    from studio.config import EvalConfig
    from studio.engine.judge.evaluate import evaluate_run

    s = evaluate_run(run, settings=EvalConfig(limit=30, bertscore=False, **settings)).to_dict()
    return {m: {"base": cell(s["base"][m]), "tuned": cell(s["tuned"][m]), "delta": cell(s["delta"][m])}
            for m in metrics}


def main() -> None:
    from studio.engine import runs
    from studio.engine.models import run_reference

    work, out = Path(tempfile.mkdtemp(prefix="objectives-")), {}
    feedback = SAMPLES / "feedback.jsonl"
    rm, secs = train(config(feedback, method={"kind": "reward"}, train_={"max_steps": 30, "learning_rate": 2e-3},
                            data_={"val_size": 0.2}), work / "reward")
    out["reward model (30 steps)"] = {"seconds": secs, "held_out_accuracy": cell(
        runs.read_status(rm)["reward_accuracy"], "accuracy", "low", "high"), "pairs": runs.read_status(rm)[
        "reward_accuracy"]["n"]}
    sft, secs = train(config(SAMPLES / "qa.csv", train_={"max_steps": 60, "learning_rate": 2e-3}), work / "sft")
    out["SFT on qa.csv (60 steps)"] = {"seconds": secs}
    rl_method = {"kind": "rl", "reward_model": run_reference(rm.name), "max_completion_length": 24}
    for label, base in (("RL from studio-tiny", "studio-tiny"), ("RL from the SFT run", run_reference(sft.name))):
        rl, secs = train(config(feedback, model=base, method=rl_method,
                                train_={"max_steps": 40, "learning_rate": 1e-3}), work / label.replace(" ", "-"))
        got = runs.read_status(rl)["rl_reward"]
        out[f"{label} (40 steps)"] = {"seconds": secs, "mean_reward_base": cell(got["base"], "mean", "low", "high"),
                                      "mean_reward_tuned": cell(got["tuned"], "mean", "low", "high"),
                                      "difference": cell(got["difference"], "value", "low", "high"),
                                      "p": got["difference"]["p_value"], "example": got["examples"][0]}
    answers = work / "answers.jsonl"
    answers.write_text("".join(json.dumps({"text": r["output"]}) + "\n"
                               for r in json.loads((SAMPLES / "instructions.json").read_text())))
    for kind, lr in (("lora", 1e-3), ("full", 1e-4)):
        mlm, secs = train(config(answers, model="studio-minilm", method={"kind": kind, "target_modules": "auto"},
                                 train_={"max_steps": 60, "learning_rate": lr}, data_={"max_length": 48}),
                          work / f"mlm-{kind}")
        out[f"masked LM, studio-minilm, {kind} (60 steps)"] = {"seconds": secs, **compare(
            mlm, ["masked_accuracy", "pseudo_perplexity"])}
    for kind, steps, lr in (("full", 300, 3e-3), ("lora", 300, 3e-3)):
        s2s, secs = train(config(SAMPLES / "qa.csv", model="studio-tiny-t5", method={"kind": kind},
                                 train_={"max_steps": steps, "learning_rate": lr}), work / f"s2s-{kind}")
        out[f"seq2seq, studio-tiny-t5, {kind} ({steps} steps)"] = {"seconds": secs, **compare(
            s2s, ["rougeL", "perplexity"])}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
