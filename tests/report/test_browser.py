"""Open a report in real headless Chromium: it loads cleanly, its images render, user strings stay text."""

from __future__ import annotations

import os
import shutil

import pytest

from probe.report import write_report
from tests.support.results import HOSTILE_BACKBONE, HOSTILE_FILE, HOSTILE_LABEL, HOSTILE_SKIP, make_results

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FIX = "run `sh scripts/ensure_chromium.sh` (the Makefile's test target does) to install chromium + chromium-driver"


@pytest.fixture
def browser(tmp_path):
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.isfile(p) and os.access(p, os.X_OK))]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: {FIX}")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: pip install the test extra (`pip install -e '.[test]'`)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def test_report_opens_in_chromium(browser, tmp_path):
    page = write_report(tmp_path / "out dir ü", make_results())  # a path with a space and unicode, too
    browser.get(page.resolve().as_uri())
    browser.execute_script("return document.readyState")

    severe = [entry for entry in browser.get_log("browser") if entry.get("level") == "SEVERE"]
    assert severe == [], f"console errors: {severe}"

    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]);"
    )
    assert len(images) == 7
    broken = [src for src, complete, width in images if not (complete and width > 0)]
    assert broken == [], f"images that did not render: {broken}"

    text = browser.execute_script("return document.body.innerText;")
    for hostile in (HOSTILE_BACKBONE, HOSTILE_LABEL, HOSTILE_FILE, HOSTILE_SKIP):
        assert hostile in text, f"{hostile!r} is not shown as text"
    assert browser.execute_script("return document.scripts.length;") == 0
    assert browser.execute_script("return document.querySelectorAll('b, u, i, img[src=x]').length;") == 0
    assert browser.execute_script("return window.__pwned === undefined;")


OVERFLOW = """
const page = document.documentElement;
const cut = [];
for (const wrap of document.querySelectorAll('.table-wrap')) {
  if (wrap.scrollWidth > wrap.clientWidth + 1) {
    const head = wrap.querySelector('tr');
    const name = (head ? head.innerText : '').slice(0, 60).replace(/\\s+/g, ' ');
    cut.push(name + ': ' + wrap.scrollWidth + ' > ' + wrap.clientWidth);
  }
}
return [page.scrollWidth, page.clientWidth, cut, document.querySelectorAll('.table-wrap').length];
"""


@pytest.mark.parametrize("width", [1400, 1000])
def test_no_table_is_wider_than_the_page(browser, tmp_path, width):
    page = write_report(tmp_path / "out", make_results())
    browser.set_window_size(width, 900)
    browser.get(page.resolve().as_uri())
    scroll, client, cut, tables = browser.execute_script(OVERFLOW)
    assert tables >= 5  # verdict, clustering, faithfulness, localisation, specificity (and the settings)
    assert client <= width and scroll <= client, f"the page scrolls sideways at {width} px: {scroll} > {client}"
    assert cut == [], f"tables cut off (they scroll inside their frame) at a {width} px window: {cut}"
