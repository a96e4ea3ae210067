"""Champion / challenger promotion: the rule on its own, then the scorecard's ``promotion`` asset
check run by Dagster on the `micro` profile's registry — it promotes a better version and refuses a
worse one (versions registered directly, nothing trained)."""

import pytest

from evaluation.promotion import CHALLENGER, CHAMPION, Evidence, PromotionConfig, decide
from tests.evaluation.registry_seed import bfcl_rows, seed_version

CFG = PromotionConfig(n_boot=500)
PPL = {"text": 30.0, "code": 20.0, "agent": 15.0}


def test_first_version_becomes_champion():
    d = decide(Evidence(bfcl_rows(5), PPL), None, CFG)
    assert d.promote and d.action == "first_champion"


def test_better_beyond_the_interval_is_promoted():
    d = decide(Evidence(bfcl_rows(15), PPL), Evidence(bfcl_rows(5), PPL), CFG)
    assert d.promote, d.reasons
    assert d.numbers["bfcl_overall_diff.lo"] > 0
    assert d.numbers["bfcl_overall_diff.n_items"] == 100


def test_a_difference_inside_the_interval_is_refused():
    """Per category of 20 items the challenger wins two and loses one: one item better on balance,
    within the noise of the discordant items."""
    champion = bfcl_rows(10)
    challenger = [{**r, "valid": 1 <= int(r["id"].rsplit("_", 1)[1]) < 12} for r in champion]
    d = decide(Evidence(challenger, PPL), Evidence(champion, PPL), CFG)
    assert not d.promote and d.action == "refused"
    assert d.numbers["bfcl_overall_diff.diff"] > 0 > d.numbers["bfcl_overall_diff.lo"]


def test_retention_loss_beyond_the_bound_is_refused():
    worse_text = {**PPL, "text": 30.0 * 1.06}  # 6% worse, bound 5%
    d = decide(Evidence(bfcl_rows(15), worse_text), Evidence(bfcl_rows(5), PPL), CFG)
    assert not d.promote
    assert any("retention on 'text' lost" in r for r in d.reasons), d.reasons
    ok = decide(Evidence(bfcl_rows(15), {**PPL, "text": 30.0 * 1.04}), Evidence(bfcl_rows(5), PPL), CFG)
    assert ok.promote  # within the bound


def test_versions_without_common_items_are_not_compared():
    other = [{**r, "id": "x" + r["id"]} for r in bfcl_rows(5)]
    d = decide(Evidence(bfcl_rows(15), PPL), Evidence(other, PPL), CFG)
    assert not d.promote and any("cannot be compared" in r for r in d.reasons)


@pytest.fixture
def micro_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("HEPHAESTUS_HOME", str(tmp_path))
    monkeypatch.setenv("HEPHAESTUS_PROFILE", "micro")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from assets.profile import Paths

    return Paths(home=tmp_path, profile="micro")


def _run_check(paths):
    """The ``promotion`` check alone (no scorecard materialization), as the UI runs it."""
    from dagster import AssetSelection, DagsterInstance, materialize

    from assets.evaluation import promotion, scorecard
    from assets.resources import ForgeResource, MlflowResource

    result = materialize(
        [scorecard, promotion],
        selection=AssetSelection.checks(promotion),
        resources={
            "profile": ForgeResource(profile="micro", home=str(paths.home)),
            "mlflow": MlflowResource(),
        },
        instance=DagsterInstance.ephemeral(),
    )
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def _alias(paths, alias):
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        version = MlflowClient(paths.tracking_uri).get_model_version_by_alias("hephaestus-sft-micro", alias)
    except MlflowException:
        return None
    return str(version.version)


def test_promotion_check_promotes_better_and_refuses_worse(micro_registry):
    paths = micro_registry
    uri, root, name = paths.tracking_uri, paths.artifact_root, "hephaestus-sft-micro"
    v1 = seed_version(uri, root, name, n_valid=5, ppl=PPL, params={"sft.lr": 0.002})
    first = _run_check(paths)
    assert first.passed and first.metadata["decision"].value == "first_champion"
    assert _alias(paths, CHAMPION) == v1 and _alias(paths, CHALLENGER) is None

    v2 = seed_version(uri, root, name, n_valid=15, ppl={**PPL, "text": 30.5}, params={"sft.lr": 0.001})
    better = _run_check(paths)
    meta = {k: v.value for k, v in better.metadata.items()}
    assert better.passed and meta["decision"] == "promoted" and meta["promoted"] is True
    assert meta["bfcl_overall_diff.lo"] > 0 and meta["challenger.version"] == int(v2)
    assert abs(meta["retention.text.relative_change"] - (30.5 / 30 - 1)) < 1e-9
    assert _alias(paths, CHAMPION) == v2 and _alias(paths, CHALLENGER) is None

    v3 = seed_version(uri, root, name, n_valid=4, ppl=PPL, params={"sft.lr": 0.01})
    worse = _run_check(paths)
    meta = {k: v.value for k, v in worse.metadata.items()}
    assert not worse.passed and meta["decision"] == "refused" and meta["promoted"] is False
    assert meta["bfcl_overall_diff.hi"] < 0
    assert "not better beyond the bootstrap interval" in meta["reasons_md"]
    assert _alias(paths, CHAMPION) == v2 and _alias(paths, CHALLENGER) == v3  # waits as challenger

    from mlflow import MlflowClient

    tags = MlflowClient(uri).get_model_version(name, v3).tags
    assert tags["promotion.decision"] == "refused"
