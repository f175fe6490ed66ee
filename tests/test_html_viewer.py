"""The viewer page: self-contained, and working in a real headless Chromium."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from _pictures_helpers import CHROMIUM_ARGS, chromium, phantom, save_nifti, sidecar
from _pictures_helpers import convert as run_convert

from niftislice.cli import main
from niftislice.pictures.html_viewer import build_page, page_data


@pytest.fixture(scope="module")
def sample_page(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("h")
    rc = main(
        [
            "convert",
            "--sample",
            "-o",
            str(out),
            "--views",
            "axial,coronal",
            "--html",
            "--montage",
            "--slices",
            "40:160",
            "-j",
            "1",
            "-q",
        ]
    )
    assert rc == 0
    return out / "mni152_t1_1mm"


def embedded(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S)
    assert m
    return json.loads(m.group(1))


def test_page_is_self_contained(sample_page):
    page = (sample_page / "index.html").read_text()
    assert "http://" not in page and "https://" not in page and "//cdn" not in page
    assert not re.search(
        r"<(script|img|link)[^>]+(src|href)=", page
    )  # nothing loaded by the markup
    data = embedded(page)
    assert [v["name"] for v in data["views"]] == ["axial", "coronal"]
    for v in data["views"]:
        for s in v["slices"]:
            assert (sample_page / v["folder"] / s["files"]["0"]).is_file()
    assert all((sample_page / x["file"]).is_file() for x in data["extras"])
    assert sidecar(sample_page)["pictures"]["html"] == "index.html"


def test_page_data_world_coordinates(sample_page):
    data = page_data(sidecar(sample_page), "mni152_t1_1mm")
    axial = data["views"][0]
    s = next(s for s in axial["slices"] if s["k"] == 100)
    # MNI template: voxel (98, 134, 72) is the world origin; axial slice 100 is at z = 28 mm and the
    # image centre is the middle of the x/y extent
    assert s["centre"] == [0.0, -18.0, 28.0]
    assert axial["letters"] == {"top": "A", "bottom": "P", "left": "R", "right": "L"}
    meta = dict(data["metadata"])
    assert meta["shape"] == "197 x 233 x 189" and "radiological" in meta["stored orientation"]


def test_text_from_the_file_cannot_break_out_of_the_page(tmp_path):
    path = save_nifti(tmp_path / "x.nii.gz", phantom((8, 9, 7)), np.eye(4), descrip=b"</script><b>")
    out = run_convert(path, tmp_path / "o", html=True)
    meta = sidecar(out)
    meta["warnings"] = ["</script><script>alert(1)</script>"]
    page = build_page(meta, "x")
    assert page.count("</script>") == 2  # the page's own two script elements
    assert embedded(page)["warnings"] == ["</script><script>alert(1)</script>"]


# --------------------------------------------------------------------------------------------
# a real browser


@pytest.fixture(scope="module")
def browser():
    exe = chromium()
    if exe is None:
        pytest.skip("Chromium is not installed (Debian package 'chromium')")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _state(page, view: str) -> dict:
    return page.evaluate(
        """(v) => { const p = document.getElementById('view-' + v);
                    const img = p.querySelector('img');
                    return { src: img.getAttribute('src'),
                             loaded: img.complete && img.naturalWidth > 0,
                             coord: p.querySelector('.coord').textContent,
                             index: p.querySelector('.index').textContent,
                             value: p.querySelector('input[type=range]').value }; }""",
        view,
    )


@pytest.mark.slow
@pytest.mark.browser
def test_slider_and_arrow_keys_change_image_and_coordinate(browser, sample_page):
    page = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto((sample_page / "index.html").as_uri())
    files = {s["index"]: s["file"] for s in sidecar(sample_page)["views"]["axial"]["slices"]}
    page.wait_for_function("document.querySelector('#view-axial img').naturalWidth > 0")
    start = _state(page, "axial")
    assert start["src"] == f"axial/{files[100]}" and start["loaded"]  # the middle of 40..160
    assert start["coord"] == "z = 28.0 mm" and "slice 100" in start["index"]

    # drag the slider to near its left end: image and coordinate follow
    slider = page.locator("#view-axial input[type=range]")
    box = slider.bounding_box()
    page.mouse.click(box["x"] + 0.1 * box["width"], box["y"] + box["height"] / 2)
    moved = _state(page, "axial")
    k = int(re.search(r"slice (\d+)", moved["index"]).group(1))
    assert k < 60 and moved["src"] == f"axial/{files[k]}"
    assert moved["coord"] == f"z = {k - 72:.1f} mm"
    page.wait_for_function("document.querySelector('#view-axial img').complete")
    assert _state(page, "axial")["loaded"]

    # arrow keys step the selected view, one slice at a time (focus on the page, not the slider)
    page.click("#view-coronal h2")
    coronal = _state(page, "coronal")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowLeft")
    after = _state(page, "coronal")
    k0 = int(re.search(r"slice (\d+)", coronal["index"]).group(1))
    assert f"slice {k0 + 1} " in after["index"] + " "
    assert after["coord"] == f"y = {k0 + 1 - 134:.1f} mm" != coronal["coord"]
    assert after["src"] != coronal["src"]
    assert _state(page, "axial")["src"] == moved["src"]  # the other view did not move
    assert not errors
    assert all(u.startswith("file://") for u in requests)  # nothing from the network
    page.close()


@pytest.mark.slow
@pytest.mark.browser
def test_page_served_over_http_shows_metadata_and_letters(browser, sample_page):
    import http.server
    import threading
    from functools import partial

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(Quiet, directory=str(sample_page))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        page.wait_for_function("document.querySelector('#view-coronal img').naturalWidth > 0")
        letters = page.locator("#view-coronal .letter").all_text_contents()
        assert letters == ["S", "I", "R", "L"]
        table = page.locator("#meta").inner_text()
        assert "197 x 233 x 189" in table and "window" in table
        page.close()
    finally:
        server.shutdown()
        server.server_close()
