"""The memory estimate against the measured peak RSS growth of real CPU runs (within 30 %)."""

import sys

import pytest
from conftest import ROOT

from studio.config import StudioConfig
from studio.engine.train.estimate import estimate

sys.path.insert(0, str(ROOT / "bench"))
import estimate_check  # noqa: E402


@pytest.fixture(scope="module")
def medium(tmp_path_factory):
    from studio.engine.tiny import save_random_llama

    root = tmp_path_factory.mktemp("medium")
    return save_random_llama(root / "m", seed=1, **estimate_check.SHAPE), estimate_check.long_text(root / "t.txt")


@pytest.mark.slow
@pytest.mark.serial  # a process's peak memory, measured beside another worker's tests, read up to twice as high
@pytest.mark.parametrize("kind", ["full", "lora"])
def test_estimate_within_30_percent_of_measured(kind, medium, studio_home):
    model, data = medium
    cfg = estimate_check.config_for(kind, model, data)
    predicted = estimate(StudioConfig.from_dict(cfg)).total_mb
    measured = estimate_check.measure(cfg, str(studio_home))
    assert 0.7 <= predicted / measured <= 1.3, (predicted, measured)


@pytest.mark.integration
def test_estimate_orders_methods_and_knobs(medium):
    model, data = medium
    est = {k: estimate(StudioConfig.from_dict(estimate_check.config_for(k, model, data))) for k in ("full", "lora",
                                                                                                       "qlora")}
    assert est["full"].trainable == est["full"].params > est["lora"].trainable == est["qlora"].trainable
    assert est["full"].optimizer_mb > est["lora"].optimizer_mb
    assert est["qlora"].weights_mb < 0.5 * est["lora"].weights_mb
    base = estimate_check.config_for("full", model, data)
    ckpt = estimate_check.config_for("full", model, data)
    ckpt["train"]["gradient_checkpointing"] = True
    assert estimate(StudioConfig.from_dict(ckpt)).activations_mb < estimate(StudioConfig.from_dict(base)).activations_mb
    assert "fits" in est["full"].verdict()
