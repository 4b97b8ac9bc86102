"""The web console in a real headless Chromium (Debian's, driven by Playwright): a user logs in,
uploads packages, starts a context, runs a job and reads its result and config, watches
another job's progress and log and kills it, and stops the context, all through the page.
Screenshots of each view are saved under ``test-artifacts/console/``.

Stand-in drivers (no JVM). CI installs Chromium (.ci/run); elsewhere the test is skipped, saying
so, when no ``chromium`` is on the PATH.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from jobserver.auth.users_file import hash_password
from tests.support import EXAMPLES_WHEEL, FAKE_SPARK_HOMES, REPO, Api, running_server

playwright_api = pytest.importorskip("playwright.async_api")

pytestmark = pytest.mark.asyncio(loop_scope="module")

ARTIFACTS = REPO / "test-artifacts" / "console"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ECHO = "example_jobs.echo.EchoJob"
# A job as one module, uploaded through the page: it prints while it runs.
CHATTY = """
import time


def main(spark, config):
    for index in range(int(config.get("lines"))):
        print(f"web out {index}")
        time.sleep(0.1)
    return "done"
"""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Api]:
    work_dir = tmp_path_factory.mktemp("console")
    users = work_dir.parent / "console-users"
    users.write_text(f"ops:{hash_password('secret', rounds=4)}\n")
    overrides = {
        "spark.home": str(FAKE_SPARK_HOMES / "light"),
        "spark.jobserver.auth.mechanisms": ["basic"],
        "spark.jobserver.auth.basic.users-file": str(users),
        "spark.jobserver.auth.permissions.users": {"ops": ["*"]},
        "spark.jobserver.job-logs.batch-interval": "50ms",
        "spark.jobserver.job-progress.interval": "200ms",
    }
    async with running_server(work_dir, overrides) as api:
        yield api


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browser() -> AsyncIterator[object]:
    if CHROMIUM is None:
        pytest.skip("no chromium on the PATH (CI installs Debian's chromium package)")
    async with playwright_api.async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        await launched.close()


async def test_a_user_runs_and_kills_jobs_in_the_console(api: Api, browser: object, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base_url = str(api.session._base_url).rstrip("/")
    context = await browser.new_context(base_url=base_url)  # type: ignore[attr-defined]
    page = await context.new_page()
    expect = playwright_api.expect
    try:
        await page.goto("/")
        login = page.locator("#login")
        await expect(login).to_be_visible()  # the API answered 401: the page asks for a login
        await login.locator("input[name=user]").fill("ops")
        await login.locator("input[name=password]").fill("secret")
        await login.locator("button").click()
        await expect(login).to_be_hidden()

        await page.click("nav a[data-view=binaries]")
        wheel = tmp_path / EXAMPLES_WHEEL.name
        shutil.copyfile(EXAMPLES_WHEEL, wheel)
        form = page.locator("#upload-binary")
        await form.locator("input[name=name]").fill("examples")
        await form.locator("input[name=file]").set_input_files(str(wheel))
        await form.locator("button").click()
        await expect(page.locator("#binary-rows tr[data-name=examples] td").nth(1)).to_have_text("Wheel")
        module = tmp_path / "chatty.py"
        module.write_text(CHATTY)
        await form.locator("input[name=name]").fill("chatty")
        await form.locator("input[name=file]").set_input_files(str(module))
        await form.locator("button").click()
        await expect(page.locator("#binary-rows tr[data-name=chatty] td").nth(1)).to_have_text("Python")
        await page.screenshot(path=str(ARTIFACTS / "binaries.png"), full_page=True)

        await page.click("nav a[data-view=contexts]")
        form = page.locator("#start-context")
        await form.locator("input[name=name]").fill("web")
        await form.locator("button").click()
        row = page.locator("#context-rows tr[data-name=web]")
        await expect(row.locator("td").nth(1)).to_have_text("RUNNING", timeout=30_000)
        await page.screenshot(path=str(ARTIFACTS / "contexts.png"), full_page=True)

        await page.click("nav a[data-view=jobs]")
        form = page.locator("#submit-job")
        await form.locator("input[name=classPath]").fill(ECHO)
        await form.locator("input[name=appName]").fill("examples")
        await form.locator("input[name=context]").fill("web")
        await form.locator("textarea[name=config]").fill('input.greeting = "hello"')
        await form.locator("button").click()
        await expect(page.locator("#job-status")).to_have_text("FINISHED", timeout=30_000)
        await expect(page.locator("#job-outcome")).to_contain_text('"greeting": "hello"')
        await expect(page.locator("#job-config")).to_contain_text('"greeting": "hello"')
        await page.screenshot(path=str(ARTIFACTS / "job-finished.png"), full_page=True)

        await form.locator("input[name=classPath]").fill("chatty:main")
        await form.locator("input[name=appName]").fill("chatty")
        await form.locator("textarea[name=config]").fill("lines = 600")
        await form.locator("button").click()
        await expect(page.locator("#job-status")).to_have_text("RUNNING", timeout=30_000)
        await expect(page.locator("#job-progress progress")).to_be_visible(timeout=30_000)
        await expect(page.locator("#job-log")).to_contain_text("web out 3", timeout=30_000)
        await page.screenshot(path=str(ARTIFACTS / "job-running.png"), full_page=True)
        sleeper = (await page.locator("#job-id").text_content()) or ""
        await page.locator("#kill-job").click()
        await expect(page.locator("#job-status")).to_have_text("KILLED", timeout=30_000)
        await expect(page.locator(f"#job-rows tr[data-job-id='{sleeper}'] td").nth(1)).to_have_text("KILLED")
        await page.screenshot(path=str(ARTIFACTS / "job-killed.png"), full_page=True)
        assert (await api.call("GET", f"/jobs/{sleeper}", headers=basic_ops()))[1]["status"] == "KILLED"

        await page.select_option("#job-filter select[name=status]", "KILLED")
        await expect(page.locator("#job-rows tr")).to_have_count(1)
        await page.screenshot(path=str(ARTIFACTS / "jobs-filtered.png"), full_page=True)

        await page.click("nav a[data-view=contexts]")
        await row.locator("button").click()
        await expect(row).to_have_count(0, timeout=30_000)
        status, _, _ = await api.call("GET", "/contexts/web", headers=basic_ops())
        assert status in (200, 404)
        if status == 200:
            assert (await api.call("GET", "/contexts/web", headers=basic_ops()))[1]["state"] == "FINISHED"
    finally:
        await context.close()  # type: ignore[attr-defined]


def basic_ops() -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(b"ops:secret").decode()}


async def test_a_scripts_request_gets_401_without_a_browser_challenge(api: Api) -> None:
    status, _, response = await api.call("GET", "/jobs", headers={"X-Requested-With": "XMLHttpRequest"})
    assert (status, response.headers.get("WWW-Authenticate")) == (401, None)
    status, _, response = await api.call("GET", "/jobs")
    assert status == 401 and response.headers["WWW-Authenticate"].startswith("Basic ")
