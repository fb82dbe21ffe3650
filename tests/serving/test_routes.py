"""The web page, driven in real headless Chromium: upload an image, read the verdict."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import BentoServer
from .images import encode, oversized_jpeg, photo

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
    assert 'id="why"' in response.text and "/explain" in response.text


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromedriver are not installed (apt-get install chromium "
    "chromium-driver; .ci/run does)",
)


@pytest.fixture
def page(server: BentoServer, tmp_path: Path) -> Iterator[Any]:
    """Headless Chromium on the page, with a feedback key entered."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.get(server.url + "/")
        driver.find_element(By.CSS_SELECTOR, "details summary").click()
        # A feedback key: it may predict and send feedback, so both buttons work.
        driver.find_element(By.ID, "api-key").send_keys(str(server.feedback_key))
        driver.find_element(By.ID, "api-key").send_keys("\t")  # commit: fires `change`
        yield driver
    finally:
        driver.quit()


def upload(driver: Any, image: Path) -> Any:
    """Choose image in the file input and wait for the result card; return the waiter."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    driver.find_element(By.ID, "file").send_keys(str(image))
    wait = WebDriverWait(driver, 60)
    wait.until(expected_conditions.visibility_of_element_located((By.ID, "result")))
    return wait


@needs_chromium
def test_uploading_on_the_page_shows_the_verdict_and_model_version(
    page: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    image = tmp_path / "upload.jpg"
    image.write_bytes(encode(photo(21), "JPEG"))
    wait = upload(page, image)
    verdict = page.find_element(By.ID, "verdict").text
    model = page.find_element(By.ID, "model-version").text
    prob_fake = page.find_element(By.ID, "prob-fake").text
    page.save_screenshot(str(tmp_path / "page.png"))
    assert verdict in ("AI-generated (FAKE)", "Real (REAL)")
    assert model == "ai-image-detector version 1 (v1.0_cnn_resnet18_fp32, fp32)"
    assert prob_fake.endswith("%")
    assert not page.find_element(By.ID, "uncertain").is_displayed()
    # The feedback buttons reach /feedback with the same key.
    page.find_element(By.CSS_SELECTOR, "#feedback button[data-label=FAKE]").click()
    wait.until(lambda d: d.find_element(By.ID, "feedback-status").text.startswith("thanks;"))


@needs_chromium
def test_an_uncertain_answer_shows_why_on_the_page(page: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    image = tmp_path / "large.jpg"
    image.write_bytes(oversized_jpeg(21))  # 8x the training size per side
    wait = upload(page, image)
    page.save_screenshot(str(tmp_path / "uncertain.png"))
    assert page.find_element(By.ID, "verdict").text == "Uncertain (UNCERTAIN)"
    explanation = page.find_element(By.ID, "uncertain-explanation").text
    assert explanation.startswith(
        "UNCERTAIN: this image is unlike what the model was trained on, so its REAL/FAKE guess"
    ) and explanation.endswith("is not reliable.")
    reason = page.find_element(By.ID, "uncertain-reason").text
    assert "384x320 px" in reason and "trained on images" in reason
    assert page.find_element(By.ID, "label").text.endswith(", not reliable")
    # Feedback still works: the truth is most useful where the model is unsure.
    page.find_element(By.CSS_SELECTOR, "#feedback button[data-label=REAL]").click()
    wait.until(lambda d: d.find_element(By.ID, "feedback-status").text.startswith("thanks;"))


@needs_chromium
def test_the_why_button_shows_the_heatmap_of_the_verdict(page: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    image = tmp_path / "why.jpg"
    image.write_bytes(encode(photo(23), "JPEG"))
    wait = upload(page, image)
    label = page.find_element(By.ID, "label").text
    page.find_element(By.ID, "why").click()
    wait.until(lambda d: d.find_element(By.ID, "why-status").text.startswith("Heatmap for"))
    page.save_screenshot(str(tmp_path / "why.png"))
    status = page.find_element(By.ID, "why-status").text
    # The map is of the model's guess, the class the page names.
    assert status.startswith(f"Heatmap for {label}:") and "Grad-CAM on layer2" in status
    overlay = page.find_element(By.ID, "explanation")
    assert overlay.is_displayed()
    assert overlay.get_attribute("src").startswith("data:image/png;base64,")
    # The PNG decoded in the browser at its full size.
    assert page.execute_script("return arguments[0].naturalWidth;", overlay) == 256
