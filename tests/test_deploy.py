"""The Space front matter, packages.txt, the Dockerfile and the README's commands agree."""

import re

import gradio
import yaml
from conftest import ROOT


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---")[1])


def test_readme_makes_the_repo_a_gradio_space():
    meta = front_matter()
    assert meta["sdk"] == "gradio" and (ROOT / meta["app_file"]).is_file()
    assert meta["sdk_version"] == gradio.__version__  # the version the tests ran against
    assert meta["python_version"] == "3.11" and meta["hf_oauth"] is True


def test_dockerfile_installs_what_the_readme_and_the_space_do():
    docker = (ROOT / "Dockerfile").read_text()
    readme = (ROOT / "README.md").read_text()
    requirements = (ROOT / "requirements.txt").read_text()
    assert "pip install -r requirements.txt" in readme and "-r requirements.txt" in docker
    torch_pin = re.search(r"^torch==([\d.]+)$", requirements, re.M).group(1)
    assert f"torch=={torch_pin}" in docker
    assert f"FROM python:{front_matter()['python_version']}" in docker
    for package in (ROOT / "packages.txt").read_text().split():
        assert package in docker and package in (ROOT / ".ci" / "run").read_text()
    assert "USER studio" in docker and "HEALTHCHECK" in docker and 'CMD ["python", "app.py"]' in docker


def test_training_switch_for_operators(url, monkeypatch):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    monkeypatch.setenv("STUDIO_TRAINING", "off")
    c = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    try:
        c.predict(api_name="/start")
        raise AssertionError("Start should be refused")
    except AppError as e:
        assert "switched off" in str(e)
