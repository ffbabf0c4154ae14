"""The real app in a real browser: Playwright driving Debian's chromium. Upload a file, see the
report, preview and histogram, start a LoRA run, watch the loss chart gain points, stop it,
compare the stopped run with its base.
Screenshots land in tests/artifacts/ for a person to look at."""

import os
import shutil
import time

import pytest
from conftest import ROOT, SAMPLES
from playwright.sync_api import TimeoutError as PlaywrightTimeout

pytestmark = pytest.mark.slow  # trains, serves or spawns processes: the full suite runs it

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (.ci/run installs it)", allow_module_level=True)


@pytest.fixture
def page(request):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1600})
        yield pg
        if getattr(request.node, "failed", False):  # what the page showed when the test failed
            pg.screenshot(path=str(ARTIFACTS / f"failed-{request.node.name}.png"), full_page=True)
        browser.close()


def wait_done(page, selector: str, timeout: int) -> None:
    """Wait for ``selector`` to say Done; on a timeout, fail with what the page and the server were doing."""
    import faulthandler
    import tempfile

    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    from studio.engine.device import DEVICE

    try:
        page.wait_for_function(f"document.querySelector('{selector}').innerText.includes('Done')", timeout=timeout)
    except PlaywrightTimeout:
        with tempfile.TemporaryFile("w+") as f:  # every thread's stack: where the server is stuck
            faulthandler.dump_traceback(f, all_threads=True)
            f.seek(0)
            stacks = f.read()
        toasts = page.locator(".toast-body").all_inner_texts()
        raise AssertionError(f"{selector} says {page.inner_text(selector)!r}; toasts {toasts}; device holder "
                             f"{DEVICE._holder!r}, "
                             f"waiting {DEVICE._waiting!r}\n{stacks}") from None


def points(page) -> int:
    return page.evaluate("(() => { const el = document.querySelector('#loss-chart .js-plotly-plot');"
                         " return el && el.data ? el.data[0].x.length : 0; })()")


def test_upload_train_watch_stop(page, url):
    page.goto(url)
    page.wait_for_selector("#data-upload")
    page.screenshot(path=str(ARTIFACTS / "01-first-look.png"), full_page=True)
    page.set_input_files("#data-upload input[type=file]", str(SAMPLES / "chat.jsonl"))
    page.wait_for_function("document.querySelector('#data-report').innerText.includes('detected')", timeout=60000)
    assert "messages" in page.inner_text("#data-report")
    page.wait_for_selector("#data-histogram .js-plotly-plot", timeout=30000)
    assert page.locator("#data-preview").inner_text().count("assistant") >= 1
    page.screenshot(path=str(ARTIFACTS / "02-data-checked.png"), full_page=True)

    page.get_by_role("tab", name="Model").click()
    page.wait_for_function("document.querySelector('#estimate').innerText.includes('Memory estimate')",
                           timeout=30000)
    page.fill("#train-max_steps input", "2000")  # long enough to watch, then stop
    page.press("#train-max_steps input", "Tab")
    page.wait_for_function("document.querySelector('#estimate').innerText.includes('parameters')", timeout=30000)
    page.screenshot(path=str(ARTIFACTS / "03-model.png"), full_page=True)

    page.get_by_role("tab", name="Train").click()
    page.click("#start")
    page.wait_for_function("document.querySelector('#status').innerText.includes('Training')", timeout=60000)
    page.wait_for_function("(() => { const el = document.querySelector('#loss-chart .js-plotly-plot');"
                           " return el && el.data && el.data[0].x.length >= 2; })()", timeout=60000)
    first = points(page)
    page.wait_for_function("(n) => { const el = document.querySelector('#loss-chart .js-plotly-plot');"
                           " return el && el.data && el.data[0].x.length > n; }", arg=first, timeout=60000)
    assert points(page) > first, "the loss chart did not gain points while training"
    page.screenshot(path=str(ARTIFACTS / "04-training.png"), full_page=True)
    page.reload()  # the page forgets everything; the browser keeps the session key
    page.wait_for_function("(() => { const el = document.querySelector('#data-path textarea, #data-path input');"
                           " return el && el.value.includes('chat.jsonl'); })()", timeout=30000)  # Data shows it again
    page.get_by_role("tab", name="Model").click()  # and so does Model
    page.wait_for_function("(() => { const el = document.querySelector('#train-max_steps input');"
                           " return el && el.value === '2000'; })()", timeout=30000)
    page.get_by_role("tab", name="Train").click()
    page.wait_for_function("document.querySelector('#status').innerText.includes('Training')", timeout=30000)
    page.wait_for_function(f"(() => {{ const el = document.querySelector('#loss-chart .js-plotly-plot');"
                           f" return el && el.data && el.data[0].x.length > {first}; }})()", timeout=30000)
    page.click("#stop")
    page.wait_for_function("document.querySelector('#status').innerText.includes('Stopped')", timeout=60000)
    assert "Traceback" not in page.content()
    page.screenshot(path=str(ARTIFACTS / "05-stopped.png"), full_page=True)
    run_name = page.inner_text("#status").split("Run directory:")[1].strip().rstrip("/").split("/")[-1]
    page.reload()  # Resume after a reload continues the run this session stopped, whatever is ticked
    page.get_by_role("tab", name="Train").click()
    page.click("#resume")
    page.wait_for_function(f"document.querySelector('#status').innerText.includes('{run_name}')", timeout=60000)
    page.wait_for_function("document.querySelector('#status').innerText.includes('Training')", timeout=60000)
    page.click("#stop")
    page.wait_for_function("document.querySelector('#status').innerText.includes('Stopped')", timeout=60000)

    page.get_by_role("tab", name="Compare").click()  # a stopped run keeps its adapter: compare it
    page.click("#compare-run input")
    page.get_by_role("option", name=run_name).click()
    page.wait_for_timeout(1000)  # a refresh that answers late must not undo the pick
    assert page.input_value("#compare-run input") == run_name
    page.fill("#eval-limit input", "6")
    page.press("#eval-limit input", "Tab")
    page.click("#compare-go")
    wait_done(page, "#compare-status", 120000)
    page.wait_for_selector("#compare-bars .js-plotly-plot", timeout=30000)
    assert "perplexity" in page.inner_text("#compare-summary")
    page.screenshot(path=str(ARTIFACTS / "06-compare.png"), full_page=True)


class Clicks:
    """Every click the newcomer makes, counted: the path must stay short."""

    def __init__(self, page):
        self.page, self.n = page, 0

    def __call__(self, selector: str = "", *, role: str = "", name: str = "") -> None:
        target = self.page.get_by_role(role, name=name) if role else self.page.locator(selector)
        target.first.click()
        self.n += 1


UNZIPPED_LOAD = r"""
import json, sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import PeftModel
folder = sys.argv[1]
base = json.load(open(folder + "/adapter_config.json"))["base_model_name_or_path"]
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), folder).eval()
tok = AutoTokenizer.from_pretrained(folder)
text = tok.apply_chat_template([{"role": "user", "content": "What day comes after Monday?"}], tokenize=False,
                               add_generation_prompt=True)
out = model.generate(**tok([text], return_tensors="pt", add_special_tokens=False), max_new_tokens=12, do_sample=False)
print(json.dumps(tok.decode(out[0], skip_special_tokens=True)))
"""


def test_the_newcomer_path_takes_at_most_ten_clicks(page, url, tmp_path):
    """Sample -> Start -> wait -> Compare -> Run -> Export -> Download, every setting as it comes."""
    import json
    import subprocess
    import sys
    import zipfile

    click = Clicks(page)
    page.goto(url)
    page.wait_for_selector("#data-sample")
    click("#data-sample input")
    click(role="option", name="chat.jsonl")
    page.wait_for_function("document.querySelector('#data-report').innerText.includes('detected')", timeout=60000)
    click(role="tab", name="Train")
    click("#start")
    page.wait_for_function("document.querySelector('#status').innerText.includes('Completed')", timeout=240000)
    page.screenshot(path=str(ARTIFACTS / "10-newcomer-trained.png"), full_page=True)
    click(role="tab", name="Compare")
    page.wait_for_function("document.querySelector('#compare-run input').value.includes('lora')", timeout=30000)
    click("#compare-go")
    wait_done(page, "#compare-status", 180000)
    page.wait_for_selector("#compare-bars .js-plotly-plot", timeout=30000)
    summary = page.inner_text("#compare-summary")
    assert "rougeL" in summary and "better" in summary
    page.screenshot(path=str(ARTIFACTS / "11-newcomer-compared.png"), full_page=True)
    click(role="tab", name="Export")
    page.wait_for_function("document.querySelector('#export-status').innerText.includes('is ready')", timeout=60000)
    with page.expect_download() as download:
        click("#export-adapter")
    saved = tmp_path / "adapter.zip"
    download.value.save_as(saved)
    page.screenshot(path=str(ARTIFACTS / "12-newcomer-exported.png"), full_page=True)
    assert click.n <= 10, f"{click.n} clicks from opening the page to a downloaded adapter"

    zipfile.ZipFile(saved).extractall(tmp_path / "adapter")
    made = subprocess.run([sys.executable, "-m", "studio", "tiny", "--out", str(tmp_path / "studio-tiny")],
                          capture_output=True, text=True, cwd=ROOT)  # the model card's line for the base
    assert made.returncode == 0, made.stderr
    out = subprocess.run([sys.executable, "-c", UNZIPPED_LOAD, str(tmp_path / "adapter")], capture_output=True,
                         text=True, cwd=tmp_path)  # a fresh process: plain transformers + peft
    assert out.returncode == 0, out.stderr
    assert "Monday" in json.loads(out.stdout.strip().splitlines()[-1])


RECORD_CHAT = """() => {
  window.chatTexts = [];
  const box = document.querySelector('#chat-tuned');
  new MutationObserver(() => {
    const bubbles = box.querySelectorAll('.message.bot, [data-testid="bot"]');
    const last = bubbles.length ? bubbles[bubbles.length - 1].innerText : '';
    window.chatTexts.push(last);
  }).observe(box, {subtree: true, childList: true, characterData: true});
}"""


def chat_with_a_new_run(page, url, name: str) -> None:
    """Train a 2-step run called ``name`` and pick it in the Chat tab."""
    from conftest import tiny_config

    from studio.config import StudioConfig
    from studio.engine.train import loop as train

    cfg = StudioConfig.from_dict(tiny_config(SAMPLES / "chat.jsonl", train={"max_steps": 2}))
    cfg.run_name = name
    result = train.run(cfg)
    assert result.state == "completed", result.error
    page.goto(url)
    page.get_by_role("tab", name="Chat").click()
    page.click("#chat-run input")
    page.get_by_role("option", name=result.run_dir.name).click()
    page.wait_for_function(f"document.querySelector('#chat-run input').value.includes('{name}')", timeout=30000)


def test_chat_streams_base_and_tuned_side_by_side(page, url):
    chat_with_a_new_run(page, url, "chat-me")
    page.evaluate(RECORD_CHAT)
    page.fill("#chat-message textarea", "Use the word garden in a sentence.")
    page.click("#chat-send")
    answered = """(() => { const bots = '#chat-tuned .message.bot, #chat-tuned [data-testid="bot"]';
      const said = [...document.querySelectorAll(bots)].map(e => e.innerText.trim()).filter(t => t);
      return said.length && !document.querySelector('#chat-tuned .generating, #chat-send[disabled]')
        ? said.sort((a, b) => b.length - a.length)[0] : ''; })()"""
    page.wait_for_function(answered, timeout=120000)
    page.wait_for_timeout(1000)
    texts = [t for t in page.evaluate("window.chatTexts") if t.strip()]
    final = page.evaluate(answered)
    page.screenshot(path=str(ARTIFACTS / "13-chat.png"), full_page=True)
    assert final.strip() and page.locator("#chat-base .message.bot, #chat-base [data-testid='bot']").count() >= 1
    partial = [t for t in texts if t.strip() and t.strip() != final.strip() and final.startswith(t.strip()[:3])]
    assert partial, f"the answer appeared whole, not streamed: {texts[-5:]}"


SENT = """(n) => document.querySelectorAll('#chat-tuned [data-testid="user"]').length >= n"""
ANSWERED_BOTH = """(n) => {
  const bots = (side) => [...document.querySelectorAll(`#chat-${side} [data-testid="bot"]`)];
  const done = (side) => bots(side).length >= n && bots(side)[n - 1].innerText.trim().length > 0;
  return done('base') && done('tuned') && !document.querySelector('#chat-tuned .generating, #chat-base .generating');
}"""


def test_a_four_message_conversation_with_base_and_tuned(page, url):
    """The second message used to fail (Gradio hands earlier messages back as typed parts): four in a row, each
    answered on both sides, no error toast."""
    chat_with_a_new_run(page, url, "talk-more")
    count = """(side) => document.querySelectorAll(`#chat-${side} [data-testid="bot"]`).length"""
    for n, message in enumerate(["Hello!", "Use the word garden in a sentence.", "And the word river?",
                                 "Thank you."], start=1):
        page.fill("#chat-message textarea", message)
        for _ in range(5):  # an Enter that lands while the last answer's event is still closing is not taken
            page.press("#chat-message textarea", "Enter")
            try:
                page.wait_for_function(SENT, arg=n, timeout=5000)
                break
            except PlaywrightTimeout:
                continue
        page.wait_for_function(ANSWERED_BOTH, arg=n, timeout=120000)
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "13b-chat-four-messages.png"), full_page=True)
    assert page.evaluate(count, "base") == 4 and page.evaluate(count, "tuned") == 4
    user = page.locator("#chat-tuned [data-testid='user']")
    assert user.count() == 4 and "Thank you." in user.nth(3).inner_text()
    assert page.locator(".toast-body.error, [data-testid='toast-body'].error").count() == 0


def test_the_doctor_speaks_while_the_run_is_going(page, url):
    """A learning rate too small to learn: the doctor's finding shows in the Train tab before the run ends."""
    page.goto(url)
    page.wait_for_selector("#data-sample")
    page.click("#data-sample input")
    page.get_by_role("option", name="chat.jsonl").click()
    page.wait_for_function("document.querySelector('#data-report').innerText.includes('detected')", timeout=60000)
    page.get_by_role("tab", name="Model").click()
    for field, value in (("learning_rate", "1e-8"), ("max_steps", "200")):  # judged from a quarter of the way
        page.fill(f"#train-{field} input", value)
        page.press(f"#train-{field} input", "Tab")
    page.get_by_role("tab", name="Train").click()
    page.click("#start")
    page.wait_for_function("document.querySelector('#doctor').innerText.includes('not fallen')", timeout=120000)
    assert "Training" in page.inner_text("#status"), "the finding should come while the run is still going"
    page.screenshot(path=str(ARTIFACTS / "14-doctor.png"), full_page=True)
    page.click("#stop")
    page.wait_for_function("document.querySelector('#status').innerText.includes('Stopped')", timeout=60000)


def test_a_typed_hub_id_is_the_id_used(page, url):
    """The model list completes to its first match on Enter (Qwen/Qwen2.5-0.5B became ...-Instruct); the box
    beside it takes a hub id exactly as typed."""
    page.goto(url)
    page.get_by_role("tab", name="Model").click()
    page.fill("#model-typed textarea, #model-typed input", "Qwen/Qwen2.5-0.5B")
    page.press("#model-typed textarea, #model-typed input", "Enter")
    page.wait_for_function("document.querySelector('#model-name input').value === 'Qwen/Qwen2.5-0.5B'",
                           timeout=30000)
    page.wait_for_function("document.querySelector('#defaults-note').innerText.includes('hub-sized')",
                           timeout=30000)
    page.wait_for_timeout(1000)
    assert page.input_value("#model-name input") == "Qwen/Qwen2.5-0.5B"


def test_a_csv_of_other_names_is_mapped_from_its_own_columns(page, url, tmp_path):
    odd = tmp_path / "odd.csv"
    odd.write_text("frage,antwort\n" + "".join(f"Was ist {i} und {i}?,{2 * i}\n" for i in range(30)))
    page.goto(url)
    page.set_input_files("#data-upload input[type=file]", str(odd))
    page.wait_for_function("document.querySelector('#data-report').innerText.includes('cannot tell')", timeout=60000)
    page.click("#data-map-prompt input")
    page.get_by_role("option", name="frage").click()
    page.wait_for_timeout(1000)  # one column picked: nothing happens yet, and nothing breaks
    page.click("#data-map-answer input")
    page.get_by_role("option", name="antwort").click()
    page.wait_for_function("document.querySelector('#data-report').innerText.includes('detected alpaca')",
                           timeout=60000)
    page.screenshot(path=str(ARTIFACTS / "02b-data-mapped.png"), full_page=True)
    assert page.input_value("#data-columns textarea, #data-columns input") == "instruction=frage, output=antwort"
    assert "Was ist 0 und 0?" in page.inner_text("#data-preview")


def pick(page, selector: str, option: str) -> None:
    """Choose ``option`` in the Gradio dropdown at ``selector``."""
    page.click(f"{selector} input")
    page.get_by_role("option", name=option, exact=True).first.click()
    page.wait_for_function(f"document.querySelector('{selector} input').value === {option!r}", timeout=30000)


def set_number(page, key: str, value: str) -> None:
    page.fill(f"#{key} input", value)
    page.press(f"#{key} input", "Tab")


def says(page, selector: str, text: str, timeout: int = 60000) -> None:
    page.wait_for_function(f"(() => {{ const el = document.querySelector('{selector}');"
                           f" return el && el.innerText.includes({text!r}); }})()", timeout=timeout)


def train_to_the_end(page, timeout: int = 240000) -> str:
    """Press Start and wait for the new run (not the one the status showed before) to complete; its name."""
    run_of = "(t) => (t.split('Run directory:')[1] || '').trim().split('\\n')[0]"
    before = page.evaluate(f"({run_of})(document.querySelector('#status').innerText)")
    page.click("#start")
    try:
        page.wait_for_function(f"(b) => {{ const t = document.querySelector('#status').innerText;"
                               f" const run = ({run_of})(t); return run && run !== b && t.includes('Completed'); }}",
                               arg=before, timeout=timeout)
    except PlaywrightTimeout:
        raise AssertionError(f"status {page.inner_text('#status')!r}; toasts "
                             f"{page.locator('.toast-body').all_inner_texts()}") from None
    return page.inner_text("#status").split("Run directory:")[1].strip().splitlines()[0].rstrip("/").split("/")[-1]


def test_the_second_day_walk_through_every_stage(page, url, tmp_path, capfd):
    """Sample -> train -> compare -> chat (two messages) -> rate -> own CSV of question/answer -> model settings ->
    the doctor on a silly learning rate -> reward model + RL -> sweep -> reload, as a newcomer goes, with no
    traceback in the server's output."""
    page.goto(url)
    page.wait_for_selector("#data-sample")
    pick(page, "#data-sample", "chat.jsonl")  # 1. the sample
    says(page, "#data-report", "detected")
    page.get_by_role("tab", name="Train").click()  # 2. train with every default
    trained = train_to_the_end(page)

    page.get_by_role("tab", name="Compare").click()  # 3. compare
    page.wait_for_function(f"document.querySelector('#compare-run input').value === {trained!r}", timeout=30000)
    set_number(page, "eval-limit", "6")
    page.click("#compare-go")
    wait_done(page, "#compare-status", 180000)

    page.get_by_role("tab", name="Chat").click()  # 4. chat: a second message is where it used to break
    page.wait_for_function(f"document.querySelector('#chat-run input').value === {trained!r}", timeout=30000)
    for n, message in enumerate(["What day comes after Monday?", "And after Tuesday?"], start=1):
        page.fill("#chat-message textarea", message)
        page.click("#chat-send")
        page.wait_for_function(SENT, arg=n, timeout=30000)
        page.wait_for_function(ANSWERED_BOTH, arg=n, timeout=120000)
        page.wait_for_timeout(500)

    page.get_by_role("tab", name="Rate").click()  # 5. rate the comparison just made, blind
    page.fill("#rater textarea, #rater input", "newcomer")
    page.wait_for_timeout(1000)
    page.click("#rate-add")
    says(page, "#rate-pool", "item")
    page.click("#pair-next")
    says(page, "#pair-a", "A")
    page.click("#vote-a")
    says(page, "#pair-reveal", "Recorded")
    page.get_by_role("tab", name="Results").click()
    page.click("#rate-refresh")
    says(page, "#rate-note", "small")  # one vote: the sample is called small, not certain
    page.screenshot(path=str(ARTIFACTS / "20-walk-rated.png"), full_page=True)

    own = tmp_path / "my_questions.csv"  # 6. the newcomer's own CSV, common column names, no mapping typed
    own.write_text("question,answer\n" + "".join(f"What is {i} plus {i}?,{i} plus {i} is {2 * i}.\n"
                                                 for i in range(40)))
    page.get_by_role("tab", name="Data").click()
    page.set_input_files("#data-upload input[type=file]", str(own))
    says(page, "#data-preview", " plus ")  # the preview shows the new file, as the model will see it
    assert "detected" in page.inner_text("#data-report")

    page.get_by_role("tab", name="Model").click()  # 7. model settings: 8. a silly learning rate
    set_number(page, "train-learning_rate", "1e-8")
    set_number(page, "train-max_steps", "40")
    page.get_by_role("tab", name="Train").click()
    train_to_the_end(page)
    says(page, "#doctor", "not fallen", 30000)
    assert "2e-3" in page.inner_text("#doctor") or "0.002" in page.inner_text("#doctor")  # the studio's own default

    page.get_by_role("tab", name="Data").click()  # 9. a reward model, then RL against it
    pick(page, "#data-sample", "feedback.jsonl")
    says(page, "#data-report", "preference")
    page.get_by_role("tab", name="Model").click()
    pick(page, "#method-kind", "reward")
    set_number(page, "train-learning_rate", "2e-3")
    set_number(page, "train-max_steps", "30")
    page.get_by_role("tab", name="Train").click()
    reward = train_to_the_end(page)
    says(page, "#status", "held-out pairs", 30000)
    page.get_by_role("tab", name="Model").click()
    pick(page, "#method-kind", "rl")
    pick(page, "#method-reward_model", f"run:{reward}")
    set_number(page, "train-max_steps", "12")
    page.get_by_role("tab", name="Train").click()
    train_to_the_end(page)
    says(page, "#status", "mean reward", 60000)
    assert "instability" not in page.inner_text("#doctor").lower() and "dead" not in page.inner_text("#doctor")
    page.screenshot(path=str(ARTIFACTS / "21-walk-rl.png"), full_page=True)

    page.get_by_role("tab", name="Data").click()  # 10. a sweep over the first task's learning rate
    pick(page, "#data-sample", "chat.jsonl")
    says(page, "#data-report", "messages")
    page.get_by_role("tab", name="Model").click()
    pick(page, "#method-kind", "lora")
    page.get_by_role("tab", name="Train").click()
    page.get_by_text("Sweep: try several settings").click()
    page.fill("#sweep-grid textarea", "train.learning_rate=1e-3,2e-3")
    set_number(page, "sweep-steps", "6")
    page.click("#sweep-start")
    says(page, "#sweep-status", "Best", 300000)
    page.screenshot(path=str(ARTIFACTS / "22-walk-sweep.png"), full_page=True)

    page.reload()  # 11. a reload keeps the session: the data, the method and the last run
    page.wait_for_function("(() => { const el = document.querySelector('#data-path textarea, #data-path input');"
                           " return el && el.value.includes('chat.jsonl'); })()", timeout=30000)
    page.get_by_role("tab", name="Train").click()
    says(page, "#status", "Run directory", 30000)
    assert page.locator(".toast-body.error, [data-testid='toast-body'].error").count() == 0
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err, (out + err)[-4000:]


def test_a_run_served_from_the_export_tab_answers_through_the_snippet_it_shows(page, url, tmp_path):
    """Export tab -> Serve this run -> the Python snippet on the page, run as it is, gets the run's answer."""
    import subprocess
    import sys

    from conftest import tiny_config

    from studio.config import StudioConfig
    from studio.engine.train import loop as train

    cfg = StudioConfig.from_dict(tiny_config(SAMPLES / "chat.jsonl", train={"max_steps": 20, "batch_size": 8,
                                                                            "learning_rate": 2e-3}))
    cfg.run_name = "serve-me"
    result = train.run(cfg)
    assert result.state == "completed", result.error
    page.goto(url)
    page.get_by_role("tab", name="Export").click()
    pick(page, "#export-run", result.run_dir.name)
    page.get_by_text("Serve: an OpenAI-compatible API").click()
    page.click("#serve-start")
    says(page, "#serve-status", "Serving", 240000)
    snippet = page.evaluate("(() => { const el = document.querySelector('#serve-python .cm-content'); return el ?"
                            " [...el.querySelectorAll('.cm-line')].map(l => l.innerText).join('\\n') : ''; })()")
    assert "OpenAI(base_url=" in snippet and result.run_dir.name in snippet, snippet
    page.screenshot(path=str(ARTIFACTS / "15-serve.png"), full_page=True)
    (tmp_path / "snippet.py").write_text(snippet)
    out = subprocess.run([sys.executable, str(tmp_path / "snippet.py")], capture_output=True, text=True, timeout=120)
    page.click("#serve-stop")
    says(page, "#serve-status", "Stopped", 60000)
    assert out.returncode == 0 and out.stdout.strip(), out.stderr
    # the second start is timed against the first: the page says how long it should take while it starts
    page.click("#serve-start")
    page.wait_for_function("document.body.innerText.includes('starting the server: ') && "
                           "document.body.innerText.includes(' of about ')", timeout=60000)
    page.screenshot(path=str(ARTIFACTS / "15b-serve-estimate.png"), full_page=True)
    says(page, "#serve-status", "Serving", 240000)
    page.click("#serve-stop")
    says(page, "#serve-status", "Stopped", 60000)


def shown(selector: str) -> str:
    """A page's text at ``selector`` as JavaScript, empty while the element is not rendered yet."""
    return f"(document.querySelector('{selector}') || {{innerText: ''}}).innerText"


def test_a_rater_rates_a_campaign_with_the_keyboard_and_the_owner_sees_the_table(page, url):
    from studio.engine.judge import campaign as C
    from studio.engine.judge.ratings import default_db

    items = [{"question_id": f"q{i}", "prompt": f"What is {i} + {i}?", "model": m, "output": f"{m} says {2 * i}"}
             for i in range(4) for m in ("base", "tuned", "other")]
    cid = C.create(default_db(), items, C.Spec(name="Keyboard check", overlap=2, repeat=0.0))
    page.goto(f"{url}?campaign={cid}")
    page.wait_for_function(f"{shown('#cv-guidelines')}.includes('Which answer is better?')",
                           timeout=30000)
    assert not page.locator("#data-upload").is_visible()  # nothing of the studio on screen
    said = page.inner_text("#cv-guidelines").replace("*", "")
    assert "press A, B or T" in said and "Keyboard check" not in said  # a neutral title: the owner's name stays theirs
    assert "single answer" not in said and "known answer" not in said  # only what this campaign asks and has
    page.click("#cv-name input, #cv-name textarea")
    page.keyboard.type("ann")
    page.keyboard.press("Enter")  # Enter in the name field starts, as the button says
    page.wait_for_function(f"{shown('#cv-progress')}.includes('1 of')", timeout=30000)
    total = page.inner_text("#cv-progress").split(" of ")[1].strip()
    page.screenshot(path=str(ARTIFACTS / "campaign-rater.png"), full_page=True)
    for n, key in enumerate(("a", "b", "t"), 2):
        page.keyboard.press(key)
        page.wait_for_function(f"{shown('#cv-progress')}.includes('{n} of')",
                               timeout=30000)
    assert total == "12"  # 4 questions x 3 pairs, once each (no repeats asked for)
    assert [a["winner"] for a in C.answers(default_db(), cid)] and len(C.answers(default_db(), cid)) == 3

    owner = page.context.browser.new_page(viewport={"width": 1400, "height": 1600})
    owner.goto(url)
    owner.get_by_role("tab", name="Rate").click()
    owner.get_by_role("tab", name="Campaigns").click()
    owner.wait_for_function(f"{shown('#campaign-raters')}.includes('ann')", timeout=30000)
    table = owner.inner_text("#campaign-raters")
    assert "ann" in table and "3" in table
    page.keyboard.press("a")  # ann rates on; the owner's table follows without a click
    owner.wait_for_function(f"{shown('#campaign-raters')}.includes('4')", timeout=30000)
    owner.screenshot(path=str(ARTIFACTS / "campaign-owner.png"), full_page=True)


def test_a_rater_scores_single_answers_with_the_keys_one_to_five(page, url):
    from studio.engine.judge import campaign as C
    from studio.engine.judge.ratings import default_db

    items = [{"question_id": f"s{i}", "prompt": f"Name {i} colours.", "model": m, "output": f"{m} lists {i}"}
             for i in range(2) for m in ("base", "tuned")]
    cid = C.create(default_db(), items, C.Spec(name="Scores by key", mode="likert", overlap=1, repeat=0.0))
    page.goto(f"{url}?campaign={cid}")
    page.wait_for_function(f"{shown('#cv-guidelines')}.includes('score every dimension')", timeout=30000)
    assert "Scores by key" not in page.inner_text("#cv-guidelines")
    page.fill("#cv-name input, #cv-name textarea", "bo")
    page.click("#cv-start")
    page.wait_for_function(f"{shown('#cv-progress')}.includes('1 of 4')", timeout=30000)
    assert page.locator("#cv-one").is_visible() and not page.locator("#cv-a").is_visible()
    assert "1 wrong or useless" in page.inner_text("#cv-dim-quality")  # the anchors say what a score means
    for key in "4435":
        page.keyboard.press(key)
    page.screenshot(path=str(ARTIFACTS / "campaign-scores.png"), full_page=True)
    page.keyboard.press("Enter")
    page.wait_for_function(f"{shown('#cv-progress')}.includes('2 of 4')", timeout=30000)
    got = [a for a in C.answers(default_db(), cid) if a["rater"] == "bo"]
    assert [(a["quality"], a["relevance"], a["coherence"], a["helpfulness"]) for a in got] == [(4, 4, 3, 5)]


def test_a_gguf_from_the_export_tab_runs_in_llama_cpp(page, url, tmp_path):
    """Export tab -> GGUF for llama.cpp and Ollama -> q8_0: the file the page hands over, downloaded through its
    link as a user does, loads in llama.cpp itself and answers a chat prompt, stopping at the end of its turn."""
    import httpx
    from conftest import tiny_config
    from consumers import llama_cpp, modelfile_template

    from studio.config import StudioConfig
    from studio.engine.train import loop as train

    cfg = StudioConfig.from_dict(tiny_config(SAMPLES / "chat.jsonl", train={"max_steps": 10, "batch_size": 8,
                                                                            "learning_rate": 3e-4}))
    cfg.run_name = "gguf-me"
    result = train.run(cfg)
    assert result.state == "completed", result.error
    page.goto(url)
    page.get_by_role("tab", name="Export").click()
    pick(page, "#export-run", result.run_dir.name)
    page.get_by_text("GGUF for llama.cpp and Ollama").click()
    pick(page, "#gguf-quant", "q8_0")
    page.click("#export-gguf")
    page.wait_for_selector("#gguf-files a[href*='.gguf']", timeout=240000)
    says(page, "#export-status", "llama-cli", 60000)
    page.screenshot(path=str(ARTIFACTS / "16-gguf.png"), full_page=True)
    links = page.eval_on_selector_all("#gguf-files a[href]", "els => els.map(e => e.href)")
    got = {}
    for link in links:
        name = "model.gguf" if ".gguf" in link else "Modelfile"
        (tmp_path / name).write_bytes(httpx.get(link, timeout=120).content)
        got[name] = tmp_path / name
    assert set(got) == {"model.gguf", "Modelfile"}, links
    assert modelfile_template(got["Modelfile"].read_text())[0]
    prompt = "<|im_start|>user\nWhat is a river?<|im_end|>\n<|im_start|>assistant\n"
    ran = llama_cpp(got["model.gguf"], prompts=[prompt], max_tokens=48)
    assert ran["answer_texts"][0].strip() and ran["stopped"][0] == ran["eot"], ran


def test_a_public_deployment_walked_by_a_logged_in_visitor_and_an_anonymous_one(page, url, tmp_path, monkeypatch,
                                                                                  studio_home):
    """Public mode, through the gateway in front of Gradio's routes: alice (logged in by the trusted header a
    proxy would set) uploads her file, trains and downloads her adapter; the page never shows the server's
    folders; an anonymous visitor's upload is refused at Gradio's own upload route with the studio's sentence."""
    import zipfile

    monkeypatch.setenv("STUDIO_PUBLIC", "1")
    monkeypatch.setenv("STUDIO_TRUSTED_USER_HEADER", "X-Studio-User")
    home = str(studio_home)
    page.context.set_extra_http_headers({"X-Studio-User": "alice"})
    page.goto(url)
    page.wait_for_selector("#data-upload")
    page.set_input_files("#data-upload input[type=file]", str(SAMPLES / "qa.csv"))
    says(page, "#data-report", "detected")
    page.get_by_role("tab", name="Model").click()
    page.fill("#train-max_steps input", "3")
    page.press("#train-max_steps input", "Tab")
    page.get_by_role("tab", name="Train").click()
    page.click("#start")
    says(page, "#status", "Completed", 240000)
    page.get_by_role("tab", name="Export").click()
    says(page, "#export-status", "is ready")
    with page.expect_download() as download:
        page.click("#export-adapter")
    saved = tmp_path / "alice.zip"
    download.value.save_as(saved)
    assert "adapter_model.safetensors" in zipfile.ZipFile(saved).namelist()
    hrefs = page.eval_on_selector_all("a[href*='gradio_api/file=']", "els => els.map(e => e.href)")
    assert hrefs and not [h for h in hrefs if home in h], hrefs  # files named by their place in Gradio's cache
    assert home not in page.content()
    page.screenshot(path=str(ARTIFACTS / "17-public-alice.png"), full_page=True)

    anon = page.context.browser.new_page(viewport={"width": 1400, "height": 1000})  # no login header
    anon.goto(url)
    anon.wait_for_selector("#data-upload")
    anon.set_input_files("#data-upload input[type=file]", str(SAMPLES / "qa.csv"))
    anon.wait_for_selector("[data-testid='toast-text']:has-text('Log in to upload')", timeout=30000)
    anon.wait_for_timeout(800)  # the toast's fade-in, for the screenshot only
    anon.screenshot(path=str(ARTIFACTS / "18-public-anonymous-upload.png"))  # the toast, as the visitor sees it
    toast = anon.inner_text("[data-testid='toast-text']")
    assert "Log in to upload a file" in toast and "{" not in toast, toast  # the sentence, not a JSON body
    anon.close()
    stored = [p.name for p in (studio_home / "gradio").rglob("qa.csv")]
    assert len(stored) <= 1  # alice's (moved to her uploads), never the anonymous visitor's


def campaign_form(page, url, name: str) -> None:
    """The Campaigns tab with a campaign's name typed and one rater a pair."""
    page.goto(url)
    page.get_by_role("tab", name="Rate").click()
    page.get_by_role("tab", name="Campaigns").click()
    page.fill("#campaign-name input, #campaign-name textarea", name)
    set_number(page, "campaign-overlap", "1")


def create_campaign(page, name: str) -> str:
    """Press Create and wait until the campaign picked is the new one (opening the tab picks the latest one
    there was, so its link is already on the page); the new campaign's id."""
    page.click("#campaign-create")
    page.wait_for_function(f"(document.querySelector('#campaign-pick input') || {{value: ''}}).value"
                           f".startsWith({name + ' ('!r})", timeout=60000)
    cid = page.input_value("#campaign-pick input").rsplit("(", 1)[1].rstrip(")")
    says(page, "#campaign-link", f"?campaign={cid}")
    return cid

def test_a_group_runs_a_campaign_from_the_page_and_careless_raters_are_caught(page, url, tmp_path):
    """The owner makes a campaign from the page alone (an items file, a gold file, their guidelines and rules);
    raters answer through the campaign's API as the page does: one always picks A at a human pace, one clicks
    faster than anyone reads, one is careful; both careless raters are excluded with the rule that caught them,
    a fourth rater gets the items they held, and the owner exports the campaign from the page as a zip that
    `datasets` loads."""
    import json
    import zipfile

    from datasets import load_dataset
    from gradio_client import Client

    systems = ("sun", "moon", "star")
    items = [{"question_id": f"q{i}", "prompt": f"Question {i}?", "model": m, "output": f"{m} answers {i}"}
             for i in range(8) for m in systems]
    gold = [{"question_id": "g0", "model_a": "sun", "model_b": "moon", "winner": "model_a"}]
    items += [{"question_id": "g0", "prompt": "What is 2 + 2?", "model": "sun", "output": "4"},
              {"question_id": "g0", "prompt": "What is 2 + 2?", "model": "moon", "output": "5"}]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    (tmp_path / "gold.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gold))
    campaign_form(page, url, "sun vs moon vs star, round 2")
    page.get_by_text("More comparisons, an items file, gold, guidelines and rules").click()
    page.set_input_files("#campaign-items input[type=file]", str(tmp_path / "items.jsonl"))
    page.set_input_files("#campaign-gold input[type=file]", str(tmp_path / "gold.jsonl"))
    page.fill("#campaign-guidelines textarea", "Prefer the answer that is **right**.")
    says(page, "#campaign-preview", "Prefer the answer that is right")
    page.fill("#campaign-min-seconds input", "1")
    page.press("#campaign-min-seconds input", "Tab")
    page.fill("#campaign-repeat input[type=number]", "0")
    page.press("#campaign-repeat input[type=number]", "Tab")
    cid = create_campaign(page, "sun vs moon vs star, round 2")

    rater = Client(url, verbose=False, analytics_enabled=False)

    def rate(name, pick, pace):
        n = 0
        while not (shown := rater.predict(cid, name, api_name="/campaign_next"))["done"]:
            time.sleep(pace)
            rater.predict(cid, shown["unit"], pick(shown), name, api_name="/campaign_answer")
            n += 1
        return n

    def careful(shown):  # the right answer, wherever it is shown
        order = {"4": 0, "sun": 1, "moon": 2, "star": 3, "5": 4}
        rank = [min(order[w] for w in order if w in text) for text in (shown["a"], shown["b"])]
        return "a" if rank[0] < rank[1] else "b"

    rate("al", lambda shown: "a", 1.2)  # always the first side, at a human pace
    rate("fay", careful, 0.0)  # right, but faster than anyone reads
    # the owner's table follows on its timer: wait for the snapshot taken after fay's last answer
    page.wait_for_function(f"{shown('#campaign-raters')}.includes('< 1 s')", timeout=60000)
    table = page.inner_text("#campaign-raters")
    assert "picked the first side 100% of 11 times" in table, table
    assert "median" in table and "< 1 s" in table, table
    held = {a["unit"] for a in C_answers(cid) if a["rater"] in ("al", "fay")}
    took = rate("dee", careful, 1.05)
    dee = {a["unit"] for a in C_answers(cid) if a["rater"] == "dee"}
    assert took and dee & held  # the fourth rater got items the excluded raters held
    says(page, "#campaign-summary", "0 more answers", 60000)
    page.screenshot(path=str(ARTIFACTS / "19-campaign-from-the-page.png"), full_page=True)

    page.click("#campaign-export")
    page.wait_for_selector("#campaign-download a[href]", timeout=60000)
    link = page.eval_on_selector("#campaign-download a[href]", "a => a.href")
    import httpx

    (tmp_path / "c.zip").write_bytes(httpx.get(link, timeout=60).content)
    zipfile.ZipFile(tmp_path / "c.zip").extractall(tmp_path / "unzipped")
    answers = load_dataset(str(tmp_path / "unzipped" / cid), cache_dir=str(tmp_path / "hf"))["train"]
    assert len(answers) == len(C_answers(cid)) and set(answers["rater"]) == {"al", "fay", "dee"}



def test_an_owner_marks_gold_in_a_drafts_rater_view_opens_it_and_a_rater_rates_in_the_browser(page, url, tmp_path):
    """Gold came only from a file. Now the owner makes a draft, opens its link and sees each pair as raters will,
    marks the one whose answer they know; nobody can rate until they press Open for raters; then a rater rates
    with the keys, with a fixed share ("N of 4"), and the campaign's ranking shows in the Rate tab's Results."""
    import json

    items = [{"question_id": f"q{i}", "prompt": f"Which is {i} + {i}?", "model": m, "output": f"{m} says {2 * i}"}
             for i in range(4) for m in ("left-model", "right-model")]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    campaign_form(page, url, "drafted")
    page.check("#campaign-draft input")
    page.get_by_text("More comparisons, an items file, gold, guidelines and rules").click()
    page.set_input_files("#campaign-items input[type=file]", str(tmp_path / "items.jsonl"))
    page.fill("#campaign-repeat input[type=number]", "0")
    page.press("#campaign-repeat input[type=number]", "Tab")
    set_number(page, "campaign-per-rater", "3")
    cid = create_campaign(page, "drafted")
    says(page, "#campaign-link", "A draft")
    said = page.inner_text("#campaign-link")
    preview = said.split("open ")[1].split()[0].strip("*")  # the owner's preview link, with its key
    assert preview.split("?campaign=")[1].split("&")[0] == cid and "&prepare=" in preview

    view = page.context.browser.new_page(viewport={"width": 1400, "height": 1200})
    view.goto(preview)
    says(view, "#cv-guidelines", "A draft: only you see it")
    view.click("#cv-start")
    says(view, "#cv-progress", "Draft: item 1 of 4")
    view.click("#cv-gold-a")  # the answer shown first is the right one
    says(view, "#cv-progress", "1 marked gold")
    view.screenshot(path=str(ARTIFACTS / "20-campaign-draft-gold.png"), full_page=True)
    marked = [u for u in C_units(cid) if u["gold"] is not None]
    assert len(marked) == 1 and marked[0]["gold"] in ("a", "b")

    rater = page.context.browser.new_page(viewport={"width": 1400, "height": 1200})
    rater.goto(f"{url}?campaign={cid}")
    says(rater, "#cv-guidelines", "not open yet")
    page.click("#campaign-open")
    says(page, "#campaign-act", "1 gold pairs")
    rater.goto(f"{url}?campaign={cid}")
    says(rater, "#cv-guidelines", "some have a known answer")
    rater.fill("#cv-name input, #cv-name textarea", "rita")
    rater.press("#cv-name input, #cv-name textarea", "Enter")
    says(rater, "#cv-progress", "1 of 4")  # 3 items and 1 gold check: the total said from the start
    done = "document.body.innerText.includes('every pair this campaign needs from you')"
    seen = 0
    while seen < 6 and not rater.evaluate(done):
        seen += 1
        rater.keyboard.press("a")
        rater.wait_for_function(f"{shown('#cv-progress')}.includes('{seen + 1} of 4') || {done}", timeout=45000)
    assert 3 <= seen <= 4 and len([a for a in C_answers(cid) if a["rater"] == "rita"]) == seen

    page.get_by_role("tab", name="Results").click()
    page.wait_for_function(f"{shown('#rate-campaigns')}.includes('drafted')", timeout=30000)
    table = page.inner_text("#rate-campaigns")
    assert "left-model" in table and "right-model" in table and "3 of 3" in table, table
    page.locator("#rate-campaigns").screenshot(path=str(ARTIFACTS / "21-campaigns-in-results.png"))


def C_answers(cid):
    from studio.engine.judge import campaign as C
    from studio.engine.judge.ratings import default_db

    return C.answers(default_db(), cid)


def C_units(cid):
    from studio.engine.judge import campaign as C
    from studio.engine.judge.ratings import default_db

    return C.units(default_db(), cid)


def test_benchmarks_in_the_compare_tab_show_what_tuning_gained_and_that_nothing_was_forgotten(page, url, studio_home,
                                                                                             tmp_path):
    """A run trained on facts, benchmarked from the Compare tab on a local task about those facts (a YAML file
    with its data beside it) and on the studio's general check: the table says gained on the one and no clear
    change on the other, each with its paired interval."""
    from test_benchmark import facts_and_task, train_on_facts

    data, task = facts_and_task(tmp_path / "facts")
    run = train_on_facts(data, studio_home / "runs" / "facts-run")
    page.goto(url)
    page.get_by_role("tab", name="Compare").click()
    pick(page, "#compare-run", run.name)
    page.click("#bm-section button, #bm-section .label-wrap")
    page.wait_for_selector("#bm-go", state="visible")  # the section's content is drawn: typing now stays typed
    page.wait_for_function("new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done(true))))")
    tasks = f"{task}, studio-general"
    page.fill("#bm-tasks textarea, #bm-tasks input", tasks)
    page.press("#bm-tasks textarea, #bm-tasks input", "Tab")
    assert page.input_value("#bm-tasks textarea, #bm-tasks input") == tasks  # what Run benchmarks sends
    page.click("#bm-go")
    says(page, "#bm-table", "gained", 240000)
    table = page.inner_text("#bm-table")
    assert "capitals_of_the_run" in table and "studio-general" in table and "no clear change" in table, table
    assert "Nothing forgotten" in page.inner_text("#bm-said")
    page.locator("#bm-section").screenshot(path=str(ARTIFACTS / "22-benchmarks.png"))
