"""Less padding, the same loss: packed batches (one row, positions restarting per example) give the loss of
padded batches on the same examples, response-only masking included; length-grouped batches are the default."""

import pytest
import torch
from conftest import SAMPLES, tiny_config

from studio.config import StudioConfig
from studio.engine.train import loop as train
from studio.engine.train.prepare import prepare


@pytest.mark.integration
def test_packed_loss_equals_padded_loss_on_the_same_examples():
    from studio.engine.models import apply_method, load_model

    cfg = StudioConfig.from_dict(tiny_config(SAMPLES / "chat.jsonl", data={"max_length": 128}))
    p = prepare(cfg)
    rows = p.train_rows[:6]
    assert len({len(r["input_ids"]) for r in rows}) > 1  # lengths differ: padding would be needed
    model = apply_method(load_model(p.resolved, cfg.model, cfg.method, "fp32", p.tokenizer), cfg.method, False)
    model.config.use_cache = False
    model.eval()
    from studio.engine.data.encode import collator

    padded, packed = collator(p.tokenizer)(rows), collator(p.tokenizer, packing=True)(rows)
    assert "attention_mask" not in packed and packed["input_ids"].shape[0] == 1
    assert packed["input_ids"].shape[1] == sum(len(r["input_ids"]) for r in rows)  # not one pad
    assert (packed["labels"] != -100).sum() == (padded["labels"][:, 1:] != -100).sum()  # the same targets
    with torch.no_grad():
        a, b = model(**padded).loss, model(**packed).loss
    assert torch.allclose(a, b, atol=1e-5), (a, b)  # tolerance: float32 summation order


@pytest.mark.integration
def test_grouping_is_the_default_and_packing_trains_without_padding(tmp_path):
    from studio.engine import runs
    from studio.engine.train.trainer import training_args

    grouped = StudioConfig.from_dict(tiny_config(SAMPLES / "chat.jsonl", train={"max_steps": 3}))
    assert training_args(grouped, tmp_path, "fp32", has_val=False).train_sampling_strategy == "group_by_length"
    plain = StudioConfig.from_dict(tiny_config(SAMPLES / "chat.jsonl", train={"group_by_length": False}))
    assert training_args(plain, tmp_path, "fp32", has_val=False).train_sampling_strategy == "random"
    shares = {}
    for packing in (True, False):
        cfg = StudioConfig.from_dict(tiny_config(SAMPLES / "chat.jsonl", data={"max_length": 512},
                                                 train={"packing": packing, "max_steps": 3, "group_by_length": False}))
        result = train.run(cfg, tmp_path / f"r{packing}")
        assert result.state == "completed" and result.step == 3, result.error
        shares[packing] = [m["padding_share"] for m in runs.read_metrics(result.run_dir) if m.get("loss") is not None]
    assert shares[True] == [0.0] * 3  # packed: every slot is a token of some example
    assert all(s > 0 for s in shares[False]), shares  # padded batches of chat turns of different lengths


def test_gpu_speed_options_reach_the_trainer_and_say_what_they_need(tmp_path):
    import pytest

    from studio.config import ConfigError
    from studio.engine.train.loop import _check_device
    from studio.engine.train.trainer import training_args

    cfg = StudioConfig.from_dict(tiny_config(SAMPLES / "chat.jsonl", train={"torch_compile": True}))
    assert cfg.train.torch_compile == "on"  # a file from before auto; the studio compiles the layers itself
    assert not training_args(cfg, tmp_path, "fp32", has_val=False).torch_compile  # never the whole model twice
    liger = StudioConfig.from_dict(tiny_config(SAMPLES / "chat.jsonl", train={"liger_kernel": True}))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="train.liger_kernel needs a CUDA GPU"):
            _check_device(liger, "fp32")
