"""The real app in a real browser: Playwright driving Debian's chromium. Upload a file, see the
report, preview and histogram, start a LoRA run, watch the loss chart gain points, stop it,
compare the stopped run with its base.
Screenshots land in tests/artifacts/ for a person to look at."""

import os
import shutil
import time

import pytest
from conftest import ROOT, SAMPLES

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not os.path.exists(CHROMIUM) and not os.environ.get("CI"):
    pytest.skip("Debian's chromium is not installed (.ci/run installs it)", allow_module_level=True)


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1600})
        yield pg
        browser.close()


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
    time.sleep(3)
    assert points(page) > first, "the loss chart did not gain points while training"
    page.screenshot(path=str(ARTIFACTS / "04-training.png"), full_page=True)
    page.reload()  # the page forgets everything; the browser keeps the session key
    page.get_by_role("tab", name="Train").click()
    page.wait_for_function("document.querySelector('#status').innerText.includes('Training')", timeout=30000)
    page.wait_for_function(f"(() => {{ const el = document.querySelector('#loss-chart .js-plotly-plot');"
                           f" return el && el.data && el.data[0].x.length > {first}; }})()", timeout=30000)
    page.click("#stop")
    page.wait_for_function("document.querySelector('#status').innerText.includes('Stopped')", timeout=60000)
    assert "Traceback" not in page.content()
    page.screenshot(path=str(ARTIFACTS / "05-stopped.png"), full_page=True)
    run_name = page.inner_text("#status").split("Run directory:")[1].strip().rstrip("/").split("/")[-1]

    page.get_by_role("tab", name="Compare").click()  # a stopped run keeps its adapter: compare it
    page.click("#compare-run input")
    page.get_by_role("option", name=run_name).click()
    page.fill("#eval-limit input", "6")
    page.press("#eval-limit input", "Tab")
    page.click("#compare-go")
    page.wait_for_function("document.querySelector('#compare-status').innerText.includes('Done')", timeout=120000)
    page.wait_for_selector("#compare-bars .js-plotly-plot", timeout=30000)
    assert "perplexity" in page.inner_text("#compare-summary")
    page.screenshot(path=str(ARTIFACTS / "06-compare.png"), full_page=True)
