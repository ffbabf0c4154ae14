"""The engine and the CLI run headless: importing them pulls in neither gradio nor plotly."""

import subprocess
import sys

from conftest import ROOT


def test_engine_and_cli_do_not_import_ui_libraries():
    code = ("import sys, pkgutil, importlib, studio.engine, studio.cli, studio.cli_judge\n"
            "for m in pkgutil.iter_modules(studio.engine.__path__):\n"
            "    importlib.import_module('studio.engine.' + m.name)\n"
            "bad = [m for m in ('gradio', 'plotly') if m in sys.modules]\n"
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_config_imports_nothing_from_studio():
    import re

    text = (ROOT / "studio" / "config.py").read_text()
    assert not re.search(r"^\s*(from|import) (studio|\.)", text, re.M)


def test_app_builds_with_the_tabs_in_order():
    import app

    demo = app.build_app()
    labels = [b.label for b in demo.blocks.values() if type(b).__name__ == "Tab"]
    top = [label for label in labels if label in app.TABS]  # the Rate tab has tabs of its own
    assert top == list(app.TABS) == ["Data", "Model", "Train", "Compare", "Rate", "Export"]
