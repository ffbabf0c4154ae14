"""Safe to put on the internet: file routes, upload caps, remote code, the operator's powers."""

import httpx
import pytest


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
