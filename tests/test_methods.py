"""The rest of the PEFT family: AdaLoRA, IA3, prefix tuning, P-tuning and prompt tuning, each through
PEFT's own config. Each trains on studio-tiny with its loss falling, saves an adapter that plain transformers +
peft reload and generate with, has a memory estimate; combinations that cannot work are refused in a line."""

import json
import subprocess
import sys

import pytest
from conftest import tiny_config

from studio.config import ConfigError, StudioConfig
from studio.engine.events import TrainingInfo
from studio.engine.train import loop as train
from studio.engine.train.estimate import estimate

KINDS = {  # learning rates where 8 steps show the loss falling; prompt methods train few parameters, fast
    "adalora": {"learning_rate": 1e-2},
    "ia3": {"learning_rate": 3e-2},
    "prefix": {"learning_rate": 3e-2},
    "ptuning": {"learning_rate": 1e-2},
    "prompt": {"learning_rate": 1e-1},
}

RELOAD = r"""
import json, sys
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import PeftModel
folder, base = sys.argv[1], sys.argv[2]
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), folder).eval()
tok = AutoTokenizer.from_pretrained(folder)
out = model.generate(**tok(["Add 2 and 3."], return_tensors="pt"), max_new_tokens=6, do_sample=False)
print(json.dumps({"type": model.peft_config["default"].peft_type.value, "text": tok.decode(out[0])}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(KINDS))
def test_each_peft_method_learns_saves_and_reloads(kind, alpaca_file, tmp_path, tiny_path):
    cfg = StudioConfig.from_dict(tiny_config(alpaca_file, method={"kind": kind},
                                             train={"max_steps": 8, "batch_size": 8, **KINDS[kind]}))
    seen = []
    result = train.run(cfg, tmp_path / "r", seen.append)
    assert result.state == "completed", result.error
    losses = [json.loads(line)["loss"] for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
              if json.loads(line).get("loss") is not None]
    assert sum(losses[-2:]) < sum(losses[:2]), losses
    info = next(e for e in seen if isinstance(e, TrainingInfo))
    assert 0 < info.trainable_params < info.total_params / 10
    out = subprocess.run([sys.executable, "-c", RELOAD, str(tmp_path / "r" / "adapter"), str(tiny_path)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    said = json.loads(out.stdout.strip().splitlines()[-1])
    assert said["type"] == {"adalora": "ADALORA", "ia3": "IA3", "prefix": "PREFIX_TUNING", "ptuning": "P_TUNING",
                            "prompt": "PROMPT_TUNING"}[kind]


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_peft_method_has_an_estimate(kind, alpaca_file, tiny_path):
    e = estimate(StudioConfig.from_dict(tiny_config(alpaca_file, method={"kind": kind})))
    assert 0 < e.trainable < e.params / 10 and e.total_mb > 0


@pytest.mark.parametrize("settings, says", [
    ({"method": {"kind": "prompt"}, "train": {"packing": True}}, "train.packing cannot be used with method"),
    ({"method": {"kind": "prefix"}, "train": {"gradient_checkpointing": True}}, "does not work with train.gradient"),
    ({"method": {"kind": "adalora", "adalora_init_r": 4, "adalora_target_r": 8}}, "method.adalora_target_r must be"),
    ({"method": {"kind": "ptuning", "num_virtual_tokens": 0}}, "method.num_virtual_tokens must be >= 1"),
])
def test_combinations_that_cannot_work_are_refused_in_a_line(settings, says):
    with pytest.raises(ConfigError, match=says):
        StudioConfig.from_dict(settings)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["prefix", "prompt"])  # a key/value prefix; virtual tokens in the input
def test_a_virtual_token_run_compares_streams_and_refuses_to_merge(kind, alpaca_file, tmp_path):
    from studio.config import EvalConfig
    from studio.engine.errors import StudioError
    from studio.engine.export.exporters import export_adapter, export_merged
    from studio.engine.judge.chat import reply
    from studio.engine.judge.evaluate import evaluate_run

    cfg = StudioConfig.from_dict(tiny_config(alpaca_file, method={"kind": kind}, train={"max_steps": 3}))
    run = train.run(cfg, tmp_path / "r").run_dir
    summary = evaluate_run(run, limit=3, settings=EvalConfig(max_new_tokens=8, bertscore=False), name="p")
    assert summary.examples >= 1 and summary.tuned  # the validation split: base and tuned both scored
    # the tuned side reads through its virtual tokens and the base side without them: they score differently
    assert summary.tuned["perplexity"].value != pytest.approx(summary.base["perplexity"].value, rel=1e-6)
    chat = [{"role": "user", "content": "Add 2 and 3."}]
    streamed = [list(reply(run, side, chat, EvalConfig(max_new_tokens=6))) for side in ("base", "tuned")]
    assert all(pieces and "".join(pieces).strip() for pieces in streamed), streamed
    assert export_adapter(run).is_file()
    with pytest.raises(StudioError, match="no weights to merge"):
        export_merged(run)
