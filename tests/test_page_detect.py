"""The web page in crowd mode: real Chromium, the real /detect, boxes drawn over a real scene."""

from __future__ import annotations

import os

import pytest

from tests.samples import SHARED, require

pytestmark = pytest.mark.slow  # a browser


def test_crowd_mode_draws_boxes_and_counts(browser, live_app, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    scene = require(SHARED / "scenes-dev" / "images") / "scene000.jpg"
    browser.get(f"{live_app}/")
    browser.find_element(By.CSS_SELECTOR, 'input[name="mode"][value="detect"]').click()
    browser.find_element(By.ID, "file").send_keys(str(scene))
    result = browser.find_element(By.ID, "result")
    WebDriverWait(browser, 60).until(lambda d: result.get_attribute("data-total"))
    total = int(result.get_attribute("data-total"))
    assert total >= 3 and result.text.startswith(f"{total} faces:"), result.text  # its three labelled faces, at least
    assert "pair" not in result.text or "closer than 1.5 m" in result.text
    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return document.getElementById('preview').naturalWidth") == 512)
    drawn = browser.execute_script(
        """const c = document.getElementById('overlay');
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
        return [c.width, n];"""
    )
    assert drawn[0] > 0 and drawn[1] > 100  # the box outlines and labels
    browser.save_screenshot(str(os.environ.get("MASKDETECT_SCREENSHOT") or tmp_path / "crowd-page.png"))
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []



OVERLAY_PIXELS = """const c = document.getElementById('overlay');
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0; for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
    return n;"""


def test_predict_mode_draws_the_face_it_classified(browser, live_app, observations, tmp_path):
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{live_app}/")  # predict mode is the default
    result = browser.find_element(By.ID, "result")

    def answer_for(path):
        browser.find_element(By.ID, "file").send_keys(str(path))
        WebDriverWait(browser, 60).until(lambda d: result.get_attribute("data-label") in ("with_mask", "without_mask"))
        WebDriverWait(browser, 10).until(lambda d: d.execute_script("return document.getElementById('preview').complete"))
        return browser.execute_script(OVERLAY_PIXELS), result.get_attribute("title")

    drawn, title = answer_for(observations / "without_mask" / "298.jpg")
    assert drawn > 100 and "no face found" not in title  # the face's box and its p(with_mask)
    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 200), (190, 190, 190)).save(blank)
    drawn, title = answer_for(blank)
    assert drawn == 0 and "no face found" in title  # the whole image was classified: nothing to draw
    errors = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
