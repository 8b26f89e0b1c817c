"""The dashboard in a real browser (headless Chromium) against a real `sp-scheduler web`, worker and ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from tests.integration.conftest import System
from tests.support import wait_until
from tests.support.browser import headless_chromium
from tests.support.processes import start_web

TOKEN = "browser-t0ken"


def manual(name: str, job: str) -> dict[str, object]:
    return {"name": name, "extension": "testing", "job": job, "schedule": "", "enabled": True}


@pytest.fixture
def dashboard(system: System) -> Iterator[str]:
    """A worker (flushing log lines every second) and `sp-scheduler web --actions`; the dashboard's address."""
    system.configure([manual("chatty", "chatty"), manual("flaky", "fail_softly"), manual("ticker", "ticker")])
    system.worker(SP_RUN_LEASE="3")
    web, base = start_web(["--actions"], system.env(SP_WEB_TOKEN=TOKEN), system.log_dir)
    system.processes.append(web)
    yield base


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with headless_chromium(tmp_path / "chromium-profile") as driver:
        yield driver


def run_and_wait(system: System, job: str) -> None:
    result = system.cli("jobs", "run", job, "--wait", "--timeout", "60")
    assert result.exit_code in (0, 1), result.output


# A click that follows a link or submits a form returns before the next page is there, and the page
# before may have an element of the same id: wait for the new page's element or text, never read at once.
def wait_for_text(browser: Any, element_id: str, text: str) -> None:
    WebDriverWait(browser, 15).until(
        expected_conditions.text_to_be_present_in_element((By.ID, element_id), text),
        message=f"#{element_id} never said {text!r}",
    )


def find(browser: Any, element_id: str) -> Any:
    return WebDriverWait(browser, 15).until(
        expected_conditions.presence_of_element_located((By.ID, element_id)), message=f"no #{element_id}"
    )


def strip(browser: Any, job: str) -> list[str]:
    return [
        mark.get_attribute("data-status") for mark in browser.find_elements(By.CSS_SELECTOR, f"#job-{job} .strip .mark")
    ]


def test_from_the_jobs_page_to_a_job_to_a_run_and_its_log_lines(system: System, dashboard: str, browser: Any) -> None:
    run_and_wait(system, "chatty")
    browser.get(dashboard + "/")
    browser.find_element(By.LINK_TEXT, "chatty").click()
    WebDriverWait(browser, 15).until(expected_conditions.text_to_be_present_in_element((By.TAG_NAME, "h1"), "chatty"))
    browser.find_element(By.CSS_SELECTOR, "table.runs tbody tr a").click()
    assert find(browser, "run-status").text == "succeeded"
    lines = [line.text for line in browser.find_elements(By.CSS_SELECTOR, "#logs .line")]
    assert any("counting items" in line for line in lines)
    assert any("ERROR" in line and "one item failed" in line for line in lines)


def test_the_status_strip_shows_a_failed_run_in_red(system: System, dashboard: str, browser: Any) -> None:
    browser.get(dashboard + "/")
    assert strip(browser, "flaky") == []
    run_and_wait(system, "flaky")
    browser.refresh()
    assert strip(browser, "flaky") == ["failed"]
    mark = browser.find_element(By.CSS_SELECTOR, "#job-flaky .strip .mark")
    assert mark.value_of_css_property("background-color") == "rgba(220, 38, 38, 1)"
    assert "LATE" not in browser.find_element(By.ID, "job-flaky").text  # manual-only: never late


def test_an_action_is_refused_without_the_token_and_done_with_it(system: System, dashboard: str, browser: Any) -> None:
    browser.get(dashboard + "/jobs/chatty")
    assert "Refused without the token" in browser.find_element(By.ID, "actions").text
    browser.find_element(By.ID, "login-link").click()
    find(browser, "login-name").send_keys("tester")
    browser.find_element(By.ID, "login-token").send_keys("not-the-token")
    browser.find_element(By.ID, "login-submit").click()
    wait_for_text(browser, "error-message", "wrong token")
    assert system.cli_json("jobs", "show", "chatty")["override"] is None

    browser.get(dashboard + "/login?next=/jobs/chatty")
    browser.find_element(By.ID, "login-name").send_keys("tester")
    browser.find_element(By.ID, "login-token").send_keys(TOKEN)
    browser.find_element(By.ID, "login-submit").click()
    find(browser, "disable-reason").send_keys("from the browser")
    browser.find_element(By.ID, "disable").click()
    # The job page before the click has an #override too ("none"): wait for the new page's text.
    wait_for_text(browser, "override", "disabled by tester via web")
    override = system.cli_json("jobs", "show", "chatty")["override"]
    assert (override["enabled"], override["actor"], override["reason"]) == (False, "tester via web", "from the browser")


def test_the_run_page_follows_the_log_lines_of_a_running_job(system: System, dashboard: str, browser: Any) -> None:
    answer = httpx.post(
        f"{dashboard}/api/v1/jobs/ticker/run",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={"params": {"count": "16", "interval": "0.5"}},
        timeout=10,
    )
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["run_id"]

    def run_status() -> str:
        status: str = httpx.get(f"{dashboard}/api/v1/runs/{run_id}", timeout=5).json()["status"]
        return status

    wait_until(lambda: run_status() == "running", timeout=30, message="the ticker run to start")
    browser.get(f"{dashboard}/runs/{run_id}")

    def ticks() -> list[str]:
        messages = [line.text for line in browser.find_elements(By.CSS_SELECTOR, "#logs .line .message")]
        return [message for message in messages if message.startswith("tick ")]

    def shown() -> int:
        return len(ticks())

    # Lines appear on the open page while the run is still going, more of them over time.
    first = wait_until(lambda: shown() or None, timeout=15, message="a first line on the page")
    wait_until(lambda: shown() > first, timeout=15, message="more lines while the run goes on")
    assert run_status() == "running"
    wait_until(lambda: shown() == 16, timeout=30, message="all sixteen lines")
    wait_until(lambda: browser.find_element(By.ID, "run-status").text == "succeeded", timeout=15)
    assert ticks() == [f"tick {n}" for n in range(16)]  # each once, in order
    wait_until(lambda: "finished" in browser.find_element(By.ID, "log-state").text, timeout=15)
