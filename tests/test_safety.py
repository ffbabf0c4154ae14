"""Safe to put on the internet: file routes, upload caps, remote code, the operator's powers."""

import httpx
import pytest

pytestmark = pytest.mark.slow  # trains, serves or spawns processes: the full suite runs it


@pytest.mark.parametrize("route", ["gradio_api/file=/etc/passwd", "gradio_api/file=../../../../etc/passwd",
                                   "gradio_api/file=..%2f..%2f..%2f..%2fetc%2fpasswd",
                                   "gradio_api/file=%2Fetc%2Fpasswd", "file=/etc/passwd",
                                   "gradio_api/file=/proc/self/environ"])
def test_file_routes_refuse_paths_outside(url, route):
    r = httpx.get(url + route, timeout=10)
    assert r.status_code in (400, 403, 404, 405) and "root:" not in r.text


def test_a_300mb_upload_is_refused(url, tmp_path):
    big = tmp_path / "big.jsonl"
    with big.open("wb") as f:
        f.truncate(300 * 2**20)
    with big.open("rb") as f:
        r = httpx.post(url + "gradio_api/upload", files={"files": ("big.jsonl", f, "application/octet-stream")},
                       timeout=120)
    assert r.status_code == 413 or "size" in r.text.lower()
    assert r.status_code != 200


def test_html_and_svg_uploads_are_not_dataset_types():
    from studio.ui.tabs.data import FILE_TYPES

    assert not {".html", ".htm", ".svg", ".js"} & set(FILE_TYPES)


def test_a_visitor_never_sees_or_uses_another_visitors_run(url, monkeypatch):
    from conftest import SAMPLES, tiny_config
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from studio.config import StudioConfig
    from studio.engine.train import loop as train

    cfg = StudioConfig.from_dict(tiny_config(SAMPLES / "qa.csv", train={"max_steps": 2}))
    theirs = train.run(cfg, owner="someone-else").run_dir
    monkeypatch.setenv("STUDIO_PUBLIC", "1")
    c = Client(url, verbose=False, analytics_enabled=False, download_files=False)
    table, _ = c.predict(api_name="/runs")
    shown = (table["value"] if table.get("__type__") == "update" else table)["data"]
    assert theirs.name not in [row[0] for row in shown]
    zipped, status = c.predict(theirs.name, api_name="/export_adapter")
    assert zipped["value"] is None and "Pick a trained run" in status
    with pytest.raises(AppError, match="Pick a run"):
        c.predict(theirs.name, None, api_name="/rate_add_comparison")
