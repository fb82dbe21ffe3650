"""The web page, driven in real headless Chromium: upload an image, read the verdict."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import BentoServer
from .images import encode, photo

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def test_the_page_is_served_at_the_root(server: BentoServer) -> None:
    response = server.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert 'id="file"' in response.text and "/predict" in response.text


@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromedriver are not installed (apt-get install chromium "
    "chromium-driver; .ci/run does)",
)
def test_uploading_on_the_page_shows_the_verdict_and_model_version(
    server: BentoServer, tmp_path: Path
) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    image = tmp_path / "upload.jpg"
    image.write_bytes(encode(photo(21), "JPEG"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.get(server.url + "/")
        driver.find_element(By.CSS_SELECTOR, "details summary").click()
        driver.find_element(By.ID, "api-key").send_keys(str(server.api_key))
        driver.find_element(By.ID, "api-key").send_keys("\t")  # commit: fires `change`
        driver.find_element(By.ID, "file").send_keys(str(image))
        wait = WebDriverWait(driver, 60)
        wait.until(expected_conditions.visibility_of_element_located((By.ID, "result")))
        verdict = driver.find_element(By.ID, "verdict").text
        model = driver.find_element(By.ID, "model-version").text
        prob_fake = driver.find_element(By.ID, "prob-fake").text
        driver.save_screenshot(str(tmp_path / "page.png"))
        assert verdict in ("AI-generated (FAKE)", "Real (REAL)")
        assert model == "ai-image-detector version 1 (v1.0_cnn_resnet18_fp32, fp32)"
        assert prob_fake.endswith("%")
        # The feedback buttons reach /feedback with the same key.
        driver.find_element(By.CSS_SELECTOR, "#feedback button[data-label=FAKE]").click()
        wait.until(lambda d: "rolling accuracy" in d.find_element(By.ID, "feedback-status").text)
    finally:
        driver.quit()
