"""Seed -> retrieval: a classifier trained on the seed agent documents scores the general corpus.

The paper widens its high-quality seed data by retrieval: a classifier trained on the seed data
scores a large general corpus and keeps the documents that look like agent data. Here:

- **positives** are the seed agent documents (``raw.agent_documents`` with ``is_seed``: the
  stage-2 set) or, with ``positives: agent``, every agent document (the API documentation of
  Python modules, hub cards and crawled signatures too), at most
  ``max_positive_docs_per_subcategory`` per subcategory (trajectories would otherwise drown the
  API documentation), each long document cut into up to ``chunks_per_positive_doc`` chunks of
  ``features.max_chars`` characters;
- **negatives** are general documents (``raw.code_documents`` + ``raw.text_documents``), a
  deterministic sample (smallest keyed hash of the ``doc_id``, so the order of the input does not
  matter) of at most ``max_negative_docs`` per fold. The general corpus holds agent-like documents
  itself (positive-unlabelled data), so ``negative_pruning_pct`` refits without the negatives the
  first fit scored highest;
- **features** are hashed word n-grams (optionally present/absent, ``binary``) of a document's first
  ``features.max_chars`` characters (scikit-learn's ``HashingVectorizer``: no vocabulary to fit or
  store, so scoring streams), and the model a logistic regression. Scoring is a sparse dot
  product, measured against the 5,000 documents/s target in ``bench/retrieval.py``.

The general documents being scored are also the negatives the model learns from, and a document a
model trained on would score biased low. So scoring is **cross-fitted**: every general document
falls in one of ``folds`` folds by a hash of its ``doc_id``; model ``k`` learns from the negatives
of the other folds and scores fold ``k`` only. Every score is out of sample.

The threshold is read off a precision-recall curve by the configured :class:`ThresholdRule`. With
a **labelled sample** (``labelled``: ``tests/fixtures/retrieval/labelled.jsonl``, 320 general
documents labelled by hand) the curve is that of its *calibration* split (``labelled_calibration_pct``
of it, by ``doc_id`` hash), and precision and recall are reported on its *test* split, which chose
nothing. A labelled document is never a negative (by id or by its head) and is scored by the model
of its fold. Without one, the curve is held-out seed documents (``validation_pct`` of the seed)
against the general documents' scores; there a "false positive" is a general document that scores
like seed data, which is what retrieval is after, so that curve's precision is only a knob.

Output, ``out_dir/part-0.parquet``: one row per scored general document (``doc_id``,
``source_table``, ``score``, ``fold``, ``is_retrieved``), and ``pr_curve.json``/``pr_curve.png``
(the curves, the threshold marked); dbt moves the retrieved ones from their category (code/text)
into the category ``retrieved``.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import model_validator

from forge.core.io import atomic_write_json, parquet_files, write_parquet_batches
from forge.core.stage import Stage, StageConfig

#: One row per scored general document. ``score`` is the out-of-fold probability of being seed-like.
RETRIEVAL_SCORES = pa.schema(
    [
        ("doc_id", pa.string()),
        ("source_table", pa.string()),
        ("score", pa.float32()),
        ("fold", pa.int16()),
        ("is_retrieved", pa.bool_()),
    ]
)


class RetrievalFeatures(StageConfig):
    """What the classifier sees of a document."""

    #: characters read from the head of each document (scoring cost grows with it)
    max_chars: int = 2000
    #: word n-grams 1..ngram_max (2 doubles the scoring cost; measured in bench/retrieval.py)
    ngram_max: Literal[1, 2] = 1
    #: hash space, 2**n_features_log2 columns
    n_features_log2: int = 20
    #: presence (1) instead of counts: a term repeated down a long listing counts once
    binary: bool = False


class ThresholdRule(StageConfig):
    """How the threshold is read off the precision-recall curve (the labelled calibration split, or
    seed held out vs general).

    ``min_precision``: the lowest score whose precision on the curve is at least ``min_precision``;
    ``max_f1``: the score of the best F1; ``fixed``: ``value`` as given.
    """

    rule: Literal["min_precision", "max_f1", "fixed"] = "min_precision"
    min_precision: float = 0.5
    value: float | None = None

    @model_validator(mode="after")
    def _check(self) -> ThresholdRule:
        if self.rule == "fixed" and self.value is None:
            raise ValueError("threshold.rule 'fixed' needs threshold.value")
        if not 0.0 < self.min_precision <= 1.0:
            raise ValueError(f"threshold.min_precision must be in (0, 1], got {self.min_precision}")
        return self


class RetrievalConfig(StageConfig):
    """``retrieval``: the seed classifier, its threshold and how much of the corpus it scores."""

    #: off: the stage writes an empty table and says so (a profile turns it on)
    enabled: bool = False
    #: the labelled sample (JSON lines, relative to the repository root) the threshold is chosen on
    #: and precision is measured on; None: the threshold comes from the seed-vs-general curve
    labelled: str | None = None
    #: percent of the labelled sample (by ``doc_id`` hash) the threshold is chosen on; precision
    #: and recall are reported on the rest, which never influences the threshold
    labelled_calibration_pct: int = 50
    features: RetrievalFeatures = RetrievalFeatures()
    threshold: ThresholdRule = ThresholdRule()
    #: cross-fitting folds (>= 2): a document is scored by a model that never saw it
    folds: int = 2
    #: the positives: ``seed`` (agent documents with ``is_seed``: OpenAPI documentation and
    #: trajectories, the stage-2 set) or ``agent`` (every agent document: the API documentation of
    #: Python modules, hub cards and crawled signatures too)
    positives: Literal["seed", "agent"] = "seed"
    max_positive_docs_per_subcategory: int = 2000
    chunks_per_positive_doc: int = 8
    #: general documents sampled as negatives, per fold
    max_negative_docs: int = 20000
    #: percent of the seed documents held out for the precision-recall curve
    validation_pct: int = 20
    #: general documents scored (None: all); the rest are counted as ``over_max_docs``
    max_docs: int | None = None
    #: inverse L2 regularization strength of the logistic regression
    C: float = 4.0
    #: percent of the training negatives dropped before a second fit: those the first model scores
    #: highest. The general corpus holds agent-like documents (positive-unlabelled data); learning
    #: them as negatives teaches the model the seed's style instead of its content. 0: one fit
    negative_pruning_pct: int = 0
    seed: int = 0
    #: documents per scoring batch and scoring processes: speed only
    batch_size: int = 4096
    workers: int = 2

    speed_only = frozenset({"batch_size", "workers"})

    @model_validator(mode="after")
    def _check(self) -> RetrievalConfig:
        if self.folds < 2:
            raise ValueError(f"retrieval.folds must be >= 2 (cross-fitting), got {self.folds}")
        if not 0 < self.validation_pct < 100:
            raise ValueError(f"retrieval.validation_pct must be in 1..99, got {self.validation_pct}")
        if not 0 <= self.negative_pruning_pct < 100:
            raise ValueError(
                f"retrieval.negative_pruning_pct must be in 0..99, got {self.negative_pruning_pct}"
            )
        if not 0 < self.labelled_calibration_pct < 100:
            raise ValueError(
                f"retrieval.labelled_calibration_pct must be in 1..99, got {self.labelled_calibration_pct}"
            )
        return self


# ---------------------------------------------------------------------------------------------
# features and model


def vectorizer(features: RetrievalFeatures):
    """The hashing vectorizer of ``features``: stateless, so every process builds the same one."""
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        n_features=2**features.n_features_log2,
        ngram_range=(1, features.ngram_max),
        alternate_sign=False,
        # words and single punctuation marks: braces, colons and slashes mark API docs and code
        token_pattern=r"(?u)\b\w+\b|[^\w\s]",
        norm="l2",
        binary=features.binary,
        dtype=np.float32,
    )


def _head(text: str | None, max_chars: int) -> str:
    return (text or "")[:max_chars]


def _key(doc_id: str, salt: str) -> int:
    """A stable pseudo-random key of a document (sampling, folds, held-out split)."""
    return int.from_bytes(hashlib.blake2b(f"{salt}|{doc_id}".encode(), digest_size=8).digest(), "big")


def fold_of(doc_id: str, folds: int, seed: int = 0) -> int:
    return _key(doc_id, f"fold{seed}") % folds


def _chunks(text: str, size: int, n: int) -> list[str]:
    return [text[i : i + size] for i in range(0, min(len(text), n * size), size)] or [""]


def train_model(positives: Sequence[str], negatives: Sequence[str], cfg: RetrievalConfig) -> np.ndarray:
    """Fit the logistic regression; return its weights with the intercept last (float32)."""
    from sklearn.linear_model import LogisticRegression

    if not positives or not negatives:
        raise ValueError(
            f"training needs both classes: {len(positives)} positives, {len(negatives)} negatives"
        )
    hv = vectorizer(cfg.features)
    n_pos = len(positives)
    x = hv.transform(list(positives) + list(negatives))
    y = np.r_[np.ones(n_pos), np.zeros(len(negatives))]
    clf = LogisticRegression(C=cfg.C, class_weight="balanced", max_iter=2000, random_state=cfg.seed)
    clf.fit(x, y)
    n_drop = len(negatives) * cfg.negative_pruning_pct // 100
    if n_drop:
        # the negatives that look most like the seed are probably agent-like: fit again without them
        neg_scores = clf.decision_function(x[n_pos:])
        keep = np.sort(np.argsort(neg_scores, kind="stable")[: len(negatives) - n_drop])
        x = x[np.r_[np.arange(n_pos), n_pos + keep]]
        y = np.r_[np.ones(n_pos), np.zeros(len(keep))]
        clf.fit(x, y)
    return np.r_[clf.coef_[0], clf.intercept_[0]].astype(np.float32)


def score_texts(texts: Sequence[str], weights: np.ndarray, features: RetrievalFeatures) -> np.ndarray:
    """Probabilities (float32) that each text is seed-like: hashed features, a dot product, a sigmoid."""
    if not len(texts):
        return np.zeros(0, dtype=np.float32)
    x = vectorizer(features).transform([_head(t, features.max_chars) for t in texts])
    logits = x @ weights[:-1] + weights[-1]
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


_WORKER_MODELS: dict[str, np.ndarray] = {}


def _score_batch(item: tuple[str, dict[str, Any], list[int], list[str]]) -> np.ndarray:
    """Worker entry: score one batch with the fold models stored at ``models_path`` (loaded once per process)."""
    models_path, features, folds, texts = item
    if models_path not in _WORKER_MODELS:
        _WORKER_MODELS.clear()
        _WORKER_MODELS[models_path] = np.load(models_path)["weights"]
    weights = _WORKER_MODELS[models_path]
    feats = RetrievalFeatures(**features)
    folds_arr = np.asarray(folds)
    out = np.zeros(len(texts), dtype=np.float32)
    for k in np.unique(folds_arr):
        idx = np.flatnonzero(folds_arr == k)
        out[idx] = score_texts([texts[i] for i in idx], weights[k], feats)
    return out


# ---------------------------------------------------------------------------------------------
# threshold


def precision_recall_curve(scores: np.ndarray, labels: np.ndarray) -> dict[str, list[float]]:
    """Precision and recall at every distinct score used as the threshold (score >= threshold)."""
    from sklearn.metrics import precision_recall_curve as pr

    precision, recall, thresholds = pr(labels.astype(int), scores)
    return {
        "precision": precision[:-1].tolist(),
        "recall": recall[:-1].tolist(),
        "thresholds": thresholds.tolist(),
    }


def choose_threshold(curve: dict[str, list[float]], rule: ThresholdRule) -> float:
    """The threshold ``rule`` picks on ``curve`` (see :class:`ThresholdRule`); 1.0 on an empty curve."""
    if rule.rule == "fixed":
        assert rule.value is not None
        return float(rule.value)
    p, r, t = (np.asarray(curve[k], dtype=float) for k in ("precision", "recall", "thresholds"))
    if not len(t):
        return 1.0
    if rule.rule == "max_f1":
        f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
        return float(t[int(np.argmax(f1))])
    ok = np.flatnonzero(p >= rule.min_precision)
    return float(t[ok[0]]) if len(ok) else float(t[-1])


def precision_recall_at(scores: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall and counts of ``score >= threshold`` against boolean ``labels``."""
    pred = scores >= threshold
    tp = int(np.sum(pred & labels))
    fp = int(np.sum(pred & ~labels))
    fn = int(np.sum(~pred & labels))
    return {
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "n_predicted": int(pred.sum()),
        "n_positive": int(labels.sum()),
        "n": len(labels),
    }


# ---------------------------------------------------------------------------------------------
# reading


def _iter_docs(
    dirs: Iterable[Path], columns: Sequence[str], batch_size: int = 4096
) -> Iterator[dict[str, Any]]:
    """Rows (only ``columns``) of every Parquet file under ``dirs``, a record batch at a time."""
    for f in parquet_files([d for d in dirs if Path(d).exists()]):
        pf = pq.ParquetFile(f)
        have = [c for c in columns if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(batch_size=batch_size, columns=have):
            yield from batch.to_pylist()


class _Smallest:
    """The ``k`` items with the smallest keys seen so far (a deterministic sample of a stream)."""

    def __init__(self, k: int) -> None:
        self.k, self.heap = k, []  # max-heap by negated key

    def offer(self, key: int, item: Any) -> None:
        if self.k <= 0:
            return
        if len(self.heap) < self.k:
            heapq.heappush(self.heap, (-key, item))
        elif -self.heap[0][0] > key:
            heapq.heapreplace(self.heap, (-key, item))

    def items(self) -> list[Any]:
        return [item for _, item in sorted(self.heap, key=lambda kv: -kv[0])]


def _general_docs(
    general: Sequence[tuple[str, Path]], max_docs: int | None, counts: Counter
) -> Iterator[tuple[str, str, str]]:
    """(source_table, doc_id, text) of the general corpus, in file order, at most ``max_docs``."""
    n = 0
    for table, directory in general:
        for row in _iter_docs([directory], ["doc_id", "text"]):
            if not row.get("doc_id"):
                counts["dropped_no_doc_id"] += 1
                continue
            if max_docs is not None and n >= max_docs:
                counts["over_max_docs"] += 1
                continue
            n += 1
            yield table, row["doc_id"], row.get("text") or ""


# ---------------------------------------------------------------------------------------------
# the stage


def _labelled_rows(path: Path | None, counts: Counter) -> list[dict[str, Any]]:
    """The labelled sample (JSON lines: ``doc_id``, ``text``, boolean ``is_agent_like``); a line
    that is not such an object is a counted skip (``labelled_bad_line``)."""
    if path is None:
        return []
    rows, seen = [], set()
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                ok = (
                    isinstance(row, dict)
                    and isinstance(row.get("doc_id"), str)
                    and isinstance(row.get("text"), str)
                    and isinstance(row.get("is_agent_like"), bool)
                    and row["doc_id"] not in seen
                )
            except json.JSONDecodeError:
                ok = False
            if not ok:
                counts["labelled_bad_line"] += 1
                continue
            seen.add(row["doc_id"])
            rows.append(row)
    return rows


def labelled_split(doc_id: str, calibration_pct: int, seed: int = 0) -> str:
    """``calibration`` (the threshold is chosen there) or ``test`` (precision and recall are
    reported there), by a stable hash of the labelled document's id."""
    return "calibration" if _key(doc_id, f"labelled{seed}") % 100 < calibration_pct else "test"


def _ranking(scores: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    """Average precision and ROC AUC (None when a class is missing)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    if labels.all() or not labels.any():
        return {
            "average_precision": None,
            "roc_auc": None,
            "base_rate": float(labels.mean()) if len(labels) else None,
        }
    return {
        "average_precision": float(average_precision_score(labels, scores)),
        "roc_auc": float(roc_auc_score(labels, scores)),
        "base_rate": float(labels.mean()),
    }


def plot_pr_curves(curves: dict[str, dict[str, list[float]]], threshold: float, path: Path) -> Path:
    """Precision against recall for each named curve, the chosen threshold's point marked on each,
    as a PNG (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from forge.core.io import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    for i, (name, curve) in enumerate(curves.items()):
        if not curve["thresholds"]:
            continue
        color = f"C{i}"
        ax.plot(curve["recall"], curve["precision"], "-", color=color, label=name)
        t = np.asarray(curve["thresholds"])
        j = int(np.searchsorted(t, threshold)) if t[0] <= t[-1] else 0
        j = min(j, len(t) - 1)
        ax.plot([curve["recall"][j]], [curve["precision"][j]], "o", color=color)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"retrieval: precision-recall (threshold {threshold:.3f} marked)")
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _empty_scores(
    cfg: RetrievalConfig, general: Sequence[tuple[str, Path]], out_dir: Path, counts: Counter
) -> int:
    """Every general document with score 0, none retrieved (a skip whose reason is reported)."""
    from forge.core.io import write_parquet

    rows = (
        {
            "doc_id": d,
            "source_table": t,
            "score": 0.0,
            "fold": fold_of(d, cfg.folds, cfg.seed),
            "is_retrieved": False,
        }
        for t, d, _ in _general_docs(general, cfg.max_docs, counts)
    )
    return write_parquet(out_dir / "part-0.parquet", rows, RETRIEVAL_SCORES)


def retrieve(
    cfg: RetrievalConfig,
    *,
    seed_dirs: Sequence[Path],
    general: Sequence[tuple[str, Path]],
    out_dir: Path,
    labelled_path: Path | None = None,
) -> dict[str, Any]:
    """Train the cross-fitted seed classifier, score the general corpus, write the scores.

    ``seed_dirs``: ``raw.agent_documents`` directories (rows with ``is_seed`` are the positives);
    ``general``: ``(source_table, directory)`` pairs of the general corpus; ``labelled_path``: the
    labelled sample the threshold is chosen on (its calibration split) and measured on (its test
    split). Writes ``part-0.parquet`` (:data:`RETRIEVAL_SCORES`), ``models.npz`` (one weight
    vector per fold), ``pr_curve.json`` and ``pr_curve.png``; returns counts, the threshold, how it
    was chosen and the precision and recall measured.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: Counter = Counter()
    feats, k = cfg.features, cfg.folds
    if not cfg.enabled:
        # the visible skip: an empty table (dbt reads nothing from it while the profile keeps
        # retrieval off) and the reason
        from forge.core.io import write_parquet

        write_parquet(out_dir / "part-0.parquet", [], RETRIEVAL_SCORES)
        return {"skipped": "retrieval.enabled is false", "n_scored": 0, "n_retrieved": 0}

    # 0. the labelled sample: never a negative (by id or by its head), scored by its fold's model
    labelled = _labelled_rows(labelled_path, counts)
    labelled_ids = {r["doc_id"] for r in labelled}
    labelled_heads = {_head(r["text"], feats.max_chars) for r in labelled}

    # 1. positives: seed documents per subcategory (sampled), split into train / held out
    by_sub: dict[str, _Smallest] = {}
    for row in _iter_docs(seed_dirs, ["doc_id", "subcategory", "is_seed", "text"]):
        if not row.get("text") or (cfg.positives == "seed" and not row.get("is_seed")):
            continue
        sub = row.get("subcategory") or "unknown"
        sample = by_sub.setdefault(sub, _Smallest(cfg.max_positive_docs_per_subcategory))
        sample.offer(_key(row["doc_id"], f"pos{cfg.seed}"), (row["doc_id"], row["text"]))
    train_pos: list[str] = []
    heldout_pos: list[str] = []
    for sub, sample in sorted(by_sub.items()):
        for doc_id, text in sample.items():
            if _key(doc_id, f"val{cfg.seed}") % 100 < cfg.validation_pct:
                heldout_pos.append(_head(text, feats.max_chars))
                counts[f"heldout_seed_{sub}"] += 1
            else:
                train_pos.extend(_chunks(text, feats.max_chars, cfg.chunks_per_positive_doc))
                counts[f"train_seed_{sub}"] += 1

    # 2. negatives: a deterministic sample of general documents per fold
    neg = [_Smallest(cfg.max_negative_docs) for _ in range(k)]
    for _table, doc_id, text in _general_docs(general, cfg.max_docs, Counter()):
        head = _head(text, feats.max_chars)
        if doc_id in labelled_ids or head in labelled_heads:
            counts["negatives_skipped_labelled"] += 1
            continue
        neg[fold_of(doc_id, k, cfg.seed)].offer(_key(doc_id, f"neg{cfg.seed}"), head)
    n_neg = [len(s.heap) for s in neg]

    meta: dict[str, Any] = {"n_train_positive_chunks": len(train_pos), "n_heldout_seed": len(heldout_pos)}
    if not train_pos or sum(n_neg) == 0 or any(sum(n_neg) - n == 0 for n in n_neg):
        # Too little data to train (e.g. a corpus without seed or general documents): nothing is
        # retrieved, and the reason is reported, never raised.
        reason = "no_seed_documents" if not train_pos else "too_few_general_documents"
        n = _empty_scores(cfg, general, out_dir, counts)
        return {**meta, "skipped": reason, "n_scored": n, "n_retrieved": 0, "counts": dict(counts)}

    # 3. one model per fold, trained on the other folds' negatives
    weights = np.stack(
        [
            train_model(train_pos, [t for j in range(k) if j != f for t in neg[j].items()], cfg)
            for f in range(k)
        ]
    )
    models_path = out_dir / "models.npz"
    tmp = out_dir / ".models.tmp.npz"
    np.savez(tmp, weights=weights)
    tmp.replace(models_path)

    # 4. score every general document out of fold (streamed in batches over worker processes)
    work = out_dir / "_work"  # outside the *.parquet glob dbt reads
    work.mkdir(exist_ok=True)
    score_table = _score_corpus(cfg, general, models_path, work / "scores.parquet", counts)
    gen_scores = score_table.column("score").to_numpy()

    # 5. curves. Seed held out (1) vs general (0), all out of sample: a diagnostic (a general
    # document that scores like seed data is what retrieval is after, so its "precision" is not
    # the retrieval's). The labelled sample, scored by the model of its fold: calibration and test.
    held_scores = (
        np.mean([score_texts(heldout_pos, w, feats) for w in weights], axis=0)
        if heldout_pos
        else np.zeros(0, dtype=np.float32)
    )
    seed_labels = np.r_[np.ones(len(held_scores), dtype=bool), np.zeros(len(gen_scores), dtype=bool)]
    empty: dict[str, list[float]] = {"precision": [], "recall": [], "thresholds": []}
    seed_curve = (
        precision_recall_curve(np.r_[held_scores, gen_scores], seed_labels) if len(held_scores) else empty
    )
    lab_scores = np.zeros(len(labelled), dtype=np.float32)
    lab_folds = np.array([fold_of(r["doc_id"], k, cfg.seed) for r in labelled], dtype=int)
    for f in range(k):
        idx = np.flatnonzero(lab_folds == f)
        lab_scores[idx] = score_texts([labelled[i]["text"] for i in idx], weights[f], feats)
    lab_y = np.array([r["is_agent_like"] for r in labelled], dtype=bool)
    is_cal = np.array(
        [
            labelled_split(r["doc_id"], cfg.labelled_calibration_pct, cfg.seed) == "calibration"
            for r in labelled
        ],
        dtype=bool,
    )
    cal_ok = bool(is_cal.any() and lab_y[is_cal].any() and not lab_y[is_cal].all())
    cal_curve = precision_recall_curve(lab_scores[is_cal], lab_y[is_cal]) if cal_ok else empty
    test_curve = (
        precision_recall_curve(lab_scores[~is_cal], lab_y[~is_cal])
        if (~is_cal).any() and lab_y[~is_cal].any() and not lab_y[~is_cal].all()
        else empty
    )

    # 6. the threshold: by the rule, on the labelled calibration split when there is one, else on
    # the seed-vs-general curve
    source = "labelled_calibration" if cal_ok else "seed_vs_general"
    threshold = choose_threshold(cal_curve if cal_ok else seed_curve, cfg.threshold)
    retrieved = gen_scores >= threshold
    final = score_table.set_column(
        score_table.schema.get_field_index("is_retrieved"), "is_retrieved", pa.array(retrieved)
    )
    from forge.core.io import write_parquet

    write_parquet(out_dir / "part-0.parquet", final, RETRIEVAL_SCORES)
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    by_table = Counter(
        t for t, r in zip(final.column("source_table").to_pylist(), retrieved, strict=True) if r
    )
    labelled_meta: dict[str, Any] = {}
    for split, mask in (("calibration", is_cal), ("test", ~is_cal)):
        if mask.any():
            labelled_meta[split] = {
                **precision_recall_at(lab_scores[mask], lab_y[mask], threshold),
                **_ranking(lab_scores[mask], lab_y[mask]),
            }
    curves = {
        "labelled calibration": cal_curve,
        "labelled test": test_curve,
        "seed held out vs general": seed_curve,
    }
    atomic_write_json(
        out_dir / "pr_curve.json",
        {"threshold": threshold, "threshold_source": source, **{n: _thin(c) for n, c in curves.items()}},
    )
    plot_pr_curves({n: _thin(c) for n, c in curves.items()}, threshold, out_dir / "pr_curve.png")
    at = (
        precision_recall_at(np.r_[held_scores, gen_scores], seed_labels, threshold)
        if len(held_scores)
        else {}
    )
    result = {
        **meta,
        "n_negatives_per_fold": n_neg,
        "n_scored": int(len(gen_scores)),
        "n_retrieved": int(retrieved.sum()),
        "retrieved_by_source_table": dict(by_table),
        "threshold": threshold,
        "threshold_source": source,
        "threshold_rule": cfg.threshold.model_dump(mode="json"),
        "labelled": labelled_meta,
        "seed_vs_general_at_threshold": at,
        "heldout_seed_score_median": float(np.median(held_scores)) if len(held_scores) else None,
        "general_score_quantiles": {q: float(np.quantile(gen_scores, q / 100)) for q in (50, 90, 99)}
        if len(gen_scores)
        else {},
        "counts": dict(counts),
    }
    result["labelled_md"] = labelled_markdown(result)
    return result


def retrieval_metrics(meta: dict[str, Any]) -> dict[str, float]:
    """The numbers of a run's metadata as flat metric names (MLflow): threshold, counts, and per
    labelled split its precision, recall, average precision and ROC AUC (missing ones left out)."""
    out: dict[str, float] = {}
    for key in ("threshold", "n_scored", "n_retrieved", "n_train_positive_chunks", "n_heldout_seed"):
        if isinstance(meta.get(key), int | float):
            out[key] = float(meta[key])
    for split, values in (meta.get("labelled") or {}).items():
        for key, value in values.items():
            if isinstance(value, int | float) and not (isinstance(value, float) and np.isnan(value)):
                out[f"labelled_{split}_{key}"] = float(value)
    return out


def labelled_markdown(meta: dict[str, Any]) -> str:
    """The labelled sample's precision and recall at the threshold, per split, as a Markdown table."""
    lines = [
        f"threshold **{meta.get('threshold', float('nan')):.4f}** ({meta.get('threshold_source')}, "
        f"rule {meta.get('threshold_rule')})",
        "",
        "| labelled split | documents | agent-like | predicted | precision | recall | avg precision | ROC AUC |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def f(v: Any) -> str:
        return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.3f}"

    for split, m in (meta.get("labelled") or {}).items():
        lines.append(
            f"| {split} | {m['n']} | {m['n_positive']} | {m['n_predicted']} | {f(m['precision'])} | "
            f"{f(m['recall'])} | {f(m['average_precision'])} | {f(m['roc_auc'])} |"
        )
    return "\n".join(lines)


def _score_corpus(
    cfg: RetrievalConfig,
    general: Sequence[tuple[str, Path]],
    models_path: Path,
    tmp_path: Path,
    counts: Counter,
) -> pa.Table:
    """Score the general corpus batch by batch (``cfg.workers`` processes); the scores as a table."""
    from forge.core.parallel import ordered_map

    feats = cfg.features.model_dump()

    def batches() -> Iterator[tuple[list[str], list[str], list[int], list[str]]]:
        tables, ids, folds, texts = [], [], [], []
        for table, doc_id, text in _general_docs(general, cfg.max_docs, counts):
            tables.append(table)
            ids.append(doc_id)
            folds.append(fold_of(doc_id, cfg.folds, cfg.seed))
            texts.append(_head(text, cfg.features.max_chars))
            if len(ids) >= cfg.batch_size:
                yield tables, ids, folds, texts
                tables, ids, folds, texts = [], [], [], []
        if ids:
            yield tables, ids, folds, texts

    def record_batches() -> Iterator[pa.RecordBatch]:
        pending: list[tuple[list[str], list[str], list[int]]] = []

        def items() -> Iterator[tuple[str, dict[str, Any], list[int], list[str]]]:
            for tables, ids, folds, texts in batches():
                pending.append((tables, ids, folds))
                yield str(models_path), feats, folds, texts

        for scores in ordered_map(_score_batch, items(), cfg.workers):
            tables, ids, folds = pending.pop(0)
            yield pa.RecordBatch.from_arrays(
                [
                    pa.array(ids, pa.string()),
                    pa.array(tables, pa.string()),
                    pa.array(scores, pa.float32()),
                    pa.array(folds, pa.int16()),
                    pa.array(np.zeros(len(ids), dtype=bool)),
                ],
                schema=RETRIEVAL_SCORES,
            )

    write_parquet_batches(tmp_path, record_batches(), RETRIEVAL_SCORES)
    return pq.read_table(tmp_path)


def _thin(curve: dict[str, list[float]], n: int = 400) -> dict[str, list[float]]:
    """At most ``n`` evenly spaced points of a curve (a plot and a JSON file need no more)."""
    m = len(curve["thresholds"])
    if m <= n:
        return curve
    idx = np.linspace(0, m - 1, n).round().astype(int)
    return {key: [values[i] for i in idx] for key, values in curve.items()}


RETRIEVAL_STAGE = Stage("retrieval", RetrievalConfig, retrieve)
