"""``pip install .`` gives a working studio: the CLI and the app's entry point import from site-packages
(no source checkout on the path), and the shipped assets (studio-tiny, samples) come with it."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow  # trains, serves or spawns processes: the full suite runs it


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(ROOT),
                    "--target", str(target)], check=True, capture_output=True, cwd=tmp_path_factory.mktemp("build"))
    return target


def run(installed, tmp_path, *code):
    env = {**os.environ, "PYTHONPATH": str(installed), "STUDIO_HOME": str(tmp_path / "home")}
    return subprocess.run([sys.executable, *code], capture_output=True, text=True, cwd=tmp_path, env=env)


def test_the_installed_package_finds_its_assets_and_runs_the_cli(installed, tmp_path):
    out = run(installed, tmp_path, "-c", "import studio.settings as s, studio.ui.launch; "
                                         "print(s.ASSETS); print((s.SAMPLES / 'chat.jsonl').is_file())")
    assert out.returncode == 0, out.stderr
    where, sample = out.stdout.split()
    assert where.startswith(str(installed)) and sample == "True"
    out = run(installed, tmp_path, "-m", "studio", "check-data", str(installed / "studio/_assets/samples/qa.csv"))
    assert out.returncode == 0 and "prompt_completion" in out.stdout, out.stderr
    assert run(installed, tmp_path, "-m", "studio", "ui", "--help").returncode == 0
