"""What users do in the two UIs, in a real browser (see conftest.py for the servers and chromium).

Dagster: open the asset graph, filter it to one asset and its upstream (the crawl's
``raw/documents`` → dbt's ``stg_forge__documents``), launch the materialization from the UI, wait for
the run's success, open ``raw/documents`` and find its metadata: the page count, the skip table and
the crawl plot; turn the weekly schedule on and off. MLflow: open the registered model, compare its
two versions side by side (scores and parameters), open a training run's loss curve.
"""

from __future__ import annotations

import re
import time
from urllib.parse import quote

import pytest

pytestmark = pytest.mark.browser
TIMEOUT_MS = 420_000  # the UI-launched run: under a minute on a quiet 2-core machine, minutes under load


@pytest.fixture(scope="module")
def page(browser, servers):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(60_000)
    pg = context.new_page()
    # Dagster's first-visit "Join the community" dialog, whenever it shows up
    pg.add_locator_handler(
        pg.get_by_text("Join the Dagster community"), lambda _: pg.get_by_role("button", name="Skip").click()
    )
    yield pg
    context.close()


def test_make_ui_prints_both_urls(servers):
    assert f"MLflow UI:  {servers['mlflow']}" in servers["printed"]
    assert f"Dagster UI: {servers['dagster']}" in servers["printed"]


def test_dagster_materialize_from_the_ui_and_read_the_metadata(page, servers, screenshots):
    selection = quote('+key:"stg_forge__documents"', safe="")
    page.goto(f"{servers['dagster']}/asset-groups~{selection}/")
    page.get_by_text("Materialize all").wait_for()
    page.locator(".CodeMirror").first.wait_for()
    assert page.get_by_text("ingest").first.is_visible() and page.get_by_text("warehouse").first.is_visible()
    page.screenshot(path=str(screenshots / "dagster_asset_graph.png"))
    page.get_by_text("Materialize all").click()
    # the crawl is one multi-asset: the UI says its sibling (web_docs_operations) comes along
    page.get_by_text("Additional assets will be materialized").wait_for()
    page.get_by_role("button", name="Confirm").click()
    page.get_by_role("button", name="Confirm").wait_for(state="detached")
    time.sleep(3)  # let the launch request finish before leaving the page

    page.goto(f"{servers['dagster']}/runs")
    run_link = page.locator("a").filter(has_text=re.compile(r"^[0-9a-f]{8}$")).first  # the run's short id
    run_link.wait_for(timeout=TIMEOUT_MS)
    run_link.click()  # the run's page, live
    done = page.get_by_text(re.compile(r"^(Success|Failure)$")).first
    try:
        done.wait_for(timeout=TIMEOUT_MS)
    finally:
        page.screenshot(path=str(screenshots / "dagster_run.png"))
    assert done.inner_text() == "Success"

    page.goto(f"{servers['dagster']}/assets/raw/documents")
    metadata = page.get_by_role("row").filter(has_text="n_pages")
    metadata.first.wait_for()
    assert "3" in metadata.first.inner_text()  # the fixture site's three pages
    assert "nothing skipped" in page.get_by_role("row").filter(has_text="skipped_md").first.inner_text()
    page.screenshot(path=str(screenshots / "dagster_asset_metadata.png"))
    plot_row = page.get_by_role("row").filter(has_text="crawl_plot_md").first
    plot_row.scroll_into_view_if_needed()
    plot_row.get_by_text("Show Markdown").click()
    image = page.locator("img[src^='data:image/png']").first
    image.wait_for()
    assert image.evaluate("img => img.naturalWidth") > 100
    page.screenshot(path=str(screenshots / "dagster_asset_plot.png"))
    page.keyboard.press("Escape")


def test_dagster_schedule_on_and_off(page, servers, screenshots):
    page.goto(f"{servers['dagster']}/automation")
    page.get_by_role("link", name="weekly_rebuild_schedule").click()
    page.wait_for_url(re.compile(r".*/schedules/weekly_rebuild_schedule"))
    switch = page.locator("input[type=checkbox]").first
    switch.wait_for(state="attached")
    toggle = page.locator(f"label[for='{switch.get_attribute('id')}']")
    assert not switch.is_checked()  # off by default
    toggle.click()
    page.wait_for_function("id => document.getElementById(id).checked", arg=switch.get_attribute("id"))
    page.screenshot(path=str(screenshots / "dagster_schedule_on.png"))
    toggle.click()
    page.wait_for_function("id => !document.getElementById(id).checked", arg=switch.get_attribute("id"))

    page.reload()  # the state is the instance's, not the page's
    switch = page.locator("input[type=checkbox]").first
    switch.wait_for(state="attached")
    assert not switch.is_checked()


def test_mlflow_compare_versions_and_loss_curve(page, servers, screenshots):
    name, (v1, v2) = servers["model_name"], servers["versions"]
    page.goto(f"{servers['mlflow']}/#/models/{name}")
    page.get_by_text(f"Version {v2}").first.wait_for()
    page.get_by_text(re.compile(r"champion")).first.wait_for()  # the registry's aliases
    page.get_by_text(re.compile(r"challenger")).first.wait_for()
    page.screenshot(path=str(screenshots / "mlflow_registered_model.png"))
    boxes = page.get_by_role("checkbox")  # the header's, then one per version
    boxes.nth(1).check(force=True)
    boxes.nth(2).check(force=True)
    page.get_by_role("button", name="Compare", exact=True).click()
    page.wait_for_url(re.compile(rf".*compare-model-versions.*{v1}.*{v2}.*"))
    page.get_by_text("sft.lr").first.wait_for()
    body = page.inner_text("body")
    for expected in ("sft.lora_r", "bfcl.overall_mean", "0.002", "0.001"):
        assert expected in body, expected
    page.screenshot(path=str(screenshots / "mlflow_compare_versions.png"), full_page=True)

    run, exp = servers["training_run_id"], servers["experiment_id"]
    page.goto(f"{servers['mlflow']}/#/experiments/{exp}/runs/{run}/model-metrics")
    page.get_by_text("loss").first.wait_for()
    page.get_by_text("cpt_stage1_model (loss)").first.wait_for()  # the chart's legend
    page.screenshot(path=str(screenshots / "mlflow_loss_metric.png"))
    page.goto(f"{servers['mlflow']}/#/experiments/{exp}/runs/{run}/artifacts/loss_curve.png")
    page.get_by_text("loss_curve.png").first.wait_for()
    image = page.locator("img[src^='blob:']").first  # the artifact, fetched and shown
    image.wait_for()
    assert image.evaluate("img => img.naturalWidth") > 100
    page.screenshot(path=str(screenshots / "mlflow_loss_curve.png"))
