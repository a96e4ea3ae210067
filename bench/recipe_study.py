"""The recipe study in one command: the general base, the compute-matched ablation, every
checkpoint's evaluation, the mixing-ratio grid and its law — what the research assets do, without an
orchestrator, resumable, writing results (never checkpoints) to ``--out``.

    python bench/recipe_study.py prepare --out DIR [--profile research_gpu] [--cap agent=2e7 ...] [--sft-every N] [--archive [--part-mib 60]]
    python bench/recipe_study.py run --data DIR --out $OUT [--work .study_work] [--budget-s 540] [--grid-from grid.jsonl] [--report-only]

``prepare`` (CPU, here) copies what the pipeline built for the profile (run the profile's corpus
assets first, see the error it prints) into DIR: ``fct_corpus_documents`` as Parquet (``run`` loads
it into ``warehouse.duckdb``; ``--cap`` keeps a uniform sample of a category's train tokens), the tokenizer, the held-out texts, the SFT set, the unseen-API benchmark, BFCL's data,
HumanEval's problems and ``study.json`` (the profile's model/training/mixture/evaluation/research
sections). ``--archive`` also writes ``DIR.tar.xz.NN`` parts of at most ``--part-mib`` MiB each (``cat`` them, then untar).

``run`` (GPU) does, each step once (a step with its marker in ``--work`` is skipped on a rerun): the
grid (pack each share's mixture, train every size from scratch, held-out loss per category), the
law (fit, chosen share), the mixtures of the ablation (general; stage 1 at the law's share when the
profile says ``ratios: from_law``; stage 2), every arm (``python -m training``, resuming from its
last checkpoint when cut; the recipe and its control first, ``TRAIN_ORDER``), every checkpoint's
evaluation (on the GPU in a worker process while the next arm trains, ``--eval-workers``; the grid's runs
three at a time, ``--grid-workers``), then ``results.md``, ``results.json``,
``law.png``, ``loss_curves.png`` and ``grid.jsonl`` in ``--out``. With ``--budget-s`` it starts no
new step after that many seconds and exits 3 (rerun to continue); the results so far are written.
``--grid-from`` takes the grid from an earlier run's ``grid.jsonl`` instead of training it again;
``--report-only`` writes the results of what ``--work`` holds so far and runs nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from contracts.io import atomic_write_text  # noqa: E402
from training.research import (  # noqa: E402
    ARM_BY_NAME,
    ARMS,
    ResearchConfig,
    fit_and_choose,
    grid_run_config,
    laws_from_summary,
    plot_law,
    plot_loss_curves,
    ratios_for_share,
    read_loss_curve,
    run_grid,
    stage_tokens,
    tokens_per_step,
)

INCOMPLETE = 3
CORPUS_PARQUET = "fct_corpus_documents.parquet"


def _warehouse(data: Path) -> Path:
    """``data/warehouse.duckdb``, loaded from the Parquet that ``prepare`` wrote on first use."""
    import duckdb

    wh = data / "warehouse.duckdb"
    if not wh.exists():
        tmp = wh.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        with duckdb.connect(str(tmp)) as con:
            con.execute(f"create table fct_corpus_documents as select * from '{data / CORPUS_PARQUET}'")
        tmp.rename(wh)
    return wh


# ------------------------------------------------------------------------------------ prepare
def prepare(
    out: Path,
    profile_name: str,
    home: str | None,
    archive: bool,
    part_mib: int = 60,
    caps: dict[str, int] | None = None,
    sft_every: int = 1,
) -> int:
    import duckdb

    from assets.ingest import bfcl_data_dir
    from assets.profile import load_profile, resolve_repo_path
    from assets.resources import ForgeResource
    from evaluation.humaneval import download_humaneval

    profile = ForgeResource(profile=profile_name, home=home)
    paths, settings = profile.paths, profile.settings
    needed = {
        "warehouse": paths.warehouse,
        "tokenizer": paths.corpus / "tokenizer",
        "heldout_texts": paths.corpus / "heldout_texts",
        "sft": paths.corpus / "sft",
        "unseen": paths.evaluation / "unseen_api_benchmark",
    }
    missing = [f"{k} ({p})" for k, p in needed.items() if not p.exists()]
    if missing:
        print(
            f"missing pipeline outputs for profile {profile_name!r}: {', '.join(missing)}\n"
            f"build them first (DAGSTER_HOME as `make` sets it: its dagster.yaml keeps one warehouse "
            f"writer at a time): HEPHAESTUS_PROFILE={profile_name} DAGSTER_HOME=.hephaestus/dagster_home "
            ".venv/bin/dagster asset materialize -m orchestration.definitions --select "
            "'*tokenizer,*heldout_texts,*sft_dataset,*unseen_api_benchmark,raw/bfcl_items'",
            file=sys.stderr,
        )
        return 2
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    # The corpus travels as Parquet (zstd): far smaller than the DuckDB file; `run` loads it back.
    with duckdb.connect() as con:
        con.execute(f"attach '{needed['warehouse']}' as src (read_only)")
        con.execute("create temp table docs as select * from src.fct_corpus_documents")
        for category, cap in (caps or {}).items():  # a uniform sample (by doc_id hash) of its train rows
            con.execute(
                """delete from docs where doc_id in (
                       select doc_id from (
                           select doc_id, sum(n_tokens_est) over (order by hash(doc_id), doc_id) as upto
                           from docs where category = ? and split = 'train')
                       where upto > ?)""",
                [category, cap],
            )
        con.execute(
            f"copy docs to '{out / CORPUS_PARQUET}' (format parquet, compression zstd, compression_level 19)"
        )
        counts = con.execute(
            "select category, split, count(*), sum(n_tokens_est) from docs group by 1, 2 order by 1, 2"
        ).fetchall()
    for name in ("tokenizer", "heldout_texts", "sft", "unseen"):
        shutil.copytree(needed[name], out / name)
    if sft_every > 1:  # every N-th training conversation: the study's SFT reads a few million tokens
        train = out / "sft" / "train.jsonl"
        with train.open() as src:
            kept = [line for i, line in enumerate(src) if i % sft_every == 0]
        atomic_write_text(train, "".join(kept))
        print(f"sft: kept every {sft_every}th training conversation, {len(kept):,}")
    shutil.copytree(bfcl_data_dir(profile), out / "bfcl")
    he = settings.evaluation.humaneval
    he_src = resolve_repo_path(he.local_path) if he.local_path else download_humaneval(paths.cache)
    shutil.copy(he_src, out / ("humaneval" + "".join(Path(he_src).suffixes)))
    raw = load_profile(profile_name)
    study = {k: raw.get(k) for k in ("name", "model", "training", "mixture", "evaluation", "research")}
    atomic_write_text(out / "study.json", json.dumps(study, indent=2) + "\n")
    print("category  split       docs  tokens(est)")
    for cat, split, n, tok in counts:
        print(f"{cat:<9} {split:<10} {n:>6}  {tok:>11,}")
    if archive:
        tar = out.parent / f"{out.name}.tar.xz"  # xz: any machine with Python or tar unpacks it
        subprocess.run(  # the Parquet inside is compressed already: xz at a light preset
            ["tar", "-I", "xz -1 -T0", "-cf", str(tar), "-C", str(out.parent), out.name], check=True
        )
        subprocess.run(["split", "-b", f"{part_mib}M", "-d", str(tar), f"{tar}."], check=True)
        tar.unlink()
        for part in sorted(out.parent.glob(f"{tar.name}.*")):
            print(f"{part}  {part.stat().st_size / 2**20:.1f} MiB")
    return 0


# ------------------------------------------------------------------------------------ run
class Study:
    """The run's state: data and work dirs, the profile sections, step markers and timings."""

    def __init__(
        self, data: Path, work: Path, out: Path, budget_s: float | None, device: str | None,
        eval_workers: int | None = None, grid_workers: int | None = None,
    ):  # fmt: skip
        from assets.profile import Profile

        self.data, self.work, self.out = data, work, out
        self.raw = json.loads((data / "study.json").read_text())
        if device:  # the CPU test of this script
            self.raw["training"] = {**(self.raw.get("training") or {}), "device": device, "compile": False}
        self.settings = Profile.model_validate(self.raw)
        self.research: ResearchConfig = self.settings.research
        self.t0, self.budget_s = time.perf_counter(), budget_s
        self.in_process = device == "cpu"
        # on the GPU a checkpoint is evaluated in a worker process while the next arm trains
        self.eval_workers = (0 if self.in_process else 1) if eval_workers is None else eval_workers
        # and the grid's small models train several at once, each in its own process
        self.grid_workers = (1 if self.in_process else 3) if grid_workers is None else grid_workers
        self.timings: dict[str, float] = self._load("timings.json", {})
        self._record_lock = threading.Lock()  # steps may finish in two threads (packing beside training)
        work.mkdir(parents=True, exist_ok=True)
        out.mkdir(parents=True, exist_ok=True)

    def _load(self, name: str, default: Any) -> Any:
        path = self.work / name
        return json.loads(path.read_text()) if path.exists() else default

    def done(self) -> set[str]:
        return {p.stem for p in (self.work / "steps").glob("*.json")}

    def seed_grid(self, grid_jsonl: Path) -> None:
        """Take the grid's records from an earlier run's ``grid.jsonl`` (the law is refit from them)."""
        marker = self.work / "steps" / "grid.json"
        if marker.exists():
            return
        records = [json.loads(line) for line in grid_jsonl.read_text().splitlines() if line.strip()]
        if not records:
            raise ValueError(f"{grid_jsonl}: no grid records")
        atomic_write_text(marker, json.dumps({"result": records, "from": str(grid_jsonl)}))
        print(f"grid: {len(records)} runs read from {grid_jsonl}, not rerun", flush=True)

    def check_budget(self, name: str) -> None:
        if self.budget_s is not None and time.perf_counter() - self.t0 > self.budget_s:
            raise TimeoutError(name)

    def step(self, name: str, fn) -> Any:
        """Run ``fn`` unless its marker exists; record its wall time; stop when over budget."""
        if name in self.done():
            return json.loads((self.work / "steps" / f"{name}.json").read_text())["result"]
        self.check_budget(name)
        print(f"[{time.perf_counter() - self.t0:7.1f}s] {name}: started", flush=True)
        t = time.perf_counter()
        result = fn()
        self.record(name, result, time.perf_counter() - t)
        return result

    def record(self, name: str, result: Any, seconds: float) -> None:
        """The step's marker (its result) and its wall time."""
        with self._record_lock:
            self.timings[name] = round(seconds, 1)
            atomic_write_text(
                self.work / "steps" / f"{name}.json", json.dumps({"result": result}, default=str)
            )
            atomic_write_text(self.work / "timings.json", json.dumps(self.timings, indent=2))
        print(f"[{time.perf_counter() - self.t0:7.1f}s] {name}: done in {self.timings[name]}s", flush=True)

    def pack(self, ratios: dict[str, float], budget: int, out_dir: Path, seed_only: bool = False) -> dict:
        from forge.corpus.mixtures import MIXTURE_STAGE, MixtureConfig

        cfg = MixtureConfig(ratios=ratios, token_budget=budget, seed_only=seed_only, max_epochs=100.0)
        meta = MIXTURE_STAGE.run(
            cfg,
            warehouse=_warehouse(self.data),
            tokenizer_dir=self.data / "tokenizer",
            out_dir=out_dir,
        )
        return {k: meta[k] for k in ("n_tokens", "tokens_by_category")}

    def train(self, command: str, cfg) -> dict[str, Any]:
        """One stage in its own process (GPU memory freed after), resuming from its checkpoints."""
        from training.config import to_dict

        Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
        if self.in_process:  # the CPU test: no interpreter start per stage
            from training.stages import run as run_stage

            return run_stage(command, cfg)
        path = Path(cfg.output_dir) / "run_config.json"
        atomic_write_text(path, json.dumps(to_dict(cfg)))
        proc = subprocess.run(
            [sys.executable, "-m", "training", command, "--config", str(path), "--quiet"],
            cwd=REPO, capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"{cfg.name} failed:\n{proc.stderr[-4000:]}")
        return json.loads((Path(cfg.output_dir) / "summary.json").read_text())

    def heldout_loss(self, hf_dir: Path) -> dict[str, float]:
        from contracts.io import read_jsonl
        from evaluation.bfcl.runner import load_model
        from evaluation.perplexity import perplexity

        model, tok = load_model(hf_dir)
        seq = self.settings.evaluation.perplexity.seq_len
        out = {}
        for path in sorted((self.data / "heldout_texts").glob("*.jsonl")):
            texts = [r["text"] for r in read_jsonl(path)]
            if texts:
                out[path.stem] = float(
                    perplexity(model, tok, texts, seq_len=seq, batch_size=16)["nll_per_token"]
                )
        return out


#: Training order of the arms: the recipe and its control first, so a run cut by its budget still
#: holds the comparison that matters most (every arm after the checkpoint it starts from).
TRAIN_ORDER = ("base", "cpt1", "cpt2", "control", "sft_cpt2", "sft_control", "sft_base", "sft_cpt1")


def _timed(fn, *args) -> tuple[Any, float]:
    t = time.perf_counter()
    return fn(*args), time.perf_counter() - t


class Evaluations:
    """Checkpoint evaluations: inline (``workers`` 0), or in ``workers`` spawned processes while the
    main process goes on training (a ~40M model leaves most of the GPU idle). Each is a step: skipped
    when its marker exists, not started past the budget, recorded when it ends."""

    def __init__(self, study: Study, fn, workers: int) -> None:
        self.study, self.fn, self.pending = study, fn, {}
        self.pool = None
        if workers > 0:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def submit(self, name: str, *args) -> None:
        if name in self.study.done() or name in self.pending:
            return
        if self.pool is None:
            self.study.step(name, lambda: self.fn(*args))
            return
        self.study.check_budget(name)
        self.pending[name] = self.pool.submit(_timed, self.fn, *args)
        self._collect(block=False)

    def _collect(self, block: bool) -> None:
        for name, future in list(self.pending.items()):
            if block or future.done():
                del self.pending[name]
                result, seconds = future.result()
                self.study.record(name, result, seconds)

    def finish(self) -> None:
        if self.pool is not None:
            try:
                self._collect(block=True)
            finally:
                self.pool.shutdown(wait=True)


def run(study: Study) -> int:
    r, s = study.research, study.settings
    model, training = study.raw.get("model"), study.raw.get("training")
    tok = study.data / "tokenizer"
    complete = False
    try:
        grid_dir = study.work / "grid"

        def grid() -> list[dict[str, Any]]:
            budget = r.grid.mixture_tokens or r.grid.train_tokens
            return run_grid(
                r.grid, grid_dir,
                pack=lambda share, d: study.pack(ratios_for_share(share), budget, d),
                train=lambda cfg: study.train("cpt", cfg),
                heldout_loss=study.heldout_loss,
                make_config=lambda run_, shards, o: grid_run_config(
                    model, training, r.grid, run_.size, output_dir=o, tokenizer_dir=tok, shards_dir=shards
                ),
                workers=study.grid_workers,
            )  # fmt: skip

        records = study.step("grid", grid)
        law = study.step("law", lambda: fit_and_choose(records, r.general_tolerance))
        stage1 = s.mixture.stage1
        ratios1 = (
            ratios_for_share(law["chosen"]["share"]) if stage1.ratios == "from_law" else dict(stage1.ratios)
        )
        data = {
            "general": study.work / "data" / "general",
            "stage1": study.work / "data" / "stage1",
            "stage2": study.work / "data" / "stage2",
            "sft": study.data / "sft",
        }
        from training.research import arm_configs

        cfgs = arm_configs(
            model, training, r, models_dir=study.work / "models", tokenizer_dir=tok, data_dirs=data
        )
        for arm in ARMS:  # the SFT set is rendered by the first SFT arm, read back by the others
            if arm.command == "sft":
                cfgs[arm.name].data.render_cache_dir = str(study.work / "sft_render_cache")
        study.step(
            "pack_general",
            lambda: study.pack({"code": 1, "text": 1}, r.ablation.general_tokens, data["general"]),
        )

        def train_step(arm: str) -> None:
            study.step(f"train_{arm}", lambda: _summary(study.train(ARM_BY_NAME[arm].command, cfgs[arm])))

        def pack_cpt() -> None:
            study.step("pack_stage1", lambda: study.pack(ratios1, stage1.token_budget, data["stage1"]))
            stage2 = s.mixture.stage2
            study.step(
                "pack_stage2",
                lambda: study.pack(
                    dict(stage2.ratios), stage2.token_budget, data["stage2"], stage2.seed_only
                ),
            )

        # on the GPU the base trains (a process of its own) while this one packs the CPT mixtures (the CPU)
        beside(lambda: train_step("base"), pack_cpt, overlap=not study.in_process)
        from evaluation.checkpoint import EvalInputs, evaluate_checkpoint

        he = sorted(study.data.glob("humaneval*"))
        inputs = EvalInputs(
            study.data / "bfcl", study.data / "unseen", study.data / "heldout_texts", he[0] if he else None
        )

        def eval_args(name: str) -> tuple:
            hf = Path(cfgs[name].output_dir) / "hf"
            return hf, inputs, s.evaluation, study.work / "evals" / name

        evals = Evaluations(study, evaluate_checkpoint, study.eval_workers)
        try:
            for arm in TRAIN_ORDER:  # each checkpoint's evaluation starts as soon as it exists
                train_step(arm)  # the base's step is done already (its marker): not run again
                evals.submit(f"eval_{arm}", *eval_args(arm))
        finally:
            evals.finish()  # what was started is waited for and recorded, even when the budget stopped us
        complete = True
        return 0
    except TimeoutError as stopped:
        print(f"budget reached before step {stopped}: rerun the same command to continue", flush=True)
        return INCOMPLETE
    finally:
        write_results(study, complete)


def beside(first: Any, then: Any, overlap: bool) -> None:
    """``first()`` in a thread while ``then()`` runs here (``overlap``), else one after the other;
    returns when both have ended. ``first``'s exception wins over ``then``'s (``then`` needs what
    ``first`` makes: the base checkpoint for every arm)."""
    if not overlap:
        first()
        then()
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1, thread_name_prefix="beside") as pool:
        future = pool.submit(first)
        try:
            then()
        finally:
            future.result()


def _summary(summary: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "steps",
        "tokens_seen",
        "final_loss",
        "final_eval_loss",
        "n_params",
        "n_params_non_embedding",
        "wall_time_s",
        "n_examples_train",  # SFT only, as the next two
        "n_examples_eval",
        "skipped_rows",
        "n_examples_cut",
    )
    return {k: summary.get(k) for k in keys}


def sft_rows_line(steps: dict[str, Any]) -> str | None:
    """What the SFT arms trained on (one data set for all): rows kept, and rows skipped by reason
    (e.g. whose assistant tokens a too-short sequence cut off), from the first SFT arm that finished."""
    for arm in ARMS:
        res = steps.get(f"train_{arm.name}") or {}
        if res.get("n_examples_train") is None:
            continue
        kept = res["n_examples_train"] + (res.get("n_examples_eval") or 0)
        skipped = res.get("skipped_rows") or {}
        total = kept + sum(skipped.values())
        reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(skipped.items())) or "none"
        cut = res.get("n_examples_cut") or 0
        return (
            f"SFT rows (every SFT arm): {kept:,} of {total:,} kept ({res['n_examples_train']:,} train, {cut:,} of "
            f"them cut at the sequence length); skipped: {reasons} ({(total - kept) / max(total, 1):.1%})."
        )
    return None


def write_results(study: Study, complete: bool) -> None:
    """Whatever is finished, as results.md / results.json / plots / grid.jsonl in --out."""
    from evaluation.scorecard import comparison_table
    from training.config import load_config

    steps = {
        p.stem: json.loads(p.read_text())["result"] for p in sorted((study.work / "steps").glob("*.json"))
    }
    out, md = (
        study.out,
        [f"# Recipe study ({'complete' if complete else 'INCOMPLETE: rerun to continue'})", ""],
    )
    if "grid" in steps:
        atomic_write_text(out / "grid.jsonl", "".join(json.dumps(x) + "\n" for x in steps["grid"]))
    grid_marker = study.work / "steps" / "grid.json"
    grid_from = json.loads(grid_marker.read_text()).get("from") if grid_marker.exists() else None
    if "law" in steps:
        from training.research import law_markdown

        if grid_from:
            md += [f"The grid's runs were read from `{grid_from}` (an earlier run of this profile).", ""]
        law = steps["law"]
        plot_law(steps["grid"], laws_from_summary(law["laws"]), law["chosen"], out / "law.png")
        md += ["## Mixing-ratio law", "", law_markdown(law, steps["grid"]), ""]
    arms_md = [
        "| arm | what | tokens | steps | params (non-emb) | final loss | wall s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    curves = {}
    for arm in ARMS:
        res = steps.get(f"train_{arm.name}")
        cfg_path = study.work / "models" / arm.name / "config.json"
        if res and cfg_path.exists():
            cfg = load_config(cfg_path)
            curves[arm.name] = read_loss_curve(
                study.work / "models" / arm.name / "metrics.jsonl", tokens_per_step(cfg)
            )
            arms_md.append(
                f"| {arm.name} | {arm.description} | {stage_tokens(cfg):,} | {res['steps']} | "
                f"{res['n_params']:,} ({res['n_params_non_embedding']:,}) | {res['final_loss'] or float('nan'):.4f} | {res['wall_time_s']:.0f} |"
            )
    if curves:
        plot_loss_curves(curves, out / "loss_curves.png", "ablation arms: training loss")
        md += ["## Ablation: training", "", *arms_md, ""]
        rows_line = sft_rows_line(steps)
        md += [rows_line, ""] if rows_line else []
    evals = {a.name: steps[f"eval_{a.name}"] for a in ARMS if f"eval_{a.name}" in steps}
    if evals:
        md += ["## Ablation: every checkpoint x every metric", "", comparison_table(evals, base="base"), ""]
    total = sum(study.timings.values())
    md += ["## Time", "", "| step | wall s |", "|---|---:|"]
    md += [f"| {k} | {v} |" for k, v in study.timings.items()] + [
        f"| sum of the steps | {total:.0f} ({total / 60:.1f} min) |",
        f"| wall clock of the last invocation (evaluations overlap training) | {time.perf_counter() - study.t0:.0f} |",
    ]
    atomic_write_text(out / "results.md", "\n".join(md) + "\n")
    payload = {
        "complete": complete,
        "grid_from": grid_from,
        "timings_s": study.timings,
        "steps": steps,
        "study": study.raw,
    }
    atomic_write_text(out / "results.json", json.dumps(payload, indent=2, default=str) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--profile", default="research_gpu")
    p.add_argument("--home", default=None, help="HEPHAESTUS_HOME the profile was built in")
    p.add_argument("--archive", action="store_true")
    p.add_argument("--part-mib", type=int, default=60, help="size of each archive part")
    p.add_argument(
        "--cap",
        action="append",
        default=[],
        metavar="CATEGORY=TOKENS",
        help="keep a uniform sample of at most TOKENS (estimated) train tokens of CATEGORY (repeatable)",
    )
    p.add_argument(
        "--sft-every",
        type=int,
        default=1,
        help="keep every N-th SFT training conversation (smaller transfer)",
    )
    r = sub.add_parser("run")
    r.add_argument("--data", type=Path, required=True)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--work", type=Path, default=REPO / ".study_work")
    r.add_argument("--budget-s", type=float, default=None)
    r.add_argument("--device", default=None, help="override training.device (the CPU test: cpu)")
    r.add_argument(
        "--grid-from",
        type=Path,
        default=None,
        help="a grid.jsonl of an earlier run of the same profile: the grid step is read from it, not rerun",
    )
    r.add_argument(
        "--report-only", action="store_true", help="write the results of --work so far; run nothing"
    )
    r.add_argument(
        "--eval-workers",
        type=int,
        default=None,
        help="processes evaluating checkpoints while training goes on (default: 1 on the GPU, 0 = inline on the CPU)",
    )
    r.add_argument(
        "--grid-workers",
        type=int,
        default=None,
        help="grid runs training at once, each in its own process (default: 3 on the GPU, 1 on the CPU)",
    )
    args = ap.parse_args(argv)
    if args.cmd == "prepare":
        caps = {c: int(float(n)) for c, n in (x.split("=", 1) for x in args.cap)}
        return prepare(args.out, args.profile, args.home, args.archive, args.part_mib, caps, args.sft_every)
    study = Study(
        args.data, args.work, args.out, args.budget_s, args.device, args.eval_workers, args.grid_workers
    )
    if args.grid_from:
        study.seed_grid(args.grid_from)
    if args.report_only:
        write_results(study, complete=all(f"eval_{a.name}" in study.done() for a in ARMS))
        return 0
    if os.environ.get("TOKENIZERS_PARALLELISM", "").lower() in ("0", "false", "no", "off"):
        print(  # packing the grid's and the arms' mixtures then runs on one core (minutes lost on a GPU box)
            "warning: TOKENIZERS_PARALLELISM is off: the mixtures are tokenized on one thread; "
            "unset it for the study",
            file=sys.stderr,
            flush=True,
        )
    return run(study)


if __name__ == "__main__":
    sys.exit(main())
