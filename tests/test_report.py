"""The HTML report (issue 25), loaded in a real headless browser (Chromium + Selenium; skipped,
with the reason, where either is missing: CI installs them, .ci/run): the page loads without
console errors, shows the expected queries and thumbnails, and its correct / wrong marks agree
with the metrics."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from vidreid.cli import main
from vidreid.report import ReportQuery, start_report, write_report

SMALL = ["data.num_workers=0", "train.progress=false", "data.height=64", "data.width=32"]


def _chromium() -> tuple[str, str] | None:
    b = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "chrome") if shutil.which(n)), None)
    d = shutil.which("chromedriver")
    return (b, d) if b and d else None


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    found = _chromium()
    if found is None:
        pytest.skip("no Chromium / chromedriver on PATH (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = found[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(found[1]), options=opts)
    yield drv
    drv.quit()


def _open(drv, page: Path):
    drv.get(page.resolve().as_uri())
    for _ in range(50):  # the page draws itself on load
        if drv.execute_script("return document.readyState") == "complete":
            break
        time.sleep(0.1)
    drv.execute_script("return 1")


def _errors(drv) -> list:
    return [e for e in drv.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def _shown(drv) -> int:
    return int(drv.find_element("id", "shown-count").text.split()[0])


def _select(drv, sel_id: str, value: str):
    drv.execute_script(f"const s = document.getElementById('{sel_id}'); s.value = arguments[0];"
                       "s.dispatchEvent(new Event('input'));", value)


def _images_loaded(drv) -> tuple[int, int]:
    return tuple(drv.execute_script(
        "const im = [...document.images]; return [im.length, im.filter(i => i.complete && i.naturalWidth > 0).length];"))


def test_test_report_shows_the_ranking_and_agrees_with_the_metrics(tiny_tree, tmp_path, browser):
    root = tiny_tree("prid2011")
    assert main(["test", "--checkpoint", "reference/imagenet_lite0", "--root", str(root), "--out", str(tmp_path),
                 "--report", "--report-topk", "5", *SMALL]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())["per_split"][0]
    _open(browser, tmp_path / "report.html")
    assert _errors(browser) == []
    n_q = m["num_query"]
    rows = browser.find_elements("css selector", ".query")
    assert len(rows) == min(50, n_q) and _shown(browser) == n_q
    assert len(rows[0].find_elements("css selector", ".match")) == 5
    total, loaded = _images_loaded(browser)
    assert total == len(rows) * 6 and loaded == total  # the query strip and 5 gallery thumbnails per row
    correct = int(browser.find_element("id", "n-correct").text)
    assert correct == round(m["rank1"] * m["num_valid_queries"])
    _select(browser, "filter-status", "correct")
    assert _shown(browser) == correct
    assert all(r.get_attribute("data-status") == "correct" for r in browser.find_elements("css selector", ".query"))
    _select(browser, "filter-status", "wrong")
    assert _shown(browser) == m["num_valid_queries"] - correct
    # the report's files are ours: a second run needs --overwrite, and replaces them
    assert main(["test", "--checkpoint", "reference/imagenet_lite0", "--root", str(root), "--out", str(tmp_path),
                 "--report", *SMALL]) == 2
    assert main(["test", "--checkpoint", "reference/imagenet_lite0", "--root", str(root), "--out", str(tmp_path),
                 "--report", "--overwrite", *SMALL]) == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".report_files")]  # no temp folder left


def test_match_report_shows_identities(tiny_tree, tmp_path, browser):
    from vidreid.data.datasets import build_dataset

    root = tiny_tree("prid2011")
    split = build_dataset("prid2011", root).split(0)
    trk = tmp_path / "trk"
    for t in split.query + split.gallery:
        d = trk / f"{t.pid:04d}" / f"c{t.camid}_x"
        d.mkdir(parents=True)
        for f in t.frames:
            (d / Path(f).name).symlink_to(root / f)
    out = tmp_path / "m"
    assert main(["match", "--checkpoint", "reference/imagenet_lite0", "--query", str(trk), "--out", str(out),
                 "--cross-camera", "--assign", "--report", *SMALL]) == 0
    res = json.loads((out / "match.json").read_text())
    _open(browser, out / "report.html")
    assert _errors(browser) == []
    assert len(browser.find_elements("css selector", ".identity")) == min(50, res["identities"])
    total, loaded = _images_loaded(browser)
    assert total > 0 and loaded == total
    correct = int(browser.find_element("id", "n-correct").text)
    assert correct == round(res["rank1"] * res["valid_queries"])


def test_pages_filters_and_hostile_names(tmp_path, browser):
    """120 queries: three pages; a name that tries to close the script tag stays text."""
    th = start_report(tmp_path)
    img = np.full((20, 10, 3), 128, np.uint8)
    import cv2

    cv2.imwrite(str(tmp_path / "f.jpg"), img)
    thumb = th("x", [tmp_path / "f.jpg"], 1)
    evil = "</script><script>window.pwned = 1</script><b>"
    qs = [ReportQuery(evil if i == 7 else f"q{i:03d}", "cam1" if i % 2 else "cam2", i, thumb,
                      "correct" if i % 3 else "wrong", 1 if i % 3 else 2,
                      [{"rank": 1, "name": "g", "camera": "cam3", "pid": i, "distance": 0.5, "thumb": thumb,
                        "correct": bool(i % 3)}]) for i in range(120)]
    write_report(tmp_path, qs, "many queries", {"rank1": 0.5}, cmc=[0.5, 0.8, 1.0], thumbs=th)
    _open(browser, tmp_path / "report.html")
    assert _errors(browser) == [] and browser.execute_script("return window.pwned === undefined")
    assert "page 1 of 3" in browser.find_element("id", "page-label").text
    browser.find_element("id", "next").click()
    assert "page 2 of 3" in browser.find_element("id", "page-label").text
    assert browser.find_elements("css selector", ".query .qinfo div")[0].text == "q050"
    _select(browser, "filter-camera", "cam1")
    assert _shown(browser) == 60
    browser.execute_script("const s = document.getElementById('filter-name'); s.value = 'script';"
                           "s.dispatchEvent(new Event('input'));")
    assert _shown(browser) == 1  # query 7 (odd: cam1), its name shown as text
    assert browser.find_elements("css selector", ".query .qinfo div")[0].text == evil
