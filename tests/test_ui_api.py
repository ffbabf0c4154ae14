"""The real app, driven through gradio_client: upload, Start, status, Stop on studio-tiny; two
sessions share one device (one trains, the other is told it is queued); Stop is per session."""

import json
import os
import time
from pathlib import Path

import httpx
import pytest
from conftest import SAMPLES, eventually
from gradio_client import Client, handle_file

pytestmark = pytest.mark.slow  # trains, serves or spawns processes: the full suite runs it


def client(url) -> Client:
    return Client(url, verbose=False, analytics_enabled=False, download_files=False)


def call(c: Client, api: str, labels: dict | None = None, **settings):
    """Call an endpoint with some inputs set, named by their labels: ``max_steps=2000`` for "max steps",
    or ``labels={"any label": value}``."""
    info = c.view_api(return_format="dict", print_info=False)["named_endpoints"][api]["parameters"]
    names = {p["label"]: p["parameter_name"] for p in info}
    wanted = {**{k.replace("_", " "): v for k, v in settings.items()}, **(labels or {})}
    return c.predict(**{names[k]: v for k, v in wanted.items()}, api_name=api)


def rows(table) -> list:
    """A table's rows, whether the app sent the table or an update that also shows it."""
    return (table["value"] if table.get("__type__") == "update" else table)["data"]


def start(c: Client, **settings) -> str:
    return call(c, "/start", **settings)


def poll(c: Client, until, timeout=90.0):
    end = time.time() + timeout
    while time.time() < end:
        status, doctor, progress, loss, system, log, *history = c.predict(api_name="/status")
        if until(status, log):
            return status, log
        time.sleep(0.5)
    raise AssertionError(f"timed out; last status: {status!r}")


def test_upload_start_status_stop(url):
    c = client(url)
    path = c.predict(handle_file(str(SAMPLES / "qa.csv")), api_name="/upload")[0]
    assert path.endswith("qa.csv") and "uploads" in path
    report, preview, hist, *_ = c.predict(path, "auto", "", 128, "studio-tiny", "auto", api_name="/check_data")
    assert "prompt_completion" in report and "200 usable" in report
    assert any(label == "trained" for _, label in [(p["token"], p["class_or_confidence"]) for p in preview])
    started = start(c, max_steps=100000)
    assert "Starting" in started or "Training" in started  # the device is free: no queue
    status, log = poll(c, lambda s, lg: "Training" in s and "loss" in (lg or ""))
    assert "Training" in status and "loss" in log
    assert "Stopping" in c.predict(api_name="/stop")
    status, log = poll(c, lambda s, lg: "Stopped" in s)
    assert "Run directory" in status


def test_second_session_is_queued_and_stop_is_per_session(url):
    a, b = client(url), client(url)
    for c in (a, b):
        c.predict(handle_file(str(SAMPLES / "instructions.json")), api_name="/upload")
    start(a, max_steps=100000)
    poll(a, lambda s, lg: "Training" in s and "loss" in (lg or ""))
    assert "Queued" in start(b, max_steps=100000)
    status, _ = poll(b, lambda s, lg: "Queued" in s)
    assert "position 1" in status
    b.predict(api_name="/stop")  # b leaves the queue ...
    poll(b, lambda s, lg: "Stopped" in s)
    status, _ = poll(a, lambda s, lg: "Training" in s)  # ... and a keeps training
    a.predict(api_name="/stop")
    poll(a, lambda s, lg: "Stopped" in s)


def test_bad_upload_gives_a_readable_message_not_a_traceback(url, tmp_path):
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": \n')
    c = client(url)
    path = c.predict(handle_file(str(bad)), api_name="/upload")[0]
    report, *_ = c.predict(path, "auto", "", 128, "studio-tiny", "auto", api_name="/check_data")
    assert "broken.jsonl: line 2" in report and "Traceback" not in report
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="broken.jsonl: line 2") as refused:  # said at once; no run starts
        c.predict(api_name="/start")
    assert "Traceback" not in str(refused.value)
    runs_dir = Path(os.environ["STUDIO_HOME"]) / "runs"
    assert not [r for r in runs_dir.iterdir() if (r / "config.yaml").read_text().find("broken.jsonl") >= 0]


def test_run_history_overlays_and_diffs(url, tmp_path):
    from conftest import tiny_config

    from studio.config import StudioConfig
    from studio.engine import runs
    from studio.engine.train import loop as train

    for lr in (1e-3, 5e-4):
        cfg = StudioConfig.from_dict(tiny_config(SAMPLES / "qa.csv", train={"learning_rate": lr}))
        cfg.run_name = f"hist-{lr}"
        train.run(cfg)
    c = client(url)
    table, picks = c.predict(api_name="/runs")
    names = [row[0] for row in rows(table)]
    mine = [n for n in names if n.endswith(("hist-0.001", "hist-0.0005"))]
    assert len(mine) == 2 and all(row[1] == "completed" for row in rows(table) if row[0] in mine)
    overlay, diff = c.predict(mine, api_name="/compare_runs")
    assert "train.learning_rate" in diff and "run_name" in diff
    assert runs.config_diff([runs.runs_root() / n for n in mine])[0][0] in diff


def test_estimate_yaml_and_config_round_trip(url, tmp_path):
    c = client(url)
    md, yaml_text, cli, saved = c.predict(api_name="/estimate")
    assert "Memory estimate" in md and "fits" in md
    assert "model:\n  name: studio-tiny" in yaml_text and "python -m studio train" in cli
    from studio.config import StudioConfig

    cfg = StudioConfig.from_dict({"method": {"kind": "qlora"}, "train": {"max_steps": 321, "learning_rate": 5e-5}})
    cfg.save(tmp_path / "mine.yaml")
    values = c.predict(handle_file(str(tmp_path / "mine.yaml")), api_name="/load_config")
    assert "qlora" in values and 321 in values and 5e-5 in values
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: 1\n")
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="unknown key 'train.lr'"):
        c.predict(handle_file(str(bad)), api_name="/load_config")


def test_stop_then_resume_continues_the_run(url):
    c = client(url)
    c.predict(handle_file(str(SAMPLES / "instructions.json")), api_name="/upload")
    start(c, max_steps=100000)
    poll(c, lambda s, lg: "Training" in s and "loss" in (lg or ""))
    c.predict(api_name="/stop")
    status, log = poll(c, lambda s, lg: "Stopped" in s)
    run_dir = status.split("Run directory:")[1].strip().strip("`")
    stopped_at = int(json.loads((Path(run_dir) / "status.json").read_text())["step"])
    resumed = c.predict([], api_name="/resume")
    assert run_dir in resumed

    def chart_steps():
        loss = c.predict(api_name="/status")[3]
        return json.loads(loss["plot"])["data"][0]["x"] if isinstance(loss, dict) and loss.get("plot") else []

    steps = eventually(lambda: (x := chart_steps()) and x[-1] > stopped_at and x, what="points after the resume")
    assert steps[0] == 1, steps  # the chart keeps the points from before the stop
    c.predict(api_name="/stop")
    poll(c, lambda s, lg: "Stopped" in s)


def test_public_mode_reads_only_own_uploads_and_samples(url, monkeypatch):
    monkeypatch.setenv("STUDIO_PUBLIC", "1")
    c = client(url)
    report, *_ = c.predict("/etc/passwd", "auto", "", 128, "studio-tiny", "auto", api_name="/check_data")
    assert "only your own uploads" in report and "root" not in report
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Log in to train"):  # anonymous: may look, not train
        start(c, dataset_file="/etc/passwd")
    with pytest.raises(httpx.HTTPStatusError, match="403"):  # anonymous: no uploads at all (Gradio's route refuses)
        c.predict(handle_file(str(SAMPLES / "qa.csv")), api_name="/upload")
    report, *_ = c.predict("qa.csv", "auto", "", 128, "studio-tiny", "auto", api_name="/check_data")
    assert "200 usable" in report  # the samples are everyone's


def test_compare_tab_scores_a_trained_run(url):
    from conftest import tiny_config

    from studio.config import StudioConfig
    from studio.engine.train import loop as train

    cfg = StudioConfig.from_dict(tiny_config(SAMPLES / "instructions.json", train={"max_steps": 2}))
    cfg.run_name = "to-compare"
    run = train.run(cfg).run_dir
    c = client(url)
    saved, status = call(c, "/compare", Run=run.name, max_new_tokens=8, bertscore=False,
                         labels={"at most N examples": 6, "Evaluation file (with references)": None})
    assert "Done: 6 examples" in status
    saved = saved["value"]  # an update of the results dropdown: its new choices and value
    summary, bars, scatter, table, worse = c.predict(run.name, saved, "rougeL", api_name="/show_comparison")
    metrics = [row[0] for row in rows(summary)]
    assert metrics[:3] == ["perplexity", "bleu", "rouge1"] and "bertscore_f1" not in metrics
    assert len(rows(table)) == 6 and "BLEU signature" in worse


def test_prompt_effectiveness_through_the_api(url):
    from conftest import tiny_config

    from studio.config import StudioConfig
    from studio.engine.train import loop as train

    cfg = StudioConfig.from_dict(tiny_config(SAMPLES / "instructions.json", train={"max_steps": 2}))
    run = train.run(cfg).run_dir
    c = client(url)
    table, text = call(c, "/prompt_effectiveness", Run=run.name, max_new_tokens=6,
                       labels={"at most N examples": 4, "K samples per prompt": 2,
                               "Phrasings, one per line (write \\n for a line break)": "{input}\nSay: {input}"})
    assert [row[0] for row in rows(table)] == ["{input}", "Say: {input}"]
    assert "Best phrasing" in text and "K=2 (sampled)" in text


def test_rate_tab_pairs_likert_results_and_dpo_data(url, tmp_path):
    from conftest import tiny_config

    from studio.config import EvalConfig, StudioConfig
    from studio.engine.judge.evaluate import evaluate_run
    from studio.engine.train import loop as train

    cfg = StudioConfig.from_dict(tiny_config(SAMPLES / "instructions.json", train={"max_steps": 2}))
    cfg.run_name = "to-rate"
    run = train.run(cfg).run_dir
    evaluate_run(run, limit=4, settings=EvalConfig(max_new_tokens=8, bertscore=False), name="r1")
    c = client(url)
    pool = c.predict(run.name, "r1", api_name="/rate_add_comparison")
    assert "items" in pool
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="Type your name"):
        c.predict("", api_name="/rate_next_pair")
    battles = tmp_path / "battles.csv"  # outputs that are surely not empty, imported through the tab
    battles.write_text("question_id,model_a,model_b,winner,judge,prompt,output_a,output_b\n"
                       f"ui1,base,{run.name},tie,zed,Add 1 and 2.,3,1 + 2 = 3.\n")
    assert "items" in c.predict(handle_file(str(battles)), api_name="/rate_import")
    prompt, a, b, reveal = c.predict("ann", api_name="/rate_next_pair")  # the pair itself stays server-side
    assert "Prompt" in prompt and a.startswith("**A**") and b.startswith("**B**")
    voted = 0
    while not prompt.startswith("Nothing left"):
        prompt, a, b, reveal, pool, board, *_ = c.predict("ann", api_name="/rate_vote_a")
        assert "A was **" in reveal
        voted += 1
        assert f"**{voted + 1}** pairwise votes" in pool  # the counts follow each vote (+1: the import)
        assert len(rows(board)) == 2  # and so does the leaderboard
    assert voted >= 1
    *_, progress = c.predict("ann", api_name="/rate_next_answer")
    assert "of" in progress
    answer = c.predict("ann", 4, 5, 4, 3, "fine", api_name="/rate_submit")
    assert answer[7].startswith("1 of") and "**1** Likert ratings" in answer[8]
    board, likert, agree, versus, note = c.predict(api_name="/rate_results")
    assert len(rows(likert)) >= 4 and "Likert" not in note
    models = [row[1] for row in rows(board)]
    assert "base" in models and run.name in models
    offer = c.predict(api_name="/rate_to_dpo")  # offered, nothing changed yet
    offer = offer[0] if isinstance(offer, (list, tuple)) else offer
    assert "preference pairs are ready" in offer and "nothing changes until you do" in offer
    path, fmt, kind = c.predict(api_name="/rate_use_votes")[:3]  # one click takes the offer
    assert kind == "dpo" and path.endswith(".jsonl")
    c.predict(api_name="/rate_to_reward")  # votes -> a reward model -> RL
    path, fmt, kind = c.predict(api_name="/rate_use_votes")[:3]
    assert kind == "reward" and path.endswith(".jsonl")
    from studio.engine.judge import campaign as C
    from studio.engine.judge.ratings import default_db

    made = c.predict(run.name, "r1", "from the comparison", "both", 2, api_name="/campaign_create")
    cid = next(c["id"] for c in C.campaigns(default_db()) if c["name"] == "from the comparison")
    assert f"?campaign={cid}" in str(made)
    kinds = {u["kind"] for u in C.units(default_db(), cid)}
    assert kinds == {"pair", "single"} and C.spec_of(default_db(), cid).overlap == 2

    # a draft, made through the API like the page: nobody rates it until it is opened, then it takes answers
    made = c.predict(run.name, "r1", "a draft", "pairwise", 1, False, True, api_name="/campaign_create")
    draft = next(c["id"] for c in C.campaigns(default_db()) if c["name"] == "a draft")
    assert f"prepare={C.draft_key(default_db(), draft)}" in str(made)
    assert c.predict(draft, "ann", api_name="/campaign_next") == {"done": True}
    assert "Open: raters may rate" in str(c.predict(draft, api_name="/campaign_open"))
    assert c.predict(draft, "ann", api_name="/campaign_next")["done"] is False
    assert C.draft_key(default_db(), draft) is None  # the preview link's key is spent


def test_export_tab_gives_the_adapter_zip(url):
    from conftest import tiny_config

    from studio.config import StudioConfig
    from studio.engine.train import loop as train

    cfg = StudioConfig.from_dict(tiny_config(SAMPLES / "instructions.json", train={"max_steps": 2}))
    run = train.run(cfg).run_dir
    c = client(url)
    zipped, status = c.predict(run.name, api_name="/export_adapter")
    assert "is ready" in status
    assert zipped["interactive"] and zipped["value"]["path"].endswith("-adapter.zip")
    assert "max |logit difference|" in c.predict(run.name, api_name="/export_merged")
    zipped, status = c.predict("../../etc", api_name="/export_adapter")
    assert not zipped["interactive"] and zipped["value"] is None and "Pick a trained run" in status


def test_a_killed_worker_fails_the_run_and_the_app_keeps_answering(url):
    import signal

    import psutil

    c = client(url)
    c.predict(handle_file(str(SAMPLES / "qa.csv")), api_name="/upload")
    start(c, max_steps=100000)
    poll(c, lambda s, lg: "Training" in s and "loss" in (lg or ""))
    def worker(p) -> bool:  # a process forked by the fork server (not the fork server itself)
        return p.is_running() and "forkserver" in " ".join(p.cmdline()) and "forkserver" in " ".join(
            p.parent().cmdline())

    workers = [p for p in psutil.Process().children(recursive=True) if worker(p)]
    assert len(workers) == 1, "the run should train in one child process"
    os.kill(workers[0].pid, signal.SIGKILL)
    status, _ = poll(c, lambda s, lg: "Failed" in s)
    assert "killed by SIGKILL" in status and "resume" in status
    table, _ = c.predict(api_name="/runs")  # the app still answers
    assert rows(table)


def test_your_own_csv_trains_without_typing_a_mapping(url, tmp_path):
    """question/answer is read as prompt -> answer; a CSV with other names offers its own columns in two
    dropdowns, and picking them maps it; a new file starts from detection again."""
    c = client(url)
    qa = tmp_path / "mine.csv"
    qa.write_text("question,answer\n" + "".join(f"What is {i} and {i}?,{2 * i}\n" for i in range(30)))
    path, fmt, columns, sample = c.predict(handle_file(str(qa)), api_name="/upload")
    assert (fmt, columns, sample) == ("auto", "", None)
    report = c.predict(path, "auto", "", 128, "studio-tiny", "auto", api_name="/check_data")[0]
    assert "detected alpaca" in report and "read column" in report
    start(c, max_steps=2)
    status, _ = poll(c, lambda s, lg: "Completed" in s, timeout=180)
    odd = tmp_path / "odd.csv"
    odd.write_text("frage,antwort\n" + "".join(f"Was ist {i} und {i}?,{2 * i}\n" for i in range(30)))
    path = c.predict(handle_file(str(odd)), api_name="/upload")[0]
    report, _, _, prompt, answer = c.predict(path, "auto", "", 128, "studio-tiny", "auto", api_name="/check_data")
    assert "cannot tell the format" in report
    assert prompt["visible"] and prompt["choices"] == [["frage", "frage"], ["antwort", "antwort"]]
    c.predict(path, "frage", None, 128, "studio-tiny", "auto", api_name="/map_columns")  # one picked: waits
    fmt, columns, report, *_ = c.predict(path, "frage", "antwort", 128, "studio-tiny", "auto",
                                         api_name="/map_columns")
    assert fmt == "alpaca" and columns == "instruction=frage, output=antwort" and "detected alpaca" in report
    again = c.predict(handle_file(str(qa)), api_name="/upload")  # the mapping does not stick to the next file
    assert again[1:3] == ("auto", "")
