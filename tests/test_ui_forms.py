"""forms.py: every setting has a widget; widgets <-> config round-trip; presets; bad widget text."""

import dataclasses

import gradio as gr
import pytest

from studio.config import SECTIONS, StudioConfig
from studio.ui.charts import ema, length_histogram, loss_figure
from studio.ui.forms import PRESETS, Form, apply_preset, from_widget
from studio.ui.tabs import data as data_tab
from studio.ui.tabs import model as model_tab
from studio.ui.tabs import train as train_tab


@pytest.fixture(scope="module")
def form():
    f = Form()
    with gr.Blocks():
        data_tab.build(f)
        model_tab.build(f)
        train_tab.build(f)  # the trackers sit beside Start
    return f


def test_every_setting_has_a_widget_with_its_help(form):
    expected = {f"{s}.{f.name}" for s in ("data", "model", "method", "train") for f in dataclasses.fields(SECTIONS[s])}
    assert set(form.widgets) == expected
    assert all(getattr(w, "info", None) for k, w in form.widgets.items())


def test_a_number_box_starts_where_the_schema_lets_the_setting_start(form):
    """One declaration gives the check and the widget: a box cannot go below the field's bound."""
    from studio.config import setting

    boxes = {k: w for k, w in form.widgets.items() if isinstance(w, gr.Number)}
    assert {"train.logging_steps", "train.save_steps", "data.limit", "method.adalora_init_r"} <= set(boxes)
    for key, box in boxes.items():
        assert box.minimum == setting(*key.split(".")).minimum, key
    assert boxes["train.logging_steps"].minimum == 1 and boxes["train.save_steps"].minimum == 0


def test_widgets_round_trip_a_config(form):
    cfg = StudioConfig.from_dict({"data": {"path": "x.csv", "columns": {"prompt": "q", "completion": "a"},
                                           "max_length": 256},
                                  "method": {"kind": "qlora", "target_modules": ["q_proj", "v_proj"], "quant_bits": 8},
                                  "train": {"learning_rate": 3e-5, "max_steps": 77, "gradient_checkpointing": True}})
    assert form.to_config(form.values_of(cfg)) == cfg


def test_widget_text_errors_name_the_setting():
    with pytest.raises(ValueError, match="data.columns"):
        from_widget("data.columns", "prompt")
    assert from_widget("method.target_modules", "all-linear") == "all-linear"
    assert from_widget("method.target_modules", "q_proj, v_proj") == ["q_proj", "v_proj"]


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_make_valid_configs_the_page_can_show(name, form):
    """A preset applied over another config is a valid config that survives the trip through the page's
    widgets, and it changes nothing it does not name."""
    other = StudioConfig.from_dict({"data": {"path": "mine.csv", "max_length": 300}, "train": {"seed": 7}})
    cfg = apply_preset(other, name)
    assert StudioConfig.from_dict(cfg.to_dict()) == cfg and form.to_config(form.values_of(cfg)) == cfg
    named = {(s, k) for s, values in PRESETS[name].items() for k in values}
    for section in ("data", "model", "method", "train", "eval"):
        for f in dataclasses.fields(SECTIONS[section]):
            if (section, f.name) not in named:
                assert getattr(getattr(cfg, section), f.name) == getattr(getattr(other, section), f.name)


@pytest.mark.integration
def test_the_low_memory_preset_needs_less_memory_than_lora():
    from studio.engine.train.estimate import estimate

    lora, low = (estimate(apply_preset(StudioConfig(), name)) for name in ("LoRA", "QLoRA low memory"))
    assert low.activations_mb < lora.activations_mb / 4 and low.weights_mb < lora.weights_mb


def test_charts_from_metrics():
    metrics = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.0}, {"step": 2, "eval_loss": 2.5},
               {"step": 3, "loss": None, "diverged": True}]
    fig = loss_figure(metrics)
    assert list(fig.data[0].x) == [1, 2] and list(fig.data[2].y) == [2.5]
    assert any("diverged" in (a.text or "") for a in fig.layout.annotations)
    assert ema([1.0, 3.0], alpha=0.5) == [1.0, 2.0]
    assert "1 of 3 over" in length_histogram([10, 20, 30], 25).layout.title.text


def test_a_bad_setting_is_named_as_the_page_shows_it(form):
    from studio.config import ConfigError

    values = form.values_of(StudioConfig())
    values[form.widgets["train.learning_rate"]] = 0
    with pytest.raises(ConfigError, match=r'"learning rate" \(Model tab\) must be > 0'):
        form.to_config(values)


def test_small_numbers_read_as_exponents_not_si_prefixes():
    from studio.ui.charts import system_figure

    fig = system_figure([{"step": 1, "loss": 1.0, "learning_rate": 2e-10}, {"step": 2, "loss": 0.9,
                                                                            "learning_rate": 1e-10}])
    axes = [v for k, v in fig.layout.to_plotly_json().items() if k.startswith(("xaxis", "yaxis"))]
    assert axes and all(a["exponentformat"] == "e" for a in axes)


def test_the_model_tab_opens_on_what_the_cli_gives_a_config_with_only_the_data(form):
    """One rule for both: the untouched form trains as `studio train` does with a YAML that names only the data."""
    from studio.engine.train.defaults import SMALL, with_defaults

    cfg, _ = with_defaults({"data": {"path": "x.jsonl"}})
    for section, values in SMALL.items():
        for key in values:
            assert form.widgets[f"{section}.{key}"].value == getattr(getattr(cfg, section), key), f"{section}.{key}"


def test_a_toast_names_the_run_never_a_server_path(monkeypatch):
    from studio.engine.events import JobSnapshot

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("STUDIO_PUBLIC", raising=False)
    snap = JobSnapshot(state="completed", run_dir="/srv/studio/runs/20261206-lora")
    assert "/srv/studio/runs/20261206-lora" in train_tab.status_text(snap)  # the panel, on the operator's machine
    toast = train_tab.plain(train_tab.status_text(snap, toast=True))
    assert "20261206-lora" in toast and "/srv" not in toast
