"""The training doctor, early stopping with the best checkpoint, the LR finder and the sweep."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES, tiny_config, write_jsonl

from studio.config import StudioConfig
from studio.engine import runs
from studio.engine.events import Finding
from studio.engine.train import loop as train
from studio.engine.train.doctor import Doctor, Facts


@pytest.fixture(autouse=True)
def quiet_machine(monkeypatch):
    """The doctor's "another process shares the cores" check reads the machine's load: the tests here feed it
    numbers (the one about that check feeds a busy machine), and a busy test machine must not add a finding to
    what they assert, the runs they train in this process included."""
    monkeypatch.setattr("os.getloadavg", lambda: (0.0, 0.0, 0.0))


def stream(doctor, losses, grads=None, start=1):
    found = []
    for i, loss in enumerate(losses):
        found += doctor.observe({"step": start + i, "loss": loss, "grad_norm": (grads or [1.0] * len(losses))[i]})
    return found


def cfg(**train):
    return StudioConfig.from_dict({"train": {"max_steps": 40, **train}})


def test_a_spike_and_an_exploding_gradient_are_instability_with_evidence():
    d = Doctor(cfg(), Facts(max_steps=1000))
    found = stream(d, [2.0, 1.9, 1.8, 1.9, 1.8, 1.7, 9.0], [1, 1, 1, 1, 1, 1, 50])
    kinds = [(f.kind, f.severity) for f in found]
    assert kinds == [("instability", "warning"), ("instability", "warning")]
    assert "9" in found[0].evidence and "step 7" in found[0].evidence and d.dead is None


def test_rl_and_reward_runs_raise_no_false_alarm():
    """GRPO steps whose samples all score alike have no gradient, by design; a reward model's new score head
    bursts early and its loss soon sits near 0, where it moves by multiples (both seen on default runs)."""
    rl = Doctor(StudioConfig.from_dict({"method": {"kind": "rl", "reward_model": "run:r"}}), Facts(max_steps=540))
    stream(rl, [0.01, -0.02, 0.0, 0.0, 0.0, 0.0, 0.0], [0.3, 0.2, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert rl.dead is None and not rl.findings
    assert stream(rl, [0.0], [float("nan")]) == [] and rl.dead is None  # one non-finite step is not yet death
    stream(rl, [0.0, 0.0], [float("nan"), float("inf")])
    assert rl.dead is not None  # three non-finite in a row still are
    reward = Doctor(StudioConfig.from_dict({"method": {"kind": "reward"}}), Facts(max_steps=135))
    found = stream(reward, [0.7, 0.5, 0.3, 0.1, 0.05, 0.04, 0.3, 0.06],
                   [0.9, 1.1, 0.8, 1.0, 0.9, 1.0, 12.4, 1.0])  # 13x the median at step 7, as measured
    found += stream(reward, [0.05, 0.04, 0.06], [0.8, 46.9, 0.9], start=9)  # 47x the clip: a default run in CI
    assert not [f for f in found if f.kind == "instability"]
    sft = Doctor(cfg(), Facts(max_steps=1000))
    assert [f.kind for f in stream(sft, [0.7, 0.5, 0.3, 0.1, 0.05, 0.04, 0.3])] == []  # near 0: no "spike"


def test_heavy_tailed_losses_are_judged_against_chance_and_the_clip_and_real_blowups_still_show():
    """Measured on default runs of studio-tiny: the reward model's pair loss 1.709 after a median of 0.2 (one
    misranked pair in a batch of confident ones) and a grad norm 57x its median of 0.034; GRPO's grad norm 20.4
    after a median of 0.07 once most groups score alike (clipped at 1.0 either way). At learning rate 0.05 the
    reward model's loss jumped to 7.7 and its grad norm to 679: that is instability."""
    reward = Doctor(StudioConfig.from_dict({"method": {"kind": "reward"}}), Facts(max_steps=135))
    calm = stream(reward, [0.2, 0.16, 0.27, 0.24, 0.14, 0.01, 0.14, 1.709, 0.03, 0.03, 0.018],
                  [0.03, 0.04, 0.03, 0.02, 0.04, 0.03, 0.05, 0.9, 0.03, 0.03, 1.955])
    assert calm == []
    rl = Doctor(StudioConfig.from_dict({"method": {"kind": "rl", "reward_model": "run:r"}}), Facts(max_steps=540))
    assert stream(rl, [0.0] * 10, [0.07, 0.0, 0.09, 0.05, 0.0, 0.1, 0.08, 0.0, 0.06, 20.4]) == []
    blown = Doctor(StudioConfig.from_dict({"method": {"kind": "reward"}}), Facts(max_steps=135))
    found = stream(blown, [0.69, 0.68, 0.70, 0.69, 0.69, 0.69, 7.67], [0.5, 0.6, 0.8, 0.8, 0.9, 0.8, 679.0])
    assert [f.kind for f in found] == ["instability", "instability"]
    assert "the loss at chance" in found[0].evidence and "the clipping threshold" in found[1].evidence


def test_a_dpo_loss_that_leaves_ln2_slowly_is_not_called_stuck_at_a_quarter():
    """The default DPO run on preference.jsonl: exactly ln 2 for the first steps (policy = reference), 4.5 %
    lower at step 18 of 70, 25 % lower at the end."""
    dpo = Doctor(StudioConfig.from_dict({"method": {"kind": "dpo"}}), Facts(max_steps=70))
    found = stream(dpo, [0.693, 0.693, 0.691, 0.685, 0.717, 0.675, 0.696, 0.672, 0.730, 0.719, 0.717, 0.752, 0.706,
                         0.688, 0.666, 0.655, 0.679, 0.662])
    assert found == []
    sft = Doctor(cfg(), Facts(max_steps=70))
    assert [f.kind for f in stream(sft, [0.693, 0.693, 0.691, 0.685, 0.717, 0.675, 0.696, 0.672, 0.730, 0.719,
                                         0.717, 0.752, 0.706, 0.688, 0.666, 0.655, 0.679, 0.662])] == [
        "poor_convergence"]  # the same numbers for a loss that should fall from the start


def test_a_rising_loss_says_it_rose_and_the_advice_agrees_with_the_defaults():
    d = Doctor(cfg(learning_rate=1e-8), Facts(max_steps=40, default_lr=2e-3))
    found = stream(d, [2.0 + 0.08 * i for i in range(14)])
    (f,) = [f for f in found if f.kind == "poor_convergence"]
    assert "rose by" in f.evidence and "-" not in f.evidence.split("rose by")[1][:3]
    assert "0.002, the studio's default for this model" in f.advice and "2e-4" not in f.advice


def test_a_dead_gradient_ends_the_run_and_the_advice_fits_the_config():
    clipped = Doctor(cfg(learning_rate=1e9, max_grad_norm=1.0), Facts(max_steps=1000))
    stream(clipped, [7.2, 7.2, 7.2, 7.2], [1.2e9, 0.0, 0.0, 0.0])
    assert clipped.dead is not None and clipped.dead.severity == "error" and "0.0" in clipped.dead.evidence
    assert "lower train.learning_rate (now 1e+09)" in clipped.dead.advice
    assert "clipping" not in clipped.dead.advice  # clipping is on: never advise turning it on
    unclipped = Doctor(cfg(max_grad_norm=0.0), Facts(max_steps=1000))
    unclipped.weights(3.3e9, True, 4)
    assert unclipped.dead is not None and "enable gradient clipping" in unclipped.dead.advice
    assert "3.3e+09" in unclipped.dead.evidence


def test_a_flat_loss_is_poor_convergence_with_likely_causes():
    d = Doctor(cfg(learning_rate=1e-8), Facts(train_examples=10, max_steps=40))
    found = stream(d, [7.2 - 0.001 * i for i in range(16)])
    assert [f.kind for f in found] == ["poor_convergence"]
    assert "1e-08 is very low" in found[0].advice and "10 training examples" in found[0].advice
    learning = Doctor(cfg(), Facts(max_steps=40))
    assert not stream(learning, [7.0 * 0.9 ** i for i in range(16)])


def test_eval_loss_rising_twice_while_train_falls_is_overfitting():
    d = Doctor(cfg(eval_steps=5), Facts(max_steps=100))
    for step, (loss, eval_loss) in enumerate([(3.0, 2.0), (2.0, 2.1), (1.0, 2.5)], start=1):
        stream(d, [loss], start=step * 5)
        found = d.observe({"step": step * 5, "eval_loss": eval_loss})
    assert [f.kind for f in found] == ["overfitting"] and "2 -> 2.1 -> 2.5" in found[0].evidence


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["lora", "full", "qlora"])
def test_an_absurd_learning_rate_ends_diverged_not_completed(kind, alpaca_file, tmp_path):
    config = StudioConfig.from_dict(tiny_config(alpaca_file, method={"kind": kind},
                                                train={"max_steps": 15, "learning_rate": 1e9}))
    events = []
    result = train.run(config, tmp_path / "r", events.append)
    assert result.state == "diverged", result
    status = runs.read_status(tmp_path / "r")
    assert status["state"] == "diverged" and status["findings"][-1]["severity"] == "error"
    assert result.error and ("gradient norm" in result.error or "weights" in result.error or "NaN" in result.error)
    assert any(isinstance(e, Finding) for e in events)


@pytest.mark.slow
def test_a_tiny_learning_rate_completes_with_a_not_learning_finding(alpaca_file, tmp_path):
    config = StudioConfig.from_dict(tiny_config(alpaca_file, train={"max_steps": 16, "learning_rate": 1e-8}))
    assert train.run(config, tmp_path / "r").state == "completed"
    findings = runs.read_status(tmp_path / "r")["findings"]
    assert [f["kind"] for f in findings] == ["poor_convergence"]
    listed = subprocess.run([sys.executable, "-m", "studio", "runs", "--json"], capture_output=True, text=True,
                            cwd=ROOT)
    mine = [r for r in json.loads(listed.stdout) if r["path"] == str((tmp_path / "r").resolve())]
    assert mine and mine[0]["findings"][0]["kind"] == "poor_convergence"


def overfit_files(tmp_path):
    """A handful of one task to memorise, validated on another task: the eval loss must rise."""
    train_rows = [{"instruction": f"Say the word {w}.", "output": f"{w} {w} {w}."} for w in
                  ("apple", "river", "stone", "cloud")]
    val_rows = [{"instruction": f"Add {a} and {a + 3}.", "output": f"{a} + {a + 3} = {2 * a + 3}."} for a in range(12)]
    return write_jsonl(tmp_path / "train.jsonl", train_rows), write_jsonl(tmp_path / "val.jsonl", val_rows)


@pytest.mark.slow
def test_overfitting_is_found_and_early_stopping_keeps_the_best_step(tmp_path):
    from safetensors.torch import load_file

    train_file, val_file = overfit_files(tmp_path)
    config = StudioConfig.from_dict(tiny_config(train_file, data={"val_path": str(val_file)},
                                                method={"kind": "full"},
                                                train={"max_steps": 60, "batch_size": 4, "learning_rate": 3e-3,
                                                       "eval_steps": 3, "early_stopping_patience": 2,
                                                       "save_total_limit": 1}))
    result = train.run(config, tmp_path / "r")
    status = runs.read_status(tmp_path / "r")
    assert result.state == "completed" and status["stopped_early"] and result.step < 60
    assert "overfitting" in [f["kind"] for f in status["findings"]]
    best = status["best_step"]
    evals = [m for m in runs.read_metrics(tmp_path / "r") if m.get("eval_loss") is not None]
    assert min(evals, key=lambda m: m["eval_loss"])["step"] == best < result.step
    kept = load_file(tmp_path / "r" / "checkpoints" / f"checkpoint-{best}" / "model.safetensors")
    saved = load_file(tmp_path / "r" / "model" / "model.safetensors")
    assert all((kept[k] == saved[k]).all() for k in saved)  # the saved model is the best step's


def test_early_stopping_needs_evaluations():
    from studio.config import ConfigError

    with pytest.raises(ConfigError, match="early_stopping_patience needs train.eval_steps"):
        StudioConfig.from_dict({"train": {"early_stopping_patience": 2}})


@pytest.mark.slow
def test_lr_find_ramps_and_suggests_by_its_rule(tmp_path):
    from studio.engine.train.lr_find import RULE, lr_find

    config = StudioConfig.from_dict(tiny_config(SAMPLES / "chat.jsonl"))
    curve = lr_find(config, steps=60)
    assert len(curve.lrs) >= 20 and all(b > a for a, b in zip(curve.lrs, curve.lrs[1:]))
    best = min(range(len(curve.smoothed)), key=curve.smoothed.__getitem__)
    assert curve.suggestion == pytest.approx(curve.lrs[best] / 10) and curve.rule == RULE
    (tmp_path / "c.yaml").write_text(f"data:\n  path: {SAMPLES / 'chat.jsonl'}\n")
    out = subprocess.run([sys.executable, "-m", "studio", "lr-find", str(tmp_path / "c.yaml"), "--steps", "30",
                          "--json"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["suggestion"] > 0


def test_a_sweep_asks_optuna_for_every_setting_and_prunes_the_hopeless():
    from studio.engine.train.loop import RunResult
    from studio.engine.train.sweep import Sweep, parse_grid

    grid = parse_grid(["train.learning_rate=1e-3,3e-3", "method.lora_r=4,8"])
    assert grid == {"train.learning_rate": [1e-3, 3e-3], "method.lora_r": [4, 8]}
    sweep = Sweep(StudioConfig.from_dict({"train": {"max_steps": 8}}), grid)
    seen = []

    def fake_train(config, report, should_stop):
        seen.append((config.train.learning_rate, config.method.lora_r, config.train.eval_steps))
        bad = len(seen) > 2  # the last two trials are hopeless: far above the first two at every evaluation
        for step in (2, 4, 6, 8):
            report(step, 5.0 if bad else 2.0 - 0.1 * step * config.train.learning_rate * 100)
            if should_stop():
                break
        run = runs.new_run_dir(config)
        return RunResult(run, "stopped" if should_stop() else "completed")

    result = sweep.run(fake_train)
    assert sorted((lr, r) for lr, r, _ in seen) == [(1e-3, 4), (1e-3, 8), (3e-3, 4), (3e-3, 8)]
    assert all(e == 2 for _, _, e in seen)  # eval every quarter of the trial, so the pruner has something to compare
    pruned = [t for t in result.trials if t.state == "pruned"]
    assert len(pruned) == 2 and all(t.final_eval_loss == 5.0 for t in pruned)
    for t in pruned:
        assert "pruned by the sweep" in runs.read_status(Path(t.run_dir))["error"]
    assert result.best is not None and result.best.state == "completed"
    assert (result.folder / "best.yaml").is_file() and (result.folder / "results.json").is_file()
    assert StudioConfig.load(result.folder / "best.yaml").train.learning_rate == result.best.settings[
        "train.learning_rate"]


def test_a_reward_that_rose_while_answers_left_the_preferred_ones_is_reward_hacking():
    """The default RL run on feedback.jsonl: reward -1.47 -> 9.35 while the greedy answers became "2 2 2 at 2 2 2
    early ..." (the small reward model over-rates digits); ROUGE-L against the chosen answers said so."""
    rl = Doctor(StudioConfig.from_dict({"method": {"kind": "rl", "reward_model": "run:r"}}), Facts(max_steps=540))
    gamed = {"base": {"mean": -1.47}, "tuned": {"mean": 9.35}, "difference": {"value": 10.8, "low": 9.3, "high": 12.6},
             "preferred_rougeL": {"base": 0.31, "tuned": 0.04, "difference": {"value": -0.27, "low": -0.35,
                                                                              "high": -0.2}}}
    found = rl.rewarded(gamed, 540)
    assert [f.kind for f in found] == ["reward_hacking"] and "0.31 to 0.04" in found[0].evidence
    honest = dict(gamed, preferred_rougeL={"base": 0.31, "tuned": 0.35, "difference": {"value": 0.04, "low": -0.02,
                                                                                       "high": 0.1}})
    assert Doctor(rl.config, Facts(max_steps=540)).rewarded(honest, 540) == []
    assert Doctor(rl.config, Facts(max_steps=540)).rewarded({k: v for k, v in gamed.items()
                                                             if k != "preferred_rougeL"}, 540) == []


def test_a_crowded_cpu_is_said_once_as_info(monkeypatch):
    monkeypatch.setattr("os.getloadavg", lambda: (64.0, 64.0, 64.0))
    monkeypatch.setattr("studio.engine.train.doctor._on_gpu", lambda: False)
    d = Doctor(cfg(), Facts(max_steps=1000))
    found = stream(d, [2.0, 1.9, 1.8])
    assert [(f.kind, f.severity) for f in found] == [("slow_training", "info")] and "run queue" in found[0].evidence
