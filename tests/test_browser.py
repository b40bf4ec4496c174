"""The serve page in a real browser: headless Chromium (Debian's package) driven by Selenium.

Skipped when Chromium or its driver is missing, unless SYMDERIVE_REQUIRE_BROWSER=1
(set by .ci/run, which installs them): then a missing browser fails the run.
"""
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT = ROOT / "docs" / "images" / "serve.png"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

if not (CHROMIUM and DRIVER):
    if os.environ.get("SYMDERIVE_REQUIRE_BROWSER") == "1":
        raise RuntimeError("chromium and chromedriver are required (apt-get install chromium chromium-driver)")
    pytest.skip("chromium / chromedriver not installed", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CASES = [("hw5-p2a", "280", "correct"), ("hw5-p2a", "270 + 1", "incorrect"),
         ("hw5-p2b", r"\mathbb{R}^{126 \times 126 \times 10}", "correct"),
         ("hw5-p2b", r"\mathbb{R}^{126 \times 10}", "incorrect")]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "symderive", "serve", str(ROOT / "problems" / "hw5-written.yaml"),
                             "--port", str(port), "--timeout", "10"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(url + "/", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"server did not start: {proc.stdout.read().decode(errors='replace')}")
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1300"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_student_checks_answers_in_a_browser(server, browser):
    browser.get(server + "/problem/0")
    wait = WebDriverWait(browser, 60)
    maths = browser.find_elements(By.CSS_SELECTOR, "section.question > p math")
    assert maths and any(m.size["width"] > 0 for m in maths), "statements not rendered as MathML"
    for qid, latex, expected in CASES:
        form = browser.find_element(By.CSS_SELECTOR, f'form[data-question="{qid}"]')
        box = form.find_element(By.NAME, "answer")
        box.clear()
        box.send_keys(latex)
        preview = form.find_element(By.CSS_SELECTOR, ".preview")
        wait.until(lambda _: preview.get_attribute("data-answer") == latex)   # the live preview, as MathML
        assert len(preview.find_elements(By.TAG_NAME, "math")) == 2, preview.text      # as typed, as read
        form.find_element(By.CSS_SELECTOR, "button").click()
        verdict = form.find_element(By.CSS_SELECTOR, ".verdict")
        wait.until(lambda _: verdict.get_attribute("data-verdict") not in (None, "", "checking"))
        assert verdict.get_attribute("data-verdict") == expected, (qid, latex, verdict.text)
        if expected == "incorrect":
            assert len(verdict.text) > len("incorrect"), "no evidence shown"
    browser.execute_script("document.getElementById('hw5-p2a').scrollIntoView()")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))


def test_ta_reads_the_answer_key(server, browser):
    browser.get(server + "/key/0")
    boxed = browser.find_elements(By.CSS_SELECTOR, ".boxed math")
    assert len(boxed) >= 8 and all(b.size["height"] > 0 for b in boxed[:8])
