"""A real browser against the demo server: headless Chromium (the system's
binary and driver, driven by Selenium) loads a page with an image and a
script that fetches JSON; the rendered text and the screenshot are checked."""

from __future__ import annotations

import io
import os
import tempfile
from typing import Any, Iterator

import pytest

from web_support import PIC_COLOR, ServerProcess, require_program


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = require_program("chromium")
    driver_path = require_program("chromedriver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=800,600", "--no-first-run", "--disable-extensions",
                 "--proxy-server=direct://", "--proxy-bypass-list=*"):
        options.add_argument(flag)
    profile = tempfile.TemporaryDirectory(prefix="fs-chromium-")
    options.add_argument(f"--user-data-dir={profile.name}")
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        profile.cleanup()


def test_page_with_image_and_fetched_json(browser: Any, served: ServerProcess) -> None:
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(served.url("/"))
    WebDriverWait(browser, 20).until(
        lambda d: d.find_element(By.ID, "out").text == "hello from data.json 42")
    assert browser.title == "fastsock demo"
    assert browser.find_element(By.ID, "title").text == "Served by fastsock"
    width = browser.execute_script(
        "const img = document.getElementById('pic');"
        "return img.complete ? img.naturalWidth : 0;")
    assert width == 96

    shot = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    colors = shot.getcolors(maxcolors=1 << 20) or []
    assert len(colors) > 10, "the screenshot is blank"
    red = 0
    for count, rgb in colors:
        assert isinstance(rgb, tuple)
        if all(abs(int(a) - b) <= 8 for a, b in zip(rgb, PIC_COLOR)):
            red += count
    assert red >= 80 * 80, f"the image is not on screen ({red} pixels of its colour)"
    log = served.log()
    for path in ("/ ", "/app.js ", "/image.png ", "/data.json "):
        assert f'"GET {path}HTTP/1.1" 200' in log, log


def test_directory_listing_in_the_browser(browser: Any, served: ServerProcess) -> None:
    from selenium.webdriver.common.by import By

    browser.get(served.url("/sub/"))
    links = [a.text for a in browser.find_elements(By.TAG_NAME, "a")]
    assert links == ["../", "file.txt"]
    browser.find_element(By.LINK_TEXT, "file.txt").click()
    assert "in a subdirectory" in browser.find_element(By.TAG_NAME, "body").text
    assert browser.current_url == served.url("/sub/file.txt")
