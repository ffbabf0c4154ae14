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
           "STUDIO_MAX_STEPS": "40", "STUDIO_OPERATOR_TOKEN": "op-secret", "HF_HUB_OFFLINE": "1",
           "STUDIO_UPLOADS_PER_MINUTE": "1000"}  # the hostile walk uploads a file for every endpoint that takes one
    # (the rate limit itself is tests/test_gateway.py's)
    log = (home / "server.log").open("w")  # read it when a test here fails
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    SERVER["pid"] = proc.pid
    eventually(lambda: _up(url), timeout=120, what="the public app to start")
    yield url, home
    proc.terminate()  # SIGTERM: the server empties Gradio's upload cache and the visitors' uploads on its way out
    proc.wait(30)
    log.close()
    assert not (home / "gradio").exists() and not any((home / "uploads").rglob("*.*"))


SERVER: dict = {}


def _up(url) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def visitor(url, name=None) -> Client:
    return Client(url, verbose=False, analytics_enabled=False, download_files=False,
                  headers={"X-Studio-User": name} if name else None)


def _norm(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", label.lower()).strip()


def call(c: Client, api: str, **by_label):
    """An endpoint called by its inputs' labels (``at_most_N_examples`` for "at most N examples")."""
    info = c.view_api(return_format="dict", print_info=False)["named_endpoints"][api]["parameters"]
    names = {_norm(p["label"]): p["parameter_name"] for p in info}
    given = {p["parameter_name"]: None for p in info if not p.get("parameter_has_default")}  # e.g. an empty File
    return c.predict(**(given | {names[_norm(k)]: v for k, v in by_label.items()}), api_name=api)


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


def test_the_footer_keeps_no_run_history_and_shows_no_api_page(public):
    """Gradio's run recorder kept what a visitor typed (a hub token field too) in the browser's storage and showed
    it in plain text; on a public deployment it is off, and the footer links no API page."""
    url, _ = public
    config = httpx.get(url + "config", timeout=10).json()
    assert config["run_history"] is False and config["footer_links"] == ["gradio", "settings"]
    assert httpx.get(url + "gradio_api/runs", timeout=10).status_code == 404


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
    # a token typed into the form (or sent by a script) is not taken either: only the visitor's login gives one
    with pytest.raises(AppError, match="takes no typed token"):
        alice.predict(None, "someone/repo", "hf_typed_by_alice", True, api_name="/export_push")


def test_anonymous_visitors_cannot_import_or_export_ratings(public, tmp_path):
    url, _ = public
    anon = visitor(url)
    battles = tmp_path / "b.csv"
    battles.write_text("model_a,model_b,winner,judge\nx,y,model_a,mallory\n" * 50)
    with pytest.raises(httpx.HTTPStatusError, match="403"):  # Gradio's upload route stores nothing of theirs
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
    spoofer = Client(url, verbose=False, analytics_enabled=False, download_files=False,
                     headers={"X-Studio-User": "mallory", "X-Forwarded-For": "203.0.113.9"})
    with pytest.raises(AppError, match="Too many"):  # a made-up address does not start a fresh count
        spoofer.predict("guess-9", api_name="/operator_stop_all")
    assert "stop" in mallory.predict("op-secret", api_name="/operator_stop_all")  # the operator is never locked out


def test_an_exported_zip_names_no_visitor(public, tmp_path):
    url, home = public
    alice = visitor(url, "alice")
    train_for(alice)
    table, _ = alice.predict(api_name="/runs")
    name = (table["value"] if table.get("__type__") == "update" else table)["data"][0][0]
    zipped, status = alice.predict(name, api_name="/export_adapter")
    path = zipped["value"]["path"] if isinstance(zipped, dict) else zipped
    got = httpx.get(url + f"gradio_api/file={path}", timeout=30)  # as alice's browser fetches it
    assert got.status_code == 200
    import io

    text = "".join(zipfile.ZipFile(io.BytesIO(got.content)).read(n).decode("utf-8", "replace")
                   for n in ("README.md", "studio-config.yaml"))
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
    shown = bob.predict(handle_file(str(big)), api_name="/upload")[0]
    checking = bob.submit(shown, "auto", "", 256, "studio-tiny", "auto", api_name="/check_data")
    stopped, asked = stop_once_going(bob), time.time()  # Stop as soon as the check is going
    report = checking.result(timeout=60)[0]
    assert "Stopped reading your data" in stopped, report
    assert "was stopped" in report and time.time() - asked < 15


# -- the one door ------------------------------------------------------------------------------------------------
SECRET = "zebra-quartz-7731"  # a row only alice's upload has


@pytest.fixture(scope="module")
def alice_run(public, tmp_path_factory):
    """(run name, alice's upload on the server): alice uploads a file with a secret row, trains on it and
    compares once."""
    url, home = public
    alice = visitor(url, "alice")
    mine = tmp_path_factory.mktemp("alice") / "alice-secret.csv"
    mine.write_text("instruction,output\n" + "".join(f"Say {i} twice.,{i} {i}\n" for i in range(24))
                    + f"What is the code?,{SECRET}\n")
    alice.predict(handle_file(str(mine)), api_name="/upload")
    call(alice, "/start", max_steps=20)  # enough for answers of its own (blind pairs need two non-empty answers)
    status = eventually(lambda: (lambda s: s if "Completed" in s else None)(alice.predict(api_name="/status")[0]),
                        timeout=240, what="alice's run")
    name = run_name(status)
    call(alice, "/compare", Run=name, at_most_N_examples=4, max_new_tokens=12, bertscore=False)
    return name, next((home / "uploads").rglob("alice-secret.csv"))


def test_a_sweep_grid_cannot_name_another_visitors_file(public, alice_run):
    url, home = public
    bob = visitor(url, "bob")
    bob.predict(handle_file(str(SAMPLES / "qa.csv")), api_name="/upload")
    for target in (str(alice_run[1]), "/etc/passwd", "../user-alice/alice-secret.csv"):
        with pytest.raises(AppError) as err:
            call(bob, "/sweep_start", Grid=f"data.path={target}\ntrain.learning_rate=1e-3", steps_per_run=4)
        assert "only your own uploads" in str(err.value) and str(home) not in str(err.value)
    with pytest.raises(AppError, match="only your own uploads"):  # a second file named by the grid, too
        call(bob, "/sweep_start", Grid=f"data.val_path={alice_run[1]}", steps_per_run=4)


def test_exports_are_handed_to_their_owner_only(public, alice_run):
    url, home = public
    alice = visitor(url, "alice")
    zipped, _ = alice.predict(alice_run[0], api_name="/export_adapter")
    handed = zipped["value"]["path"] if isinstance(zipped, dict) else zipped
    secret = re.search(r"(?:^|/)dl-([0-9a-f]{32})/", handed).group(1)  # a random part no one can guess
    assert str(home) not in json.dumps(zipped) and not handed.startswith("/")  # named by its place in the cache
    on_disk = next((home / "exports").rglob("*.zip"))
    assert "user-alice" in str(on_disk)  # alice's exports live in her own folder, which is not served
    anon = httpx.Client(base_url=url, timeout=10)
    answers = {anon.get(f"/gradio_api/file={p}").status_code
               for p in (on_disk, on_disk.with_name("no-such-export.zip"), home / "exports" / "x.zip")}
    assert answers == {403}  # the export folder is not served: one answer, there or not
    assert anon.get(f"/gradio_api/file={handed.replace(secret, '0' * 32)}").status_code in (403, 404)
    assert anon.get(f"/gradio_api/file={handed}").status_code == 200  # the link alice was handed works


def as_visitor_against_a_stand_in_hub(tmp_path, script: str, status: int, body: dict) -> tuple[str, list]:
    """Run ``script`` in a public-mode process whose hub is a stand-in on loopback answering every request with
    ``status`` and ``body``; (its stdout, [(path, Authorization header)] of every request the hub saw)."""
    import http.server
    import threading

    seen, payload = [], json.dumps(body).encode()

    class Hub(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            seen.append((self.path, self.headers.get("authorization")))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if status == 401:
                self.send_header("X-Error-Code", "RepoNotFound")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_HEAD = _answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {**os.environ, "STUDIO_PUBLIC": "1", "HF_TOKEN": "hf_operator_secret", "HF_HUB_OFFLINE": "0",
           "HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}", "STUDIO_HOME": str(tmp_path),
           "HF_HOME": str(tmp_path / "hf")}
    try:
        out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=120)
    finally:
        server.shutdown()
    return out.stdout + out.stderr[-1500:], seen


def test_no_hub_call_for_a_visitor_carries_the_operators_token(tmp_path):
    """A public deployment's estimate and data check of a private repo send no token to the hub."""
    script = ("from studio.config import StudioConfig\n"
              "from studio.engine.train.estimate import estimate\n"
              "from studio.engine.data.check import inspect_data\n"
              "for f in (lambda: estimate(StudioConfig.from_dict({'model': {'name': 'operator-org/private'}})),\n"
              "          lambda: inspect_data('" + str(SAMPLES / "qa.csv") + "', model='operator-org/private')):\n"
              "    try:\n        f()\n    except Exception as e:\n        print('refused:', e)\n")
    out, seen = as_visitor_against_a_stand_in_hub(tmp_path, script, 401, {"error": "Repository not found"})
    assert out.count("refused:") == 2, out
    assert seen and all(auth is None for _, auth in seen), seen  # the hub was asked, never with the token


def test_a_data_check_asks_the_hub_for_no_weights(monkeypatch):
    import huggingface_hub

    from studio.config import ModelConfig
    from studio.engine import models

    asked = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda repo, **kw: asked.append(kw) or (_ for _ in ()).throw(OSError("offline")))
    for light in ({"tokenizer_only": True}, {"config_only": True}):
        with pytest.raises(models.ModelError):
            models.resolve_model(ModelConfig(name="someone/model"), **light)
    assert asked and all(not any("safetensors" in p for p in kw["allow_patterns"]) for kw in asked)


def _rss_mb(pid) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def test_a_parquet_bomb_and_a_huge_message_never_reach_the_web_server(public, alice_run, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    url, _ = public
    alice = visitor(url, "alice")
    n = 20_000  # one 100 kB string, 20,000 times: 2 GB of text in a file of a few hundred bytes
    column = pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int32()), pa.array(["x" * 100_000]))
    bomb = tmp_path / "eval.parquet"
    pq.write_table(pa.table({"instruction": column, "output": column}), bomb, compression="zstd")
    assert bomb.stat().st_size < 4096
    before = _rss_mb(SERVER["pid"])
    with pytest.raises(AppError) as err:
        call(alice, "/compare", Run=alice_run[0], Prompts_from="upload a file",
             Evaluation_file_with_references=handle_file(str(bomb)), bertscore=False)
    assert "limit" in str(err.value)
    assert _rss_mb(SERVER["pid"]) - before < 150  # it was read in a child with limits, not in the server
    info = alice.view_api(return_format="dict", print_info=False)["named_endpoints"]["/chat"]["parameters"]
    words = " ".join(["word"] * 12_000)
    args = {p["parameter_name"]: p.get("parameter_default") for p in info}
    args[info[0]["parameter_name"]], args[info[1]["parameter_name"]] = alice_run[0], words
    asked = time.time()
    with pytest.raises(AppError, match="at most"):
        alice.predict(**args, api_name="/chat")
    assert time.time() - asked < 10


def test_device_work_is_capped_and_stopped_by_the_visitor(public, alice_run):
    url, _ = public
    alice = visitor(url, "alice")
    job = alice.submit(api_name="/compare", **_compare_args(alice, alice_run[0], limit=10**6, new_tokens=2500))
    stop_once_going(alice)
    with pytest.raises(AppError) as err:
        job.result(timeout=60)
    assert "was stopped" in str(err.value)
    info = alice.view_api(return_format="dict", print_info=False)["named_endpoints"]["/lr_find"]["parameters"]
    finding = alice.submit(api_name="/lr_find", **{p["parameter_name"]: p.get("parameter_default") for p in info})
    stop_once_going(alice)  # the range test runs as a device job too: in a child with limits, and Stop ends it
    with pytest.raises(AppError, match="was stopped"):
        finding.result(timeout=60)


def stop_once_going(c: Client, timeout: float = 60) -> str:
    """Press Stop as soon as the visitor has a job or a check going (Stop says nothing until then); what it said."""
    def stopped() -> str | None:
        said = c.predict(api_name="/stop")  # unchanged (Gradio's skip) while nothing is going
        return said if isinstance(said, str) and said.startswith("Stop") else None

    return eventually(stopped, timeout, what="a job of the visitor's to be going")


def _compare_args(c: Client, run: str, limit: int, new_tokens: int) -> dict:
    info = c.view_api(return_format="dict", print_info=False)["named_endpoints"]["/compare"]["parameters"]
    wanted = {"Run": run, "at most N examples": limit, "max new tokens": new_tokens, "bertscore": False,
              "Prompts from": "validation split", "Evaluation file (with references)": None}
    return {p["parameter_name"]: wanted.get(p["label"], p.get("parameter_default")) for p in info}



def test_one_visitors_slow_check_does_not_hold_up_anothers(public, tmp_path):
    url, home = public
    bob, carol = visitor(url, "bob"), visitor(url, "carol")
    big = tmp_path / "big.csv"
    big.write_text("instruction,output\n" + "".join(f"What is {i} plus {i}?,{2 * i}.\n" for i in range(300_000)))
    slow = bob.submit(bob.predict(handle_file(str(big)), api_name="/upload")[0], "auto", "", 256, "studio-tiny", "auto",
                      api_name="/check_data")
    eventually(lambda: _audited(home, "check_data", "user-bob"), 30, what="bob's check to go through the door")
    asked = time.time()
    report = carol.predict("qa.csv", "auto", "", 256, "studio-tiny", "auto", api_name="/check_data")[0]
    assert "detected" in report and not slow.done()
    assert time.time() - asked < 30
    bob.predict(api_name="/stop")


def test_anonymous_visitors_cannot_upload_and_refused_uploads_are_gone(public):
    """Refused at Gradio's own upload route, before a byte is stored (the page's File fields upload there first)."""
    url, home = public
    anon = visitor(url)
    with pytest.raises(httpx.HTTPStatusError, match="403"):
        anon.predict(handle_file(str(SAMPLES / "qa.csv")), api_name="/upload")
    answer = httpx.post(url + "gradio_api/upload", files={"files": ("big.bin", b"x" * 2**20)})
    assert answer.status_code == 403 and answer.text.startswith("Log in to upload")
    assert not [p for p in (home / "gradio").rglob("*") if p.name in ("qa.csv", "big.bin")]  # not in the cache
    assert _audited(home, "upload-refused", None)


def _audited(home, action: str, owner) -> list[dict]:
    lines = [json.loads(line) for line in (home / "audit" / "gate.jsonl").read_text().splitlines()]
    return [line for line in lines if line["action"] == action and line["owner"] == owner]


def test_a_huge_grid_is_refused_before_it_is_enumerated(public):
    url, _ = public
    bob = visitor(url, "bob")
    bob.predict(handle_file(str(SAMPLES / "qa.csv")), api_name="/upload")
    grid = "\n".join(f"train.{k}=" + ",".join(str(v) for v in range(30)) for k in ("seed", "logging_steps", "threads"))
    asked = time.time()
    with pytest.raises(AppError, match="at most 16"):
        call(bob, "/sweep_start", Grid=grid, steps_per_run=4)
    assert time.time() - asked < 10


def test_l3_logins_map_to_folders_one_to_one():
    from studio.ui.identity import owner_id

    names = ["carol.x", "carol_x", "carol-x", "Carol.x", "carol x", "carol/x", "carol", "é", "../x"]
    ids = {owner_id(n) for n in names}
    assert len(ids) == len(names) and all("/" not in i and ".." not in i for i in ids)
    assert owner_id("alice") == "user-alice"


def test_l4_l5_l6_ratings_stay_with_their_owner_reports_load_nothing_and_the_operator_sees_all(public, alice_run,
                                                                                               tmp_path):
    url, home = public
    alice, bob = visitor(url, "alice"), visitor(url, "bob")
    name = alice_run[0]
    evals = sorted((home / "runs" / name / "eval").iterdir())
    alice.predict(name, evals[-1].name, api_name="/rate_add_comparison")
    shown = alice.predict("", api_name="/rate_next_answer")
    assert shown[0].startswith("**Prompt:**")
    alice.predict("", 5, 5, 5, 5, "", api_name="/rate_submit")
    likert = bob.predict(api_name="/rate_results")[1]
    rows = (likert["value"] if isinstance(likert, dict) and "value" in likert else likert).get("data", [])
    assert not [r for r in rows if r and r[0] == "base"]  # alice's rating of "base" is not in bob's results
    odd = tmp_path / "odd.csv"
    odd.write_text("instruction,![x](http://127.0.0.1:9/track.png)\nSay hi.,hi\n" * 3)
    report = bob.predict(bob.predict(handle_file(str(odd)), api_name="/upload")[0], "alpaca",
                         "output=![x](http://127.0.0.1:9/track.png)", 256, "studio-tiny", "auto",
                         api_name="/check_data")[0]
    assert "![" not in report and "<img" not in report
    everyone = visitor(url, "op").predict("op-secret", api_name="/operator_runs")[1]
    assert name in everyone and "user-alice" in everyone
    assert re.search(r"\| user-alice \| [\d.]+ \| [\d.]+ \| [\d.]+ \| \d+ \|", everyone)  # the ledger, per visitor
    # L1: alice trains on her own votes (the preference file is hers, named without a path) and no message of a
    # merge names a server path
    shown = alice.predict("", api_name="/rate_next_pair")
    while shown[0].startswith("**Prompt:**"):  # a vote shows the next pair, until none is left
        shown = alice.predict("", api_name="/rate_vote_a")
    alice.predict(api_name="/rate_to_dpo")
    path, _, kind = alice.predict(api_name="/rate_use_votes")[:3]
    assert kind == "dpo" and "/" not in path and path.startswith("preferences-")
    report = alice.predict(path, "auto", "", 256, "studio-tiny", "auto", api_name="/check_data")[0]
    assert "detected preference" in report, report
    merged = alice.predict(name, api_name="/export_merged")
    assert "Merged model in" in merged and str(home) not in merged


def test_every_endpoint_passes_the_door_as_a_hostile_visitor(public, alice_run, tmp_path):
    """mallory calls every API endpoint with alice's run, alice's file and server paths wherever a value can be
    typed; every call is admitted by the gate first (the audit log names it), and nothing of alice's comes back."""
    url, home = public
    mallory = visitor(url, "mallory")
    hostile = [alice_run[0], str(alice_run[1]), "/etc/passwd", f"run:{alice_run[0]}"]
    endpoints = mallory.view_api(return_format="dict", print_info=False)["named_endpoints"]
    log = home / "audit" / "gate.jsonl"
    before = log.read_text().count("\n") if log.is_file() else 0
    evil_yaml = tmp_path / "evil.yaml"  # a config naming alice's file and run, for the endpoint that loads one
    evil_yaml.write_text(f"data:\n  path: {alice_run[1]}\nmodel:\n  name: run:{alice_run[0]}\n")
    evil_zip = tmp_path / "evil.zip"  # a campaign zip that climbs out of its folder, for the campaign import
    with zipfile.ZipFile(evil_zip, "w") as z:
        z.writestr("../../../outside/campaign.json", "{}")
    given = {"/load_config": evil_yaml, "/campaign_import": evil_zip}
    answers = []
    for api, info in endpoints.items():
        if api == "/operator_stop_all":
            continue  # would end the other tests' work; it is called in test_operator_token_guesses_are_rate_limited
        # every endpoint once with its defaults (a value a dropdown refuses never reaches a handler), then, but for
        # the operator's (their wrong tokens are slowed down), with something hostile in every typed value
        for evil in [None, *([] if api.startswith("/operator_") else hostile)]:
            args = []
            for p in info["parameters"]:
                kind = p.get("component")
                if evil is not None and kind in ("Textbox", "Dropdown", "Code", "Markdown"):
                    args.append(evil)
                elif kind in ("File", "UploadButton"):
                    args.append(handle_file(str(given.get(api, SAMPLES / "qa.csv"))))
                else:
                    args.append(p.get("parameter_default", p.get("example_input")))
            job = mallory.submit(*args, api_name=api)
            try:
                answers.append(str(job.result(timeout=60)))
            except Exception as e:  # noqa: BLE001 - refusals are the point
                answers.append(str(e))
    mallory.predict(api_name="/stop")
    admitted = [json.loads(line) for line in log.read_text().splitlines()[before:]]
    seen = {a["action"] for a in admitted if a["owner"] == "user-mallory"}
    missing = {api.lstrip("/") for api in endpoints} - seen - {"operator_stop_all"}
    assert not missing, f"endpoints that skipped the door: {missing}"
    text = "\n".join(answers)
    for evil in hostile:  # Gradio's own refusal repeats a value mallory typed ("Value: ... is not in the list")
        text = text.replace(evil, "<typed>")
    text = re.sub(re.escape(str(home / "gradio")) + r"/[^'\"\s]+", "<a file handed to mallory>", text)
    leaks = [line for line in text.splitlines() if SECRET in line or str(home) in line or "hf_operator_secret" in line]
    assert not leaks, leaks[:5]


def test_weights_that_do_not_fit_the_visitors_quota_are_refused_before_the_download(tmp_path):
    """The stand-in hub says the repo's weights take 10 GB: a visitor's training is refused before a byte comes
    down (asked without the operator's token)."""
    script = ("from studio.config import ModelConfig\n"
              "from studio.engine import models, runs\n"
              "runs.ACTING.set('user-alice')\n"
              "try:\n    models.resolve_model(ModelConfig(name='someone/huge'))\n"
              "except models.ModelError as e:\n    print('refused:', e)\n")
    info = {"id": "someone/huge", "sha": "a" * 40, "siblings": [
        {"rfilename": "config.json", "size": 600}, {"rfilename": "model-00001-of-00002.safetensors", "size": 5 * 10**9},
        {"rfilename": "model-00002-of-00002.safetensors", "size": 5 * 10**9}]}
    out, seen = as_visitor_against_a_stand_in_hub(tmp_path, script, 200, info)
    assert "refused:" in out and "9,537 MB" in out, out
    assert all("/resolve/" not in path for path, _ in seen)  # no file was asked for
    assert seen and all(auth is None for _, auth in seen)


# -- Gradio's own routes: the gateway in front of upload and the queue (studio/ui/gateway.py) --------------------
def test_the_upload_route_counts_a_logged_in_upload_and_refuses_one_past_the_quota(public):
    url, home = public
    answer = httpx.post(url + "gradio_api/upload", files={"files": ("notes.txt", b"y" * 200_000)},
                        headers={"X-Studio-User": "dave"})
    assert answer.status_code == 200
    assert _audited(home, "upload-route", "user-dave")[-1]["bytes"] >= 200_000
    # a body declared past the quota is refused before Gradio reads a byte of it (nothing is sent after the headers)
    host, port = url.split("//")[1].strip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"POST /gradio_api/upload HTTP/1.1\r\nHost: {host}\r\nX-Studio-User: dave\r\nContent-Type: "
                  f"multipart/form-data; boundary=b\r\nContent-Length: {600 * 2**20}\r\n\r\n".encode())
        reply = _http_reply(s)
    assert reply.startswith("HTTP/1.1 413") and "does not fit" in reply, reply
    assert _audited(home, "upload-refused", "user-dave")[-1]["why"] == "quota"


def _http_reply(sock) -> str:
    """One whole HTTP answer read from a socket: its headers, then as many bytes as they announce."""
    data = b""
    while b"\r\n\r\n" not in data and (chunk := sock.recv(4096)):
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    size = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
    while len(body) < size and (chunk := sock.recv(4096)):
        body += chunk
    return (head + b"\r\n\r\n" + body).decode()


def test_an_anonymous_flood_leaves_room_for_a_logged_in_visitor(public):
    """Anonymous pages (a new Gradio session each) send data checks as fast as they can, for a bounded time;
    alice's own checks are answered all the while, and right after."""
    from concurrent.futures import ThreadPoolExecutor

    url, home = public
    flooder = visitor(url)
    codes: dict = {}
    until = time.time() + 20

    def flood():
        import uuid

        jobs = []
        while time.time() < until:
            flooder.session_hash = uuid.uuid4().hex  # a new anonymous session each time, as a script would
            jobs.append(flooder.submit("qa.csv", "auto", "", 256, "studio-tiny", "auto", api_name="/check_data"))
            time.sleep(0.05)
        for job in jobs:
            try:
                job.result(timeout=120)
                codes["answered"] = codes.get("answered", 0) + 1
            except Exception as e:  # refused at the door: the share of the queue anonymous visitors have
                codes[type(e).__name__ + (" 503" if "503" in str(e) or "busy" in str(e) else "")] = 1 + \
                    codes.get(type(e).__name__ + (" 503" if "503" in str(e) or "busy" in str(e) else ""), 0)

    alice = visitor(url, "alice")
    with ThreadPoolExecutor(2) as pool:
        floods = [pool.submit(flood) for _ in range(2)]
        eventually(lambda: _audited(home, "queue-refused", None), 30, what="the flood to fill the anonymous share")
        during = [call(alice, "/check_data", dataset_file="qa.csv")[0] for _ in range(4)]
        for f in floods:
            f.result()
    assert all("rows" in report for report in during), during
    assert sum(v for k, v in codes.items() if k != "answered") > 0, codes  # the flood was refused in part
    refused = _audited(home, "queue-refused", None)
    assert refused and all(line["key"].startswith("anon-") for line in refused)
    assert "rows" in call(alice, "/check_data", dataset_file="qa.csv")[0]


def test_new_anonymous_sessions_cost_the_web_server_little(public):
    """800 new anonymous pages each ask for the status panel (a new Gradio session each): the web server grows
    by well under 150 MB (Gradio kept a copy of every component per session: ~700 KB each)."""
    import uuid

    import psutil

    url, _ = public
    server = psutil.Process(SERVER["pid"])
    page = visitor(url)
    for _ in range(30):  # warm: the first sessions pay for what every later one shares
        page.session_hash = uuid.uuid4().hex
        page.predict(api_name="/status")
    before = server.memory_info().rss
    for _ in range(800):
        page.session_hash = uuid.uuid4().hex
        page.predict(api_name="/status")
    grown_mb = (server.memory_info().rss - before) / 2**20
    assert grown_mb < 150, f"{grown_mb:.0f} MB for 800 sessions"
