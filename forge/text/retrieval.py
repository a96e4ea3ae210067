"""Seed -> retrieval: a classifier trained on the seed agent documents scores the general corpus.

The paper widens its high-quality seed data by retrieval: a classifier trained on the seed data
scores a large general corpus and keeps the documents that look like agent data. Here:

- **positives** are the seed agent documents (``raw.agent_documents`` with ``is_seed``: the
  stage-2 set), at most ``max_positive_docs_per_subcategory`` per subcategory (trajectories would
  otherwise drown the API documentation), each long document cut into up to
  ``chunks_per_positive_doc`` chunks of ``features.max_chars`` characters;
- **negatives** are general documents (``raw.code_documents`` + ``raw.text_documents``), a
  deterministic sample (smallest keyed hash of the ``doc_id``, so the order of the input does not
  matter) of at most ``max_negative_docs`` per fold;
- **features** are hashed word n-grams of a document's first ``features.max_chars`` characters
  (scikit-learn's ``HashingVectorizer``: no vocabulary to fit or store, so scoring streams), and
  the model a logistic regression. Scoring is a sparse dot product: >=5,000 documents/s on 2 cores
  (``bench/retrieval.py``).

The general documents being scored are also the negatives the model learns from, and a document a
model trained on would score biased low. So scoring is **cross-fitted**: every general document
falls in one of ``folds`` folds by a hash of its ``doc_id``; model ``k`` learns from the negatives
of the other folds and scores fold ``k`` only. Every score is out of sample.

The threshold comes from a precision-recall curve of held-out seed documents (positives,
``validation_pct`` of the seed, never trained on) against the general documents' out-of-fold
scores (negatives), by the configured :class:`ThresholdRule`. On that curve a "false positive" is a
general document that scores like seed data, which is what retrieval is after; so the rule's
precision is a knob, and the precision that matters is measured on a labelled sample of general
documents (``tests/fixtures/retrieval/labelled.jsonl``, :func:`precision_recall_at`).

Output, ``out_dir/part-0.parquet``: one row per scored general document (``doc_id``,
``source_table``, ``score``, ``fold``, ``is_retrieved``); dbt moves the retrieved ones from their
category (code/text) into the category ``retrieved``.
"""

from __future__ import annotations

import hashlib
import heapq
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


class ThresholdRule(StageConfig):
    """How the threshold is read off the precision-recall curve (seed held out vs general).

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

    features: RetrievalFeatures = RetrievalFeatures()
    threshold: ThresholdRule = ThresholdRule()
    #: cross-fitting folds (>= 2): a document is scored by a model that never saw it
    folds: int = 2
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
    x = hv.transform(list(positives) + list(negatives))
    y = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    clf = LogisticRegression(C=cfg.C, class_weight="balanced", max_iter=2000, random_state=cfg.seed)
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


def retrieve(
    cfg: RetrievalConfig,
    *,
    seed_dirs: Sequence[Path],
    general: Sequence[tuple[str, Path]],
    out_dir: Path,
) -> dict[str, Any]:
    """Train the cross-fitted seed classifier, score the general corpus, write the scores.

    ``seed_dirs``: ``raw.agent_documents`` directories (rows with ``is_seed`` are the positives);
    ``general``: ``(source_table, directory)`` pairs of the general corpus. Writes
    ``part-0.parquet`` (:data:`RETRIEVAL_SCORES`), ``models.npz`` (one weight vector per fold) and
    ``pr_curve.json``; returns counts, the threshold and the curve's summary.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: Counter = Counter()
    feats, k = cfg.features, cfg.folds

    # 1. positives: seed documents per subcategory (sampled), split into train / held out
    by_sub: dict[str, _Smallest] = {}
    for row in _iter_docs(seed_dirs, ["doc_id", "subcategory", "is_seed", "text"]):
        if not row.get("is_seed") or not row.get("text"):
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
        neg[fold_of(doc_id, k, cfg.seed)].offer(_key(doc_id, f"neg{cfg.seed}"), _head(text, feats.max_chars))
    n_neg = [len(s.heap) for s in neg]

    meta: dict[str, Any] = {"n_train_positive_chunks": len(train_pos), "n_heldout_seed": len(heldout_pos)}
    if not train_pos or sum(n_neg) == 0 or any(sum(n_neg) - n == 0 for n in n_neg):
        # Too little data to train (e.g. a corpus without seed or general documents): nothing is
        # retrieved, and the reason is reported, never raised.
        reason = "no_seed_documents" if not train_pos else "too_few_general_documents"
        rows = (
            {
                "doc_id": d,
                "source_table": t,
                "score": 0.0,
                "fold": fold_of(d, k, cfg.seed),
                "is_retrieved": False,
            }
            for t, d, _ in _general_docs(general, cfg.max_docs, counts)
        )
        from forge.core.io import write_parquet

        n = write_parquet(out_dir / "part-0.parquet", rows, RETRIEVAL_SCORES)
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
    scores_path = out_dir / ".scores.tmp.parquet"
    score_table = _score_corpus(cfg, general, models_path, scores_path, counts)
    gen_scores = score_table.column("score").to_numpy()

    # 5. the threshold: held-out seed (1) vs general (0), all scores out of sample
    held_scores = (
        np.mean([score_texts(heldout_pos, w, feats) for w in weights], axis=0)
        if heldout_pos
        else np.zeros(0, dtype=np.float32)
    )
    labels = np.r_[np.ones(len(held_scores), dtype=bool), np.zeros(len(gen_scores), dtype=bool)]
    curve = (
        precision_recall_curve(np.r_[held_scores, gen_scores], labels)
        if len(held_scores)
        else {
            "precision": [],
            "recall": [],
            "thresholds": [],
        }
    )
    threshold = choose_threshold(curve, cfg.threshold)
    retrieved = gen_scores >= threshold
    final = score_table.set_column(
        score_table.schema.get_field_index("is_retrieved"), "is_retrieved", pa.array(retrieved)
    )
    from forge.core.io import write_parquet

    write_parquet(out_dir / "part-0.parquet", final, RETRIEVAL_SCORES)
    scores_path.unlink(missing_ok=True)
    by_table = Counter(
        t for t, r in zip(final.column("source_table").to_pylist(), retrieved, strict=True) if r
    )
    at = precision_recall_at(np.r_[held_scores, gen_scores], labels, threshold) if len(held_scores) else {}
    atomic_write_json(out_dir / "pr_curve.json", {**_thin(curve), "threshold": threshold})
    return {
        **meta,
        "n_negatives_per_fold": n_neg,
        "n_scored": int(len(gen_scores)),
        "n_retrieved": int(retrieved.sum()),
        "retrieved_by_source_table": dict(by_table),
        "threshold": threshold,
        "threshold_rule": cfg.threshold.model_dump(mode="json"),
        "seed_vs_general_at_threshold": at,
        "heldout_seed_score_median": float(np.median(held_scores)) if len(held_scores) else None,
        "general_score_quantiles": {q: float(np.quantile(gen_scores, q / 100)) for q in (50, 90, 99)}
        if len(gen_scores)
        else {},
        "counts": dict(counts),
    }


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
