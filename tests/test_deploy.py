"""The Space front matter, packages.txt, the Dockerfile and the README's commands agree."""

import re

import gradio
import pytest
import yaml
from conftest import ROOT, eventually


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
    assert "STUDIO_PUBLIC=1" in docker and "gradio[oauth]" in requirements  # public mode starts as documented


@pytest.mark.slow
def test_operator_token_guards_the_switch_stop_all_and_delete(url, monkeypatch):

    from conftest import SAMPLES
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    monkeypatch.setenv("STUDIO_OPERATOR_TOKEN", "s3cret")
    op, visitor = (Client(url, verbose=False, analytics_enabled=False, download_files=False) for _ in range(2))
    try:
        op.predict("wrong", False, api_name="/operator_training")
        raise AssertionError("a wrong token must be refused")
    except AppError as e:
        assert "Operator token required" in str(e)
    assert "switched off" in op.predict("s3cret", False, api_name="/operator_training")
    visitor.predict(handle_file(str(SAMPLES / "qa.csv")), api_name="/upload")
    try:
        visitor.predict(api_name="/start")
        raise AssertionError("Start should be refused")
    except AppError as e:
        assert "switched off" in str(e)
    assert "allowed" in op.predict("s3cret", True, api_name="/operator_training")
    info = visitor.view_api(return_format="dict", print_info=False)["named_endpoints"]["/start"]["parameters"]
    steps = next(p["parameter_name"] for p in info if p["label"] == "max steps")
    visitor.predict(**{steps: 100000}, api_name="/start")
    eventually(lambda: "Training" in visitor.predict(api_name="/status")[0], what="training to start")
    assert "Asked 1 job(s) to stop." == op.predict("s3cret", api_name="/operator_stop_all")

    def stopped():
        status = visitor.predict(api_name="/status")[0]
        return status if "Stopped" in status else None

    status = eventually(stopped, what="the job to stop")
    run_name = status.split("Run directory:")[1].strip().strip("`").rstrip("/").split("/")[-1]
    op.predict(api_name="/runs")  # the run list, as the operator's page shows it
    assert "Deleted 1 run(s)." == op.predict("s3cret", [run_name], api_name="/operator_delete_runs")


def test_the_readme_speaks_to_users():
    """What it is, a picture, the two commands, a quick start, links: no development log (issue numbers, goals),
    and every document it links to is in the repository."""
    readme = (ROOT / "README.md").read_text()
    body = readme.split("---", 2)[2]
    assert not re.search(r"\bissues?\b|\bgoals?\b", body, re.I)
    image = re.search(r"!\[[^\]]*\]\(([^)]+)\)", body)
    assert image and (ROOT / image.group(1)).is_file() and body.index(image.group(0)) < 800
    for heading in ("## Two commands", "## Quick start", "## Documentation"):
        assert heading in body
    for doc in re.findall(r"\bdocs/[\w.-]+\.md\b", body):
        assert (ROOT / doc).is_file(), doc
    assert "bash .ci/run" in body and "python app.py" in body


def test_gradio_s_own_address_variables_are_honoured_and_the_studio_s_win(monkeypatch):
    from studio.ui.launch import address

    for name in ("STUDIO_HOST", "STUDIO_PORT", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "SPACE_ID"):
        monkeypatch.delenv(name, raising=False)
    assert address() == ("127.0.0.1", 7860)
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "8080")
    assert address() == ("0.0.0.0", 8080)
    monkeypatch.setenv("STUDIO_HOST", "127.0.0.2")
    monkeypatch.setenv("STUDIO_PORT", "9000")
    assert address() == ("127.0.0.2", 9000) and address("::1", 9001) == ("::1", 9001)
