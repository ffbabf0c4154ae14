"""The masked-LM objective: BERT-style encoders trained with 15 % of tokens hidden
(DataCollatorForLanguageModeling), full or LoRA, measured in Compare by masked-token accuracy and
pseudo-perplexity; the real pretrained encoder is all-MiniLM-L6-v2 from its pip package (studio-minilm).
Impossible combinations are refused in a line."""

import json
import subprocess
import sys

import pytest
from conftest import SAMPLES, tiny_config, write_jsonl

from studio.config import ConfigError, EvalConfig, StudioConfig
from studio.engine import runs
from studio.engine.judge.evaluate import evaluate_run
from studio.engine.models import minilm_path
from studio.engine.train import loop as train
from studio.engine.train.estimate import estimate
from studio.engine.train.prepare import preflight

pytestmark = pytest.mark.slow  # trains several small models


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    answers = json.loads((SAMPLES / "instructions.json").read_text())
    return write_jsonl(tmp_path_factory.mktemp("mlm") / "answers.jsonl", [{"text": r["output"]} for r in answers])


def mlm_config(data, **sections) -> dict:
    cfg = tiny_config(data, model={"name": "studio-minilm"}, data={"max_length": 48, "val_size": 0.1},
                      method={"kind": "lora", "target_modules": "auto"},
                      train={"max_steps": 20, "batch_size": 8, "learning_rate": 1e-3, "logging_steps": 2})
    for key, value in sections.items():
        cfg[key].update(value)
    return cfg


@pytest.fixture(scope="module")
def mlm_run(texts, tmp_path_factory):
    result = train.run(StudioConfig.from_dict(mlm_config(texts)), tmp_path_factory.mktemp("mlm") / "lora")
    assert result.state == "completed", result.error
    return result.run_dir


def test_masked_lm_lora_learns_and_compare_measures_it(mlm_run):
    losses = [m["loss"] for m in runs.read_metrics(mlm_run) if m.get("loss") is not None]
    assert losses[-1] < losses[0] - 2  # from chance (ln 30522 ~ 10.3) down
    summary = evaluate_run(mlm_run, settings=EvalConfig(limit=20))
    assert set(summary.tuned) == {"masked_accuracy", "pseudo_perplexity"}
    assert summary.tuned["masked_accuracy"].value > summary.base["masked_accuracy"].value
    assert summary.tuned["pseudo_perplexity"].value < summary.base["pseudo_perplexity"].value
    rows = [json.loads(x) for x in (mlm_run / "eval").glob("*/predictions.jsonl").__next__().read_text().splitlines()]
    assert "[MASK]" in rows[0]["prompt"] and rows[0]["reference"]  # the hidden words and what each model put there
    assert summary.eval_set == "validation split"
    cfg = StudioConfig.load(mlm_run / "config.yaml")
    other = evaluate_run(mlm_run, data=cfg.data.path, settings=EvalConfig(limit=4), name="on-a-file")
    assert other.eval_set == cfg.data.path  # says which texts it measured, as the generative runs do


RELOAD = r"""
import json, sys
from transformers import AutoModelForMaskedLM, AutoTokenizer
from peft import PeftModel
folder, base = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(folder)
model = PeftModel.from_pretrained(AutoModelForMaskedLM.from_pretrained(base), folder).eval()
enc = tok(["4 metres is 400 [MASK]."], return_tensors="pt")
at = enc["input_ids"][0].tolist().index(tok.mask_token_id)
print(json.dumps({"fill": tok.decode(model(**enc).logits[0, at].argmax().item())}))
"""


def test_the_masked_lm_adapter_reloads_with_plain_transformers_and_peft(mlm_run):
    out = subprocess.run([sys.executable, "-c", RELOAD, str(mlm_run / "adapter"), str(minilm_path())],
                         capture_output=True, text=True, timeout=300)
    assert json.loads(out.stdout.strip().splitlines()[-1])["fill"].strip(), out.stderr[-2000:]


def test_a_full_masked_lm_fine_tune_of_a_small_encoder_built_from_a_config(texts, tmp_path):
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    tok = AutoTokenizer.from_pretrained(minilm_path())
    small = BertForMaskedLM(BertConfig(vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=2,
                                       num_attention_heads=2, intermediate_size=128, max_position_embeddings=128))
    small.save_pretrained(tmp_path / "tiny-bert")
    tok.save_pretrained(tmp_path / "tiny-bert")
    cfg = mlm_config(texts, model={"name": str(tmp_path / "tiny-bert")},
                     method={"kind": "full", "objective": "masked_lm"}, train={"learning_rate": 3e-3})
    result = train.run(StudioConfig.from_dict(cfg), tmp_path / "full")
    assert result.state == "completed", result.error
    losses = [m["loss"] for m in runs.read_metrics(result.run_dir) if m.get("loss") is not None]
    assert losses[-1] < losses[0]
    assert BertForMaskedLM.from_pretrained(result.run_dir / "model").config.hidden_size == 64
    summary = evaluate_run(result.run_dir, settings=EvalConfig(limit=10))  # a full run's base is the folder's
    assert summary.base["pseudo_perplexity"].value != summary.tuned["pseudo_perplexity"].value
    assert estimate(StudioConfig.from_dict(cfg)).trainable == sum(p.numel() for p in small.parameters())


def test_studio_tiny_bert_is_a_small_offline_encoder_that_learns(texts, tmp_path):
    result = train.run(StudioConfig.from_dict(mlm_config(texts, model={"name": "studio-tiny-bert"},
                                                         method={"kind": "full"}, train={"learning_rate": 3e-3})),
                       tmp_path / "tiny-bert")
    assert result.state == "completed", result.error
    losses = [m["loss"] for m in runs.read_metrics(result.run_dir) if m.get("loss") is not None]
    assert losses[-1] < losses[0] - 1
    assert 3e6 < estimate(StudioConfig.from_dict(mlm_config(texts, model={"name": "studio-tiny-bert"}))).params < 6e6


def test_impossible_objectives_are_one_line(texts, alpaca_file):
    with pytest.raises(ConfigError, match="masked_lm needs an encoder.*studio-tiny is a decoder"):
        preflight(StudioConfig.from_dict(tiny_config(texts, method={"objective": "masked_lm"})))
    with pytest.raises(ConfigError, match="encoder .* cannot generate text"):
        preflight(StudioConfig.from_dict(mlm_config(alpaca_file, method={"objective": "instruction"})))
    with pytest.raises(ConfigError, match="masked_lm trains on plain text"):
        preflight(StudioConfig.from_dict(mlm_config(alpaca_file)))
    with pytest.raises(ConfigError, match="masked_lm trains with method.kind full or lora"):
        StudioConfig.from_dict(mlm_config(texts, method={"kind": "ia3", "objective": "masked_lm"}))


# -- sequence to sequence -----------------------------------------------------------------------

def s2s_config(data, **sections) -> dict:
    cfg = tiny_config(data, model={"name": "studio-tiny-t5"}, data={"max_length": 64, "val_size": 0.1},
                      method={"kind": "full"},
                      train={"max_steps": 150, "batch_size": 8, "learning_rate": 3e-3, "logging_steps": 10})
    for key, value in sections.items():
        cfg[key].update(value)
    return cfg


@pytest.fixture(scope="module")
def s2s_run(tmp_path_factory):
    result = train.run(StudioConfig.from_dict(s2s_config(SAMPLES / "qa.csv")), tmp_path_factory.mktemp("s2s") / "full")
    assert result.state == "completed", result.error
    return result.run_dir


def test_seq2seq_learns_prompt_to_answer_and_compare_and_chat_use_the_decoder(s2s_run):
    from studio.engine.judge.chat import reply

    losses = [m["loss"] for m in runs.read_metrics(s2s_run) if m.get("loss") is not None]
    assert losses[-1] < losses[0] / 2
    summary = evaluate_run(s2s_run, settings=EvalConfig(limit=20, bertscore=False))
    # What learning shows on any CPU and any allowed version: the answers' perplexity falls from thousands to ~10
    # (train.seed 0, 1, 2 here: 8573 -> 9.4, 7769 -> 12.4, 9045 -> 8.1), far past /50. Twenty greedy answers of a
    # T5 trained from scratch for 150 steps move ROUGE-L by 0.06-0.18 depending on the CPU and the versions
    # (its interval reached 0 on an Intel Xeon), so only its direction is asserted.
    assert summary.tuned["perplexity"].value < summary.base["perplexity"].value / 50
    assert summary.delta["rougeL"].value > 0
    answer = list(reply(s2s_run, "tuned", [{"role": "user", "content": "Add 3 and 4."}], EvalConfig(max_new_tokens=12)))
    assert answer and answer[-1].strip()


S2S_RELOAD = r"""
import json, sys
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
from peft import PeftModel
folder, base = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(folder)
model = PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(base), folder).eval()
out = model.generate(**tok(["Add 2 and 3."], return_tensors="pt"), max_new_tokens=6, do_sample=False)
print(json.dumps({"type": model.peft_config["default"].task_type, "tokens": out.shape[1]}))
"""


def test_seq2seq_lora_trains_and_reloads_with_plain_transformers_and_peft(tmp_path, studio_home):
    from studio.engine.tiny import ensure_tiny_t5

    cfg = s2s_config(SAMPLES / "qa.csv", method={"kind": "lora", "target_modules": "all-linear"},
                     train={"max_steps": 20, "learning_rate": 3e-3})
    result = train.run(StudioConfig.from_dict(cfg), tmp_path / "lora")
    assert result.state == "completed", result.error
    losses = [m["loss"] for m in runs.read_metrics(result.run_dir) if m.get("loss") is not None]
    assert losses[-1] < losses[0]
    out = subprocess.run([sys.executable, "-c", S2S_RELOAD, str(result.run_dir / "adapter"),
                          str(ensure_tiny_t5(studio_home))], capture_output=True, text=True, timeout=300)
    assert json.loads(out.stdout.strip().splitlines()[-1])["type"] == "SEQ_2_SEQ_LM", out.stderr[-2000:]
    assert estimate(StudioConfig.from_dict(cfg)).trainable > 0


def test_impossible_seq2seq_combinations_are_one_line(texts, alpaca_file):
    with pytest.raises(ConfigError, match="seq2seq needs an encoder-decoder.*studio-tiny is a decoder"):
        preflight(StudioConfig.from_dict(tiny_config(alpaca_file, method={"objective": "seq2seq"})))
    with pytest.raises(ConfigError, match="encoder-decoder .* trains with method.objective seq2seq"):
        preflight(StudioConfig.from_dict(s2s_config(alpaca_file, method={"objective": "instruction"})))
    with pytest.raises(ConfigError, match="seq2seq maps prompts to answers"):
        preflight(StudioConfig.from_dict(s2s_config(texts)))


@pytest.mark.parametrize("fixture, task, auto", [("mlm_run", "fill-mask", "AutoModelForMaskedLM"),
                                                 ("s2s_run", "text2text-generation", "AutoModelForSeq2SeqLM")])
def test_the_model_card_names_what_an_auto_objective_run_trained(fixture, task, auto, request):
    """Both runs leave method.objective at auto (the model decides it): the card's task and its loading snippet
    follow what was trained, not the word auto (it used to say text-generation for both)."""
    from studio.engine.export.card import model_card

    run = request.getfixturevalue(fixture)
    cfg = StudioConfig.load(run / "config.yaml")
    assert cfg.method.objective == "auto"
    card = str(model_card(run, cfg))
    assert f"pipeline_tag: {task}\n" in card and auto in card and "pipeline_tag: text-generation" not in card
    assert runs.Run(run).status.objective == {"fill-mask": "masked_lm", "text2text-generation": "seq2seq"}[task]
