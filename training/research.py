"""The recipe's claims as runs: the compute-matched ablation's arms and the mixing-ratio law.

Plain data and pure functions, no orchestrator: the research assets and ``bench/recipe_study.py``
both call them, so the graph and the one-shot GPU study run the same plan.

*Ablation.* Every arm starts from one general base, a model pretrained from scratch on code and
text only (the stand-in for the paper's Llama-3-8B). Checkpoints: ``base``; ``cpt1`` (stage 1, the
mixture); ``cpt2`` (stage 2, seed agent data, after ``cpt1``); ``control`` (more general
pretraining for exactly the tokens of ``cpt1`` + ``cpt2``: same compute, no agent data); and the
same SFT on each of them. Every stage's RunConfig comes from ``training.config.from_profile``.

*Mixing law.* Small models trained from scratch on mixtures with agent share ``s`` (the rest code
and text, 1:1) at a fixed token budget, for several model sizes; the held-out loss of each
category is fitted as ``L_c(s, N) = c_c + exp(a_c + b_c*s + d_c*ln(N/1e6))`` (N: non-embedding
parameters; the exponential-in-proportion form of the data-mixing laws times a power law in N;
``c_c`` is the irreducible part, fitted with scipy's ``curve_fit`` when the grid has enough points,
else 0 and the rest by least squares on ``ln L``). The chosen share is the one with the lowest
predicted agent loss whose predicted general loss (mean of code and text) stays within
``general_tolerance`` of the all-general mixture's, at the largest size, within the grid's range.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, field_validator

from training.config import RunConfig, StageSection, from_profile, validate

#: the paper's fitted optimum share of agent data
PAPER_SHARE = 0.36
GENERAL_CATEGORIES = ("code", "text")
AGENT = "agent"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSize(_Strict):
    """One model size of the grid: Llama dims (the vocabulary is the pipeline tokenizer's)."""

    name: str
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int


class GridConfig(_Strict):
    """``research.grid``: agent shares x model sizes, each run trained from scratch for
    ``train_tokens`` tokens (``seq_len`` x ``micro_batch_size`` per step) on a mixture of
    ``mixture_tokens`` tokens (None: ``train_tokens``)."""

    shares: list[float] = [0.0, 0.2, 0.36, 0.5, 0.65, 0.8]
    sizes: list[ModelSize] = []
    train_tokens: int = 200_000
    mixture_tokens: int | None = None
    seq_len: int = 256
    micro_batch_size: int = 8
    lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 10

    @field_validator("shares")
    @classmethod
    def _shares_in_range(cls, v: list[float]) -> list[float]:
        if not v or any(not 0.0 <= s <= 1.0 for s in v):
            raise ValueError(f"shares must be a non-empty list of values in [0, 1], got {v}")
        return sorted(set(v))


class AblationConfig(_Strict):
    """``research.ablation``: the general base's pretraining (a ``training.stage1``-shaped block:
    max_steps, lr, ...) and the general mixture it reads (``general_tokens`` of code and text)."""

    base: dict[str, Any] = {}
    general_tokens: int = 200_000


class ResearchConfig(_Strict):
    """``research``: whether the study runs (off: its assets report a visible skip), the grid, the
    ablation, and the rule that picks the share."""

    enabled: bool = False
    grid: GridConfig = GridConfig()
    ablation: AblationConfig = AblationConfig()
    #: the chosen share keeps the general loss within this fraction of the all-general mixture's
    general_tolerance: float = 0.02
    #: MLflow registered model holding every ablation checkpoint (aliases: the arm names)
    registry_model: str = "hephaestus-ablation"


# ------------------------------------------------------------------------------------ ablation
@dataclass(frozen=True)
class Arm:
    """One checkpoint of the ablation: how it is trained (``command``), from which checkpoint
    (``parent``, None: from scratch), on which data (``general``, ``stage1``, ``stage2``, ``sft``),
    with which profile block (``section``)."""

    name: str
    command: str
    parent: str | None
    data: str
    section: str
    description: str


ARMS: tuple[Arm, ...] = (
    Arm("base", "cpt", None, "general", "base", "general base: code + text only, from scratch"),
    Arm("cpt1", "cpt", "base", "stage1", "stage1", "base -> CPT stage 1 (the mixture)"),
    Arm("cpt2", "cpt", "cpt1", "stage2", "stage2", "base -> CPT1 -> CPT stage 2 (seed agent data)"),
    Arm("control", "cpt", "base", "general", "control", "base -> general pretraining, tokens of CPT1+CPT2"),
    Arm("sft_base", "sft", "base", "sft", "sft", "base -> SFT"),
    Arm("sft_cpt1", "sft", "cpt1", "sft", "sft", "base -> CPT1 -> SFT"),
    Arm("sft_cpt2", "sft", "cpt2", "sft", "sft", "base -> CPT1 -> CPT2 -> SFT (the recipe)"),
    Arm("sft_control", "sft", "control", "sft", "sft", "base -> general (matched) -> SFT"),
)
ARM_BY_NAME = {arm.name: arm for arm in ARMS}


def tokens_per_step(cfg: RunConfig, world_size: int = 1) -> int:
    """Input tokens one optimizer step trains on (rows x seq_len)."""
    return cfg.schedule.micro_batch_size * cfg.schedule.grad_accum_steps * world_size * cfg.data.seq_len


def stage_tokens(cfg: RunConfig, world_size: int = 1) -> int:
    """Tokens a whole stage trains on."""
    return tokens_per_step(cfg, world_size) * cfg.schedule.max_steps


def matched_steps(reference: Sequence[RunConfig], cfg: RunConfig) -> int:
    """Steps of ``cfg`` that train on as many tokens as the ``reference`` stages together (rounded
    up: the control never sees fewer tokens than the arm it controls for)."""
    total = sum(stage_tokens(r) for r in reference)
    return max(1, math.ceil(total / tokens_per_step(cfg)))


def apply_section(cfg: RunConfig, block: dict[str, Any], where: str) -> RunConfig:
    """``cfg`` with a ``training.stage1``-shaped block applied (keys of StageSection; unknown keys
    are an error naming ``where``)."""
    names = {f.name for f in dataclasses.fields(StageSection)}
    unknown = sorted(set(block) - names)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(names)}")
    cfg = dataclasses.replace(
        cfg,
        optim=dataclasses.replace(cfg.optim),
        schedule=dataclasses.replace(cfg.schedule),
        data=dataclasses.replace(cfg.data),
    )
    for key, value in block.items():
        for part in (cfg.optim, cfg.schedule, cfg.data, cfg):
            if key in {f.name for f in dataclasses.fields(part)}:
                setattr(part, key, value)
                break
    return validate(cfg)


def arm_configs(
    model: dict[str, Any] | None,
    training: dict[str, Any] | None,
    research: ResearchConfig,
    *,
    models_dir: Path,
    tokenizer_dir: Path,
    data_dirs: dict[str, Path],
) -> dict[str, RunConfig]:
    """The RunConfig of every arm, in ARMS order. ``models_dir/<arm>`` is each arm's output (its
    export in ``hf/``); ``data_dirs`` maps ``general``/``stage1``/``stage2`` to packed shards and
    ``sft`` to the directory holding ``train.jsonl``."""
    out: dict[str, RunConfig] = {}
    for arm in ARMS:
        stage = {"base": "base", "control": "stage1"}.get(arm.section, arm.section)
        parent_hf = models_dir / arm.parent / "hf" if arm.parent else None
        cfg = from_profile(
            stage,
            model,
            training,
            output_dir=models_dir / arm.name,
            tokenizer_dir=tokenizer_dir,
            parent_hf=parent_hf,
            data=data_dirs[arm.data],
            name=f"ablation_{arm.name}",
        )
        if arm.name == "base":
            cfg = apply_section(cfg, research.ablation.base, "research.ablation.base")
        if arm.name == "control":
            cfg = apply_section(cfg, {}, "control")
            cfg.schedule.max_steps = matched_steps([out["cpt1"], out["cpt2"]], cfg)
        out[arm.name] = cfg
    return out


# ------------------------------------------------------------------------------------ the grid
def ratios_for_share(share: float) -> dict[str, float]:
    """Mixture ratios with agent share ``share``; the rest split evenly between code and text."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    ratios = {AGENT: share, **{c: (1.0 - share) / len(GENERAL_CATEGORIES) for c in GENERAL_CATEGORIES}}
    return {k: round(v, 6) for k, v in ratios.items() if v > 0}


def share_label(share: float) -> str:
    """A directory-safe name of a share: 0.36 -> ``s036``."""
    return f"s{round(share * 100):03d}"


def grid_run_config(
    model: dict[str, Any] | None,
    training: dict[str, Any] | None,
    grid: GridConfig,
    size: ModelSize,
    *,
    output_dir: Path,
    tokenizer_dir: Path,
    shards_dir: Path,
) -> RunConfig:
    """One grid run: a fresh model of ``size`` trained on ``shards_dir`` for ``grid.train_tokens``."""
    dims = size.model_dump(exclude={"name"})
    cfg = from_profile(
        "base",
        {**(model or {}), "init": "config", "name_or_path": None, **dims},
        training,
        output_dir=output_dir,
        tokenizer_dir=tokenizer_dir,
        parent_hf=None,
        data=shards_dir,
        name=f"grid_{size.name}",
    )
    block = {
        "seq_len": grid.seq_len,
        "micro_batch_size": grid.micro_batch_size,
        "grad_accum_steps": 1,
        "lr": grid.lr,
        "min_lr": grid.min_lr,
        "warmup_steps": grid.warmup_steps,
        "max_steps": max(1, grid.train_tokens // (grid.seq_len * grid.micro_batch_size)),
        "eval_every": 0,
        "checkpoint_every": 0,
    }
    return apply_section(cfg, block, "research.grid")


# ------------------------------------------------------------------------------------ the law
@dataclass(frozen=True)
class CategoryLaw:
    """``L(s, N) = c + exp(a + b*s + d*ln(N/1e6))`` for one category, with its fit quality."""

    c: float
    a: float
    b: float
    d: float
    form: str  # "c+exp(linear)" (curve_fit) or "exp(linear)" (least squares on ln L, c = 0)
    rmse: float
    n_points: int

    def predict(self, share: float | np.ndarray, n_params: float) -> np.ndarray:
        return self.c + np.exp(self.a + self.b * np.asarray(share) + self.d * math.log(n_params / 1e6))


def _design(shares: np.ndarray, sizes: np.ndarray, with_size: bool) -> np.ndarray:
    cols = [np.ones_like(shares), shares] + ([np.log(sizes / 1e6)] if with_size else [])
    return np.stack(cols, axis=1)


def fit_category(points: Sequence[tuple[float, float, float]]) -> CategoryLaw:
    """Fit one category's law to ``(share, n_params, loss)`` points (see the module docstring)."""
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim != 2 or len(arr) < 2:
        raise ValueError(f"a law needs >= 2 points, got {len(arr)}")
    if np.any(arr[:, 2] <= 0) or not np.all(np.isfinite(arr)):
        raise ValueError("losses must be finite and positive")
    s, n, y = arr[:, 0], arr[:, 1], arr[:, 2]
    with_size = len(np.unique(n)) > 1
    X = _design(s, n, with_size)
    coef, *_ = np.linalg.lstsq(X, np.log(y), rcond=None)
    a, b = float(coef[0]), float(coef[1])
    d = float(coef[2]) if with_size else 0.0
    law = CategoryLaw(0.0, a, b, d, "exp(linear)", 0.0, len(arr))
    n_free = 4 if with_size else 3
    if len(arr) > n_free and len(np.unique(s)) >= 3:
        try:
            from scipy.optimize import curve_fit

            def f(x, c, a_, b_, d_):
                return c + np.exp(a_ + b_ * x[0] + d_ * np.log(x[1] / 1e6))

            p0 = [0.0, a, b, d]
            lower, upper = (
                [0.0, -50, -50, -5 if with_size else -1e-9],
                [float(y.min()) * 0.999, 50, 50, 5 if with_size else 1e-9],
            )
            popt, _ = curve_fit(f, np.stack([s, n]), y, p0=p0, bounds=(lower, upper), maxfev=20000)
            law = CategoryLaw(*(float(v) for v in popt), "c+exp(linear)", 0.0, len(arr))
        except (RuntimeError, ValueError):
            pass  # the least-squares fit stands; `form` says which one was used
    rmse = float(np.sqrt(np.mean((_predict_points(law, s, n) - y) ** 2)))
    return dataclasses.replace(law, rmse=rmse)


def _predict_points(law: CategoryLaw, s: np.ndarray, n: np.ndarray) -> np.ndarray:
    return np.array([float(law.predict(si, ni)) for si, ni in zip(s, n, strict=True)])


def fit_law(records: Sequence[dict[str, Any]]) -> dict[str, CategoryLaw]:
    """One law per category from grid records ``{share, n_params, category, loss}``."""
    by_cat: dict[str, list[tuple[float, float, float]]] = {}
    for r in records:
        by_cat.setdefault(r["category"], []).append(
            (float(r["share"]), float(r["n_params"]), float(r["loss"]))
        )
    if AGENT not in by_cat or not any(c in by_cat for c in GENERAL_CATEGORIES):
        raise ValueError(f"the law needs agent and general losses; categories found: {sorted(by_cat)}")
    return {cat: fit_category(pts) for cat, pts in sorted(by_cat.items())}


def choose_share(
    laws: dict[str, CategoryLaw],
    n_params: float,
    *,
    max_share: float,
    tolerance: float = 0.02,
    step: float = 0.01,
) -> dict[str, Any]:
    """The rule: lowest predicted agent loss whose predicted general loss (mean over code and text)
    is within ``tolerance`` of the all-general mixture's (share 0), for shares in [0, max_share]."""
    grid = np.round(np.arange(0.0, max_share + 1e-9, step), 6)
    general = [c for c in GENERAL_CATEGORIES if c in laws]
    g = np.mean([laws[c].predict(grid, n_params) for c in general], axis=0)
    agent = laws[AGENT].predict(grid, n_params)
    ok = g <= g[0] * (1.0 + tolerance)
    idx = int(np.argmin(np.where(ok, agent, np.inf)))
    return {
        "share": float(grid[idx]),
        "n_params": n_params,
        "predicted_agent_loss": float(agent[idx]),
        "predicted_general_loss": float(g[idx]),
        "general_loss_at_zero": float(g[0]),
        "tolerance": tolerance,
        "max_share": max_share,
        "rule": f"lowest predicted agent loss with general loss <= (1 + {tolerance}) x the all-general run's",
        "paper_share": PAPER_SHARE,
    }


def law_summary(laws: dict[str, CategoryLaw]) -> dict[str, dict[str, Any]]:
    return {cat: dataclasses.asdict(law) for cat, law in laws.items()}


# ------------------------------------------------------------------------------------ plots
def plot_law(
    records: Sequence[dict[str, Any]], laws: dict[str, CategoryLaw], chosen: dict[str, Any], path: Path
) -> Path:
    """Measured held-out loss per category vs share (one marker per size), the fitted curves, the
    chosen share and the paper's 36%, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = sorted(laws)
    fig, axes = plt.subplots(1, len(cats), figsize=(4.2 * len(cats), 3.6), squeeze=False)
    sizes = sorted({float(r["n_params"]) for r in records})
    xs = np.linspace(0, max(float(r["share"]) for r in records), 101)
    for ax, cat in zip(axes[0], cats, strict=True):
        for i, n in enumerate(sizes):
            pts = sorted(
                (r["share"], r["loss"]) for r in records if r["category"] == cat and r["n_params"] == n
            )
            color = f"C{i}"
            ax.plot(
                [p[0] for p in pts], [p[1] for p in pts], "o", color=color, label=f"{n / 1e6:.1f}M measured"
            )
            ax.plot(xs, laws[cat].predict(xs, n), "-", color=color, alpha=0.7, label=f"{n / 1e6:.1f}M fit")
        ax.axvline(chosen["share"], color="k", ls="--", lw=1, label=f"chosen {chosen['share']:.2f}")
        ax.axvline(PAPER_SHARE, color="r", ls=":", lw=1, label=f"paper {PAPER_SHARE:.2f}")
        ax.set_title(f"{cat}: held-out loss")
        ax.set_xlabel("agent share of the mixture")
        ax.set_ylabel("nats / token")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_loss_curves(curves: dict[str, list[tuple[int, float]]], path: Path, title: str) -> Path:
    """Training loss against tokens seen, one line per run, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (name, pts) in enumerate(sorted(curves.items())):
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name, color=f"C{i % 10}")
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("training loss (nats / token)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def read_loss_curve(metrics_jsonl: Path, tokens_per_step_: int) -> list[tuple[int, float]]:
    """``(tokens seen, loss)`` from a run's metrics.jsonl (rows with a ``loss``)."""
    import json

    if not metrics_jsonl.exists():
        return []
    out = []
    for line in metrics_jsonl.read_text().splitlines():
        row = json.loads(line)
        if "loss" in row and "step" in row and row["loss"] is not None:
            out.append((int(row["step"]) * tokens_per_step_, float(row["loss"])))
    return out


# ------------------------------------------------------------------------------------ drivers
# The sequencing of the study with resume, shared by the research assets and bench/recipe_study.py;
# the corpus packing and the evaluation are handed in by the caller (training imports neither).
@dataclass(frozen=True)
class GridRun:
    size: ModelSize
    share: float

    @property
    def name(self) -> str:
        return f"{self.size.name}_{share_label(self.share)}"


def grid_runs(grid: GridConfig) -> list[GridRun]:
    """Every (size, share) of the grid, smallest model first."""
    if not grid.sizes:
        raise ValueError("research.grid.sizes is empty: the law needs at least one model size")
    return [GridRun(size, share) for size in grid.sizes for share in grid.shares]


def run_grid(
    grid: GridConfig,
    work: Path,
    *,
    pack: Any,
    train: Any,
    heldout_loss: Any,
    make_config: Any,
    log: Any = print,
    workers: int = 1,
) -> list[dict[str, Any]]:
    """Train and score every grid run; a run whose ``record.json`` exists is not redone (resume).

    ``pack(share, out_dir)`` packs the share's mixture (once per share, all before the first run);
    ``make_config(run, shards_dir, output_dir)`` gives its RunConfig; ``train(cfg)`` runs it and
    returns the training summary; ``heldout_loss(hf_dir)`` returns ``{category: nats per token}``.
    With ``workers`` > 1 that many runs train at once (threads, each waiting on its ``train``: on one
    GPU, models of a few million parameters leave most of it idle when trained one at a time); a
    run that fails raises after the others have finished and saved their records. ``heldout_loss``
    calls never overlap: loading a model (``from_pretrained``) patches process-wide state in
    transformers, and two loads at once leave parameters on the meta device. Returns one
    record ``{run, size, share, n_params, category, loss, tokens}`` per run and category, in
    :func:`grid_runs` order.
    """
    import json
    import threading
    from concurrent.futures import ThreadPoolExecutor

    runs = grid_runs(grid)
    load_lock = threading.Lock()

    def record_path(run: GridRun) -> Path:
        return work / "runs" / run.name / "record.json"

    todo = [run for run in runs if not record_path(run).exists()]
    for share in sorted({run.share for run in todo}):
        shards = work / "shards" / share_label(share)
        if not (shards / "_PACKED").exists():
            pack(share, shards)
            (shards / "_PACKED").write_text("ok\n")

    def one(run: GridRun) -> None:
        cfg = make_config(run, work / "shards" / share_label(run.share), work / "runs" / run.name)
        summary = train(cfg)
        with load_lock:
            losses = heldout_loss(Path(cfg.output_dir) / "hf")
        rows = [
            {
                "run": run.name,
                "size": run.size.name,
                "share": run.share,
                "n_params": summary["n_params_non_embedding"],
                "category": cat,
                "loss": loss,
                "tokens": stage_tokens(cfg),
            }
            for cat, loss in sorted(losses.items())
        ]
        done = record_path(run)
        done.parent.mkdir(parents=True, exist_ok=True)
        tmp = done.with_suffix(".tmp")
        tmp.write_text(json.dumps(rows))
        tmp.replace(done)
        log(f"grid {run.name}: " + ", ".join(f"{r['category']} {r['loss']:.3f}" for r in rows))

    if workers <= 1:
        for run in todo:
            one(run)
    else:
        with ThreadPoolExecutor(workers, thread_name_prefix="grid") as pool:
            futures = [pool.submit(one, run) for run in todo]
        for future in futures:
            future.result()  # the first failure, once every run has ended
    return [row for run in runs for row in json.loads(record_path(run).read_text())]


def fit_and_choose(records: Sequence[dict[str, Any]], tolerance: float) -> dict[str, Any]:
    """The law's parameters per category and the chosen share at the largest model size."""
    laws = fit_law(records)
    largest = max(float(r["n_params"]) for r in records)
    max_share = max(float(r["share"]) for r in records)
    chosen = choose_share(laws, largest, max_share=max_share, tolerance=tolerance)
    return {"laws": law_summary(laws), "chosen": chosen, "n_records": len(records)}


def laws_from_summary(summary: dict[str, dict[str, Any]]) -> dict[str, CategoryLaw]:
    return {cat: CategoryLaw(**params) for cat, params in summary.items()}


def law_markdown(law: dict[str, Any], records: list[dict[str, Any]]) -> str:
    """The grid's losses and the fitted parameters as Markdown."""
    cats = sorted({r["category"] for r in records})
    runs = sorted({(r["size"], r["n_params"], r["share"]) for r in records}, key=lambda x: (x[1], x[2]))
    loss = {(r["size"], r["share"], r["category"]): r["loss"] for r in records}
    lines = ["| size | non-emb params | agent share | " + " | ".join(f"{c} loss" for c in cats) + " |"]
    lines.append("|---|---:|---:|" + "---:|" * len(cats))
    for size, n, share in runs:
        cells = " | ".join(f"{loss[(size, share, c)]:.4f}" for c in cats)
        lines.append(f"| {size} | {n:,} | {share:.2f} | {cells} |")
    lines += [
        "",
        "| category | form | c | a | b (share) | d (ln N) | rmse | points |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for cat, p in law["laws"].items():
        lines.append(
            f"| {cat} | {p['form']} | {p['c']:.4f} | {p['a']:.4f} | {p['b']:.4f} | {p['d']:.4f} | "
            f"{p['rmse']:.4f} | {p['n_points']} |"
        )
    ch = law["chosen"]
    lines += [
        "",
        f"Chosen agent share: **{ch['share']:.2f}** (paper: {ch['paper_share']:.2f}); rule: {ch['rule']}, "
        f"at {ch['n_params']:,.0f} non-embedding parameters, shares searched in [0, {ch['max_share']:.2f}].",
    ]
    return "\n".join(lines)
