"""What users do in the two UIs, in a real browser (see conftest.py for the servers and chromium).

Dagster: open the asset graph, filter it to one asset and its upstream (the crawl's
``raw/documents`` → dbt's ``stg_forge__documents``), launch the materialization from the UI, wait for
the run's success, open ``raw/documents`` and find its metadata: the page count, the skip table and
the crawl plot; turn the weekly schedule on and off. MLflow: open the registered model, compare its
two versions side by side (scores and parameters), open a training run's loss curve.

Every wait is on a state the page shows (Playwright's auto-waiting locators and ``expect``), never a
sleep; a dialog is closed and its backdrop gone before the next click.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the `browser` fixture skips saying why (fails under HEPHAESTUS_REQUIRE_BROWSER=1)
    expect = None
if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.browser
STEP_MS = 60_000  # one page state (a page load, a dialog, a query): seconds, a minute under load
RUN_MS = 420_000  # the UI-launched run: under a minute on a quiet 2-core machine, minutes under load
TERMINAL = re.compile(r"^(Success|Failure|Canceled)$")  # the run page's status tag


@pytest.fixture
def page(browser, servers, screenshots, request):
    """A fresh context per test (no dialog or toast carried over); on failure, a screenshot of where
    it stopped (``FAILED_<test>.png``)."""
    expect.set_options(timeout=STEP_MS)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(STEP_MS)
    pg = context.new_page()
    yield pg
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        pg.screenshot(path=str(screenshots / f"FAILED_{request.node.name}.png"))
    context.close()


def _no_dialog(page: Page) -> None:
    """Close an open dialog (Escape) and wait until neither it nor its backdrop is in the DOM: a
    backdrop fading out still takes the next click."""
    if page.get_by_role("dialog").count():
        page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.locator("[class*='overlay-backdrop']")).to_have_count(0)


def _visible_reloading(page: Page, locator: Locator, *, total_ms: int, reload_every_ms: int) -> None:
    """Wait for ``locator``, reloading every ``reload_every_ms`` until ``total_ms``: a single-page app
    whose first query failed or was answered by a busy server shows that stale answer until reloaded."""
    deadline = time.monotonic() + total_ms / 1000
    while True:
        left_ms = (deadline - time.monotonic()) * 1000
        try:
            expect(locator).to_be_visible(timeout=max(min(reload_every_ms, left_ms), 1))
            return
        except AssertionError:
            if time.monotonic() >= deadline:
                raise
            page.reload()


def _image_width(page: Page, image: Locator) -> int:
    """The image's decoded width in pixels, once it has loaded (0 while it loads)."""
    image.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    return image.evaluate("img => img.naturalWidth")


def test_make_ui_prints_both_urls(servers):
    assert f"MLflow UI:  {servers['mlflow']}" in servers["printed"]
    assert f"Dagster UI: {servers['dagster']}" in servers["printed"]


def test_dagster_materialize_from_the_ui_and_read_the_metadata(page, servers, screenshots):
    dagster = servers["dagster"]
    selection = quote('+key:"stg_forge__documents"', safe="")
    page.goto(f"{dagster}/asset-groups~{selection}/")
    materialize = page.get_by_role("button", name="Materialize all")
    expect(materialize).to_be_enabled()  # disabled until the graph's assets have loaded
    expect(page.get_by_text("ingest", exact=True).first).to_be_visible()
    expect(page.get_by_text("warehouse", exact=True).first).to_be_visible()
    page.screenshot(path=str(screenshots / "dagster_asset_graph.png"))
    _no_dialog(page)
    materialize.click()
    # the crawl is one multi-asset: the UI says its sibling (web_docs_operations) comes along
    dialog = page.get_by_role("dialog").filter(has_text="Additional assets will be materialized")
    with page.expect_response(
        lambda r: r.request.method == "POST" and "LaunchPipelineExecution" in (r.request.post_data or "")
    ) as launched:
        dialog.get_by_role("button", name="Confirm").click()
    launch = launched.value.json()["data"]["launchPipelineExecution"]
    assert launch["__typename"] == "LaunchRunSuccess", launch
    _no_dialog(page)

    page.goto(f"{dagster}/runs/{launch['run']['id']}")  # the run's page, live
    status = page.get_by_text(TERMINAL).first
    try:
        _visible_reloading(page, status, total_ms=RUN_MS, reload_every_ms=STEP_MS)
    finally:
        page.screenshot(path=str(screenshots / "dagster_run.png"))
    expect(status).to_have_text("Success")

    page.goto(f"{dagster}/assets/raw/documents")
    rows = page.get_by_role("row")
    n_pages = rows.filter(has=page.get_by_text("n_pages", exact=True)).locator("td").last
    expect(n_pages).to_have_text("3")  # the fixture site's three pages
    expect(rows.filter(has_text="skipped_md")).to_contain_text("nothing skipped")  # Markdown renders late
    page.screenshot(path=str(screenshots / "dagster_asset_metadata.png"))
    plot_row = rows.filter(has_text="crawl_plot_md")
    plot_row.scroll_into_view_if_needed()
    plot_row.get_by_text("Show Markdown").click()
    plot = page.get_by_role("dialog").filter(has_text="crawl_plot_md")
    assert _image_width(page, plot.locator("img[src^='data:image/png']")) > 100
    page.screenshot(path=str(screenshots / "dagster_asset_plot.png"))
    _no_dialog(page)


def test_dagster_schedule_on_and_off(page, servers, screenshots):
    page.goto(f"{servers['dagster']}/automation")
    page.get_by_role("link", name="weekly_rebuild_schedule").click()
    page.wait_for_url(re.compile(r".*/schedules/weekly_rebuild_schedule"))
    switch = page.get_by_role("checkbox").first
    toggle = page.locator("label").filter(has=switch)  # the input is drawn by its label
    expect(switch).not_to_be_checked()  # off by default
    for on in (True, False):
        expect(switch).to_be_enabled()  # disabled while the state loads and while a toggle is in flight
        toggle.click()
        expect(switch).to_be_checked(checked=on)
        expect(switch).to_be_enabled()  # the mutation has answered
        if on:
            page.screenshot(path=str(screenshots / "dagster_schedule_on.png"))
        page.reload()  # the state is the instance's, not the page's
        expect(switch).to_be_checked(checked=on)


def test_mlflow_compare_versions_and_loss_curve(page, servers, screenshots):
    mlflow, name, (v1, v2) = servers["mlflow"], servers["model_name"], servers["versions"]
    page.goto(f"{mlflow}/#/models/{name}")
    rows = {v: page.get_by_role("row").filter(has_text=f"Version {v}") for v in (v1, v2)}
    _visible_reloading(page, rows[v2], total_ms=2 * STEP_MS, reload_every_ms=STEP_MS // 3)
    expect(rows[v1]).to_contain_text("champion")  # the registry's aliases
    expect(rows[v2]).to_contain_text("challenger")
    page.screenshot(path=str(screenshots / "mlflow_registered_model.png"))
    for row in rows.values():
        row.get_by_role("checkbox").check()
    compare = page.get_by_role("button", name="Compare", exact=True)
    expect(compare).to_be_enabled()
    compare.click()
    page.wait_for_url(re.compile(r".*compare-model-versions.*"))
    table = page.get_by_role("row")
    side_by_side = {  # a row's cells, version 1 then version 2
        "Model Version:": [v1, v2],
        "sft.lr": ["0.002", "0.001"],
        "sft.lora_r": ["4", "8"],
        "bfcl.overall_mean": ["0.25", "0.7"],
    }
    for key, cells in side_by_side.items():
        expect(table.filter(has=page.get_by_text(key, exact=True)).locator("td")).to_have_text(cells)
    page.screenshot(path=str(screenshots / "mlflow_compare_versions.png"), full_page=True)

    run, exp = servers["training_run_id"], servers["experiment_id"]
    page.goto(f"{mlflow}/#/experiments/{exp}/runs/{run}/model-metrics")
    expect(page.get_by_text("cpt_stage1_model (loss)").first).to_be_visible()  # the chart's legend
    page.screenshot(path=str(screenshots / "mlflow_loss_metric.png"))
    page.goto(f"{mlflow}/#/experiments/{exp}/runs/{run}/artifacts/loss_curve.png")
    expect(page.get_by_text("loss_curve.png").first).to_be_visible()
    assert (
        _image_width(page, page.locator("img[src^='blob:']").first) > 100
    )  # the artifact, fetched and shown
    page.screenshot(path=str(screenshots / "mlflow_loss_curve.png"))
