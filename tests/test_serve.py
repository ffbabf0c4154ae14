"""``studio serve``: a run behind an OpenAI-compatible API (transformers serve's server), talked to with the
``openai`` client on loopback: the run is listed by name, a temperature-0 answer is ``studio evaluate``'s tuned
prediction, a stream arrives in pieces, a wrong key gets 401."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from conftest import ROOT, SAMPLES, tiny_config

from studio.config import EvalConfig, StudioConfig
from studio.engine.train import loop as train

pytestmark = pytest.mark.slow  # trains a run and starts a server

KEY = "studio-test-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory, studio_home):
    cfg = StudioConfig.from_dict(tiny_config(SAMPLES / "chat.jsonl", data={"val_size": 0.1},
                                             train={"max_steps": 40, "batch_size": 8, "learning_rate": 2e-3}))
    cfg.run_name = "served"
    result = train.run(cfg)
    assert result.state == "completed", result.error
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "studio", "serve", result.run_dir.name, "--port", str(port),
                               "--api-key", KEY], cwd=ROOT, env={**os.environ}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    said = []  # "serving NAME at URL" comes once the folder is ready and the app is built (library warnings first)
    for line in server.stdout:
        said.append(line)
        if line.startswith("serving ") or len(said) > 50:
            break
    if not said or not said[-1].startswith("serving "):
        server.kill()
        pytest.fail("".join(said))
    deadline = time.time() + 60
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.3)
    yield result.run_dir, f"http://127.0.0.1:{port}/v1"
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)


def test_the_served_answer_is_the_tuned_models_answer(served):
    from openai import OpenAI

    from studio.engine.judge.evaluate import evaluate_run

    run, base_url = served
    client = OpenAI(base_url=base_url, api_key=KEY)
    assert [m.id for m in client.models.list().data] == [run.name]
    summary = evaluate_run(run, limit=3, settings=EvalConfig(max_new_tokens=24, bertscore=False), name="served")
    rows = [json.loads(line) for line in open(os.path.join(summary.dir, "predictions.jsonl"))]
    for row in rows:  # each held-out prompt as the messages evaluate gave the model
        reply = client.chat.completions.create(model=run.name, temperature=0, max_tokens=24, messages=row["prompt"])
        assert reply.choices[0].message.content.strip() == row["tuned"].strip(), (row["prompt"], row["tuned"])
    pieces = [chunk.choices[0].delta.content for chunk in client.chat.completions.create(
        model=run.name, temperature=0, max_tokens=24, stream=True,
        messages=rows[0]["prompt"]) if chunk.choices and chunk.choices[0].delta.content]
    assert len(pieces) > 1 and "".join(pieces).strip() == rows[0]["tuned"].strip()
    text = client.completions.create(model=run.name, prompt="Monday, Tuesday,", max_tokens=8, temperature=0)
    assert text.choices[0].text


def test_a_wrong_key_or_an_unserved_model_is_refused(served):
    import openai
    from openai import OpenAI

    run, base_url = served
    with pytest.raises(openai.AuthenticationError):
        OpenAI(base_url=base_url, api_key="wrong").models.list()
    with pytest.raises(openai.BadRequestError) as refused:
        OpenAI(base_url=base_url, api_key=KEY).chat.completions.create(
            model="someone-else", messages=[{"role": "user", "content": "hi"}])
    assert "not served here" in refused.value.response.text and run.name in refused.value.response.text


def test_a_served_run_judges_a_campaign_through_the_cli(served, tmp_path):
    """`studio campaign judge --endpoint` against the studio's own server: each pair asked in both orders with
    MT-Bench's prompt; the reply parsed for [[A]] / [[B]] / [[C]] (anything else is a tie), the agreement said."""
    from studio.engine.judge import campaign as C
    from studio.engine.judge.ratings import default_db

    run, base_url = served
    items = [{"question_id": f"j{i}", "prompt": f"What is {i} + 1?", "model": m, "output": text}
             for i in range(3) for m, text in (("right", f"{i + 1}."), ("wrong", "No idea."))]
    cid = C.create(default_db(), items, C.Spec(name="judged", overlap=1, repeat=0.0))
    for n in range(3):  # a careful rater: ten seconds an item (a faster one would be excluded)
        shown = C.next_unit(default_db(), cid, "ann", at=1000.0 + 20 * n)
        C.answer(default_db(), cid, "ann", shown.unit, "left" if shown.left_model == "right" else "right",
                 at=1010.0 + 20 * n)
    out = subprocess.run([sys.executable, "-m", "studio", "campaign", "judge", cid, "--endpoint", base_url,
                          "--model", run.name, "--api-key", KEY, "--json"], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout)
    assert got["n"] == 3 and 0 <= got["agreement_with_ties"] <= 1 and 0 <= got["consistency"] <= 1
