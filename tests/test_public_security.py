"""Public mode as an attacker sees it, on loopback: two logged-in visitors (alice, bob) and an anonymous
one against a studio started with STUDIO_PUBLIC=1. Identity comes from the login (here a trusted header,
as a reverse proxy or the Space's OAuth would give it), never from anything the client picks."""

import json
import os
import re
import socket
import subprocess
import sys
import time
import zipfile

import httpx
import pytest
from conftest import ROOT, SAMPLES, eventually
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

pytestmark = pytest.mark.slow  # a second app in its own process


@pytest.fixture(scope="module")
def public(tmp_path_factory):
    """(url, home): the app in public mode in a fresh process, with a fake hub token in its environment."""
    home = tmp_path_factory.mktemp("public-home")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "STUDIO_PUBLIC": "1", "STUDIO_HOME": str(home), "STUDIO_HOST": "127.0.0.1",
           "STUDIO_PORT": str(port), "STUDIO_TRUSTED_USER_HEADER": "X-Studio-User", "HF_TOKEN": "hf_operator_secret",
           "STUDIO_MAX_STEPS": "40", "STUDIO_OPERATOR_TOKEN": "op-secret", "HF_HUB_OFFLINE": "1"}
    log = (home / "server.log").open("w")  # read it when a test here fails
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    eventually(lambda: _up(url), timeout=120, what="the public app to start")
    yield url, home
    proc.terminate()
    proc.wait(30)
    log.close()


def _up(url) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def visitor(url, name=None) -> Client:
    return Client(url, verbose=False, analytics_enabled=False, download_files=False,
                  headers={"X-Studio-User": name} if name else None)


def call(c: Client, api: str, **by_label):
    info = c.view_api(return_format="dict", print_info=False)["named_endpoints"][api]["parameters"]
    names = {p["label"]: p["parameter_name"] for p in info}
    return c.predict(**{names[k.replace("_", " ")]: v for k, v in by_label.items()}, api_name=api)


def train_for(c: Client, steps: int = 3, ends: str = "Completed", **settings) -> str:
    c.predict(handle_file(str(SAMPLES / "qa.csv")), api_name="/upload")
    call(c, "/start", max_steps=steps, **settings)

    def done():
        status = c.predict(api_name="/status")[0]
        return status if any(w in status for w in ("Completed", "Stopped", "Failed")) else None

    status = eventually(done, timeout=240, what="the visitor's run to end")
    assert ends in status, status
    return status


def run_name(status: str) -> str:
    return re.search(r"Run `([^`]+)`", status).group(1)


def test_identity_comes_from_the_login_not_the_client(public):
    url, home = public
    alice, bob, anon = visitor(url, "alice"), visitor(url, "bob"), visitor(url)
    status = train_for(alice)
    assert str(home) not in status  # no server path in a public message
    theirs = run_name(status)
    table, _ = bob.predict(api_name="/runs")
    shown = (table["value"] if table.get("__type__") == "update" else table)["data"]
    assert theirs not in [row[0] for row in shown if row]  # bob sees none of alice's runs
    with pytest.raises(AppError):  # Gradio's choices refuse first; the engine's owner check is behind it
        bob.predict([theirs], api_name="/resume")  # (tests/test_reliability.py tests that check on its own)
    zipped, note = bob.predict(theirs, api_name="/export_adapter")
    assert zipped["value"] is None and "Pick a trained run" in note
    with pytest.raises(AppError, match="Log in"):
        call(anon, "/start", max_steps=2)


def test_a_push_never_lends_the_operators_token(public):
    url, _ = public
    alice = visitor(url, "alice")
    with pytest.raises(AppError, match="your own token"):
        alice.predict(None, "someone/repo", "", True, api_name="/export_push")


def test_anonymous_visitors_cannot_import_or_export_ratings(public, tmp_path):
    url, _ = public
    anon = visitor(url)
    battles = tmp_path / "b.csv"
    battles.write_text("model_a,model_b,winner,judge\nx,y,model_a,mallory\n" * 50)
    with pytest.raises(AppError, match="operator"):
        anon.predict(handle_file(str(battles)), api_name="/rate_import")
    with pytest.raises(AppError, match="operator"):
        anon.predict(api_name="/rate_export")


def test_model_names_are_hub_ids_or_starters_never_folders(public):
    url, home = public
    alice = visitor(url, "alice")
    alice.predict(handle_file(str(SAMPLES / "qa.csv")), api_name="/upload")
    for name in (str(home / "runs"), str(home / "models" / "studio-tiny"), "../runs", "/etc"):
        with pytest.raises(AppError) as err:
            call(alice, "/start", Base_model=name, max_steps=2)
        assert "not a model you can use here" in str(err.value) and str(home) not in str(err.value)


def test_jobs_keep_to_the_operators_step_budget(public):
    url, home = public
    bob = visitor(url, "bob")
    status = train_for(bob, steps=100000, ends="Stopped")  # asks for far more than the 40 steps allowed
    assert "limit of 40 steps" in status
    listed = json.loads(subprocess.run([sys.executable, "-m", "studio", "runs", "--json"], capture_output=True,
                                       text=True, cwd=ROOT, env={**os.environ, "STUDIO_HOME": str(home)}).stdout)
    assert max(r["step"] for r in listed) == 40


def test_operator_token_guesses_are_rate_limited(public):
    url, _ = public
    mallory = visitor(url, "mallory")
    messages = []
    for guess in range(8):
        try:
            mallory.predict(f"guess-{guess}", api_name="/operator_stop_all")
        except AppError as e:
            messages.append(str(e))
    assert all("Operator token required" in m for m in messages[:5])
    assert all("Too many wrong operator tokens" in m for m in messages[5:])
    with pytest.raises(AppError, match="Too many"):
        mallory.predict("op-secret", api_name="/operator_stop_all")  # even the right token waits its turn


def test_an_exported_zip_names_no_visitor(public, tmp_path):
    url, home = public
    alice = visitor(url, "alice")
    train_for(alice)
    table, _ = alice.predict(api_name="/runs")
    name = (table["value"] if table.get("__type__") == "update" else table)["data"][0][0]
    zipped, status = alice.predict(name, api_name="/export_adapter")
    path = zipped["value"]["path"] if isinstance(zipped, dict) else zipped
    text = "".join(zipfile.ZipFile(path).read(n).decode("utf-8", "replace") for n in ("README.md",
                                                                                      "studio-config.yaml"))
    assert "user-alice" not in text and "uploads" not in text and str(home) not in text


def test_a_visitor_trains_on_their_own_runs_never_on_anothers(public):
    url, home = public
    alice, bob = visitor(url, "alice"), visitor(url, "bob")
    first = run_name(train_for(alice))
    second = run_name(train_for(alice, Base_model=f"run:{first}"))  # alice goes on from what her run learned
    listed = json.loads(subprocess.run([sys.executable, "-m", "studio", "runs", "--json"], capture_output=True,
                                       text=True, cwd=ROOT, env={**os.environ, "STUDIO_HOME": str(home)}).stdout)
    assert next(r for r in listed if r["name"] == second)["model"] == f"run:{first}"
    bob.predict(handle_file(str(SAMPLES / "qa.csv")), api_name="/upload")
    answers = []
    for name in (first, "no-such-run"):  # someone else's run and no run at all: the same answer
        with pytest.raises(AppError) as err:
            call(bob, "/start", Base_model=f"run:{name}", max_steps=2)
        answers.append(str(err.value).replace(name, "<run>"))
    assert "not a model you can use here" in answers[0] and answers[0] == answers[1]


def test_a_visitors_data_check_runs_apart_and_their_stop_ends_it(public, tmp_path):
    url, _ = public
    bob = visitor(url, "bob")
    big = tmp_path / "big.csv"
    big.write_text("instruction,output\n" + "".join(f"What is {i} plus {i}?,{2 * i} since {i} and {i} make {2 * i}.\n"
                                                  for i in range(300_000)))
    shown = bob.predict(handle_file(str(big)), api_name="/upload")
    checking = bob.submit(shown, "auto", "", 256, "studio-tiny", "auto", api_name="/check_data")
    time.sleep(6)  # the child has started and is reading
    asked = time.time()
    stopped = bob.predict(api_name="/stop")
    report = checking.result(timeout=60)[0]
    assert "Stopped reading your data" in stopped, report
    assert "was stopped" in report and time.time() - asked < 15
