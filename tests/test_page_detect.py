"""The web page in crowd and one-face modes: real Chromium, the real /detect and /predict, boxes drawn
over real photos in the three labels' colours (green with_mask, amber incorrect, red without_mask)."""

from __future__ import annotations

import os

import pytest

from tests.samples import SHARED, require
from maskdetect.core.crowd import COLOURS

pytestmark = pytest.mark.slow  # a browser

OVERLAY_PIXELS = """const c = document.getElementById('overlay');
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0; for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
    return n;"""

# Per label, the overlay's pixels drawn in exactly its colour, fully opaque (box outlines and their text).
COLOUR_PIXELS = """const c = document.getElementById(arguments[0]);
    const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const counts = {};
    for (const [label, [r, g, b]] of Object.entries(arguments[1])) {
      let n = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i + 3] === 255 && data[i] === r && data[i + 1] === g && data[i + 2] === b) n++;
      counts[label] = n;
    }
    return counts;"""


def colour_pixels(browser, canvas: str = "overlay") -> dict[str, int]:
    return browser.execute_script(COLOUR_PIXELS, canvas, {label: list(rgb) for label, rgb in COLOURS.items()})


def severe_errors(browser) -> list[str]:
    return [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def test_crowd_mode_draws_boxes_in_three_colours_and_counts_each_label(browser, live_app, tmp_path):
    import requests
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    scene = require(SHARED / "scenes-dev" / "images") / "scene000.jpg"
    expected = requests.post(f"{live_app}/detect", data=scene.read_bytes(), headers={"Content-Type": "image/jpeg"}, timeout=60).json()
    assert expected["incorrect"] >= 1 and expected["without_mask"] >= 1  # the brightness model: mid-grey faces are incorrect
    browser.get(f"{live_app}/")
    browser.find_element(By.CSS_SELECTOR, 'input[name="mode"][value="detect"]').click()
    browser.find_element(By.ID, "file").send_keys(str(scene))
    result = browser.find_element(By.ID, "result")
    WebDriverWait(browser, 60).until(lambda d: result.get_attribute("data-total"))
    total = int(result.get_attribute("data-total"))
    assert total == expected["total"] >= 3 and result.text.startswith(f"{total} faces:"), result.text  # its three labelled faces, at least
    counts = f"{expected['with_mask']} with mask, {expected['incorrect']} worn incorrectly, {expected['without_mask']} without"
    assert counts in result.text, result.text
    assert f"({100 * expected['unmasked_ratio']:.0f} % not masked)" in result.text, result.text
    assert "pair" not in result.text or "closer than 1.5 m" in result.text
    assert result.get_attribute("class") == "without_mask"  # the caption takes the worst label present
    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return document.getElementById('preview').naturalWidth") == 512)
    drawn = browser.execute_script(
        """const c = document.getElementById('overlay');
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
        return [c.width, n];"""
    )
    assert drawn[0] > 0 and drawn[1] > 100  # the box outlines and labels
    coloured = colour_pixels(browser)
    assert coloured["incorrect"] > 50 and coloured["without_mask"] > 50, coloured  # amber boxes, red ones
    assert (coloured["with_mask"] > 0) == (expected["with_mask"] > 0), coloured
    browser.save_screenshot(str(os.environ.get("MASKDETECT_SCREENSHOT") or tmp_path / "crowd-page.png"))
    assert severe_errors(browser) == []


def test_predict_mode_draws_the_face_it_classified_in_its_labels_colour(browser, live_app, observations, tmp_path):
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{live_app}/")  # predict mode is the default
    result = browser.find_element(By.ID, "result")

    def answer_for(path):
        browser.find_element(By.ID, "file").send_keys(str(path))
        WebDriverWait(browser, 60).until(lambda d: result.get_attribute("data-label") in ("with_mask", "incorrect", "without_mask"))
        WebDriverWait(browser, 10).until(lambda d: d.execute_script("return document.getElementById('preview').complete"))
        return browser.execute_script(OVERLAY_PIXELS), result.get_attribute("title")

    drawn, title = answer_for(observations / "without_mask" / "298.jpg")
    assert drawn > 100 and "no face found" not in title  # the face's box and its p(with_mask)
    assert result.get_attribute("data-label") == "without_mask" and result.text.startswith("Without mask: ")
    coloured = colour_pixels(browser)
    assert coloured["without_mask"] > 50 and coloured["incorrect"] == coloured["with_mask"] == 0, coloured

    # A face the brightness model calls incorrect (mid grey): amber, in words, with all three probabilities.
    drawn, title = answer_for(observations / "without_mask" / "0.jpg")
    assert result.get_attribute("data-label") == "incorrect" and result.get_attribute("class") == "incorrect"
    assert result.text.startswith("Mask worn incorrectly: 8"), result.text  # p(incorrect) ~ 0.84
    coloured = colour_pixels(browser)
    assert drawn > 100 and coloured["incorrect"] > 50 and coloured["without_mask"] == coloured["with_mask"] == 0, coloured
    assert "p(with_mask) = " in title and "p(incorrect) = " in title and "p(without_mask) = " in title
    probabilities = browser.find_element(By.ID, "probabilities")
    assert probabilities.is_displayed()
    items = probabilities.find_elements(By.TAG_NAME, "li")
    assert [item.get_attribute("data-label") for item in items] == ["with_mask", "incorrect", "without_mask"]
    assert [item.text.split(":")[0] for item in items] == ["With mask", "Mask worn incorrectly", "Without mask"]
    widths = [browser.execute_script("return arguments[0].querySelector('.fill').getBoundingClientRect().width", item) for item in items]
    assert widths[1] > widths[2] > widths[0] >= 0  # the bars: p(incorrect) ~ 0.84 > p(without_mask) ~ 0.16 > p(with_mask) ~ 0
    assert all(item.text.endswith(" %") for item in items) and items[1].get_attribute("class") == "chosen"
    browser.save_screenshot(str(os.environ.get("MASKDETECT_SCREENSHOT") or tmp_path / "incorrect-page.png"))

    blank = tmp_path / "blank.png"
    Image.new("RGB", (300, 200), (190, 190, 190)).save(blank)
    drawn, title = answer_for(blank)
    assert drawn == 0 and "no face found" in title  # the whole image was classified: nothing to draw
    assert result.text.startswith("With mask: ")
    assert severe_errors(browser) == []
