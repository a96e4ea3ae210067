"""One scorecard per model version: the benchmark numbers side by side, as data and as a table.

``build_scorecard`` takes the raw results of the evaluation steps, keyed by benchmark::

    {"model": "sft-v3",                      # optional label
     "bfcl": evaluate_bfcl(...) / score_items(...) result,
     "unseen_api": score_items(...) result,  # any other BFCL-format result works the same way
     "perplexity": perplexity(...) result}

and flattens them into rows ``{benchmark, metric, value, n}`` (accuracies as fractions, perplexity in
its own unit); a BFCL-format result's summary numbers come first, in the order of
:data:`contracts.bfcl.SUMMARY_ORDER`, then its categories. ``format_scorecard`` renders the rows as a fixed-width terminal table or Markdown
(for Dagster metadata / MLflow), with the card's ``notes`` under the table: which benchmarks ran on the
first N items of each category (``config.limit_per_category``, and for BFCL's multi-turn categories
``config.multi_turn_limit_per_category``), whose numbers are BFCL's partial evaluation and not
comparable to the leaderboard.
"""

from __future__ import annotations

from typing import Any

from contracts.bfcl import MULTI_TURN_CATEGORIES, OVERALL, SUMMARY_GROUPS, SUMMARY_ORDER

# Rows shown among the headline numbers: the headline summary groups, and perplexity.
_HEADLINE = (*(g.name for g in (*SUMMARY_GROUPS, OVERALL) if g.headline), "ppl")


def _bench_rows(benchmark: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    if "categories" in result:  # a BFCL-format result
        summary = result.get("summary", {})
        for name in SUMMARY_ORDER:
            if name in summary:
                part = summary[name]
                label = name if part.get("complete", True) else f"{name} (partial)"
                rows.append(
                    {"benchmark": benchmark, "metric": label, "value": part["accuracy"], "n": part["n"]}
                )
        rows += _stopped_rows(benchmark, result)
        if result.get("prompts_too_long"):  # single-turn items whose prompt outgrew the model's positions
            n = result.get("n_items") or len(result.get("rows", ())) or None
            value = result["prompts_too_long"] / n if n else None
            rows.append(
                {"benchmark": benchmark, "metric": NOT_GENERATED + "prompt_too_long", "value": value, "n": n}
            )
        for category, stats in result["categories"].items():
            rows.append(
                {"benchmark": benchmark, "metric": category, "value": stats["accuracy"], "n": stats["n"]}
            )
    elif "ppl" in result:
        rows.append(
            {"benchmark": benchmark, "metric": "ppl", "value": result["ppl"], "n": result.get("n_tokens")}
        )
        rows.append(
            {
                "benchmark": benchmark,
                "metric": "nll_per_token",
                "value": result["nll_per_token"],
                "n": result.get("n_tokens"),
            }
        )
    else:
        for key, value in result.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                rows.append({"benchmark": benchmark, "metric": key, "value": float(value), "n": None})
    return rows


#: metric prefix of the rows that count multi-turn conversations ended early (not accuracies)
STOPPED = "multi_turn ended early: "
#: metric prefix of the row that counts items never generated (their prompt past the model's positions)
NOT_GENERATED = "not generated: "
#: the prefixes of rows that are shares of items cut short or left out, not scores
COUNT_ROWS = (STOPPED, NOT_GENERATED)


def _stopped_rows(benchmark: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    """Multi-turn conversations that ended before their last turn, by reason (``multi_turn_stopped``:
    ``prompt_too_long`` past the model's context, ``step_limit``, ``environment_error``), each as the
    fraction of the multi-turn conversations: a ``multi_turn`` score of 0 with every conversation cut at
    the context says so beside it."""
    stopped = result.get("multi_turn_stopped") or {}
    n = (result.get("summary", {}).get("multi_turn") or {}).get("n")
    if not stopped or not n:
        return []
    return [
        {"benchmark": benchmark, "metric": STOPPED + reason, "value": count / n, "n": n}
        for reason, count in sorted(stopped.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def _limit_note(benchmark: str, result: dict[str, Any]) -> str | None:
    """What a limited run covered (``None``: every item), from the result's ``config``."""
    config = result.get("config") or {}
    limit, conversations = config.get("limit_per_category"), config.get("multi_turn_limit_per_category")
    if conversations is None:
        conversations = limit
    multi = any(c in MULTI_TURN_CATEGORIES for c in result.get("categories") or {})
    single = any(c not in MULTI_TURN_CATEGORIES for c in result.get("categories") or {})
    parts = []
    if single and limit is not None:
        parts.append(f"the first {limit} items of each category")
    if multi and conversations is not None:
        parts.append(f"the first {conversations} conversations of each multi-turn category")
    if not parts:
        return None
    return f"{benchmark}: {' and '.join(parts)} (a partial evaluation, not comparable to the leaderboard)"


def build_scorecard(results: dict[str, Any]) -> dict[str, Any]:
    """Flatten evaluation results into scorecard rows plus a few headline numbers, and notes on what a
    limited benchmark covered."""
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for benchmark, result in results.items():
        if benchmark == "model" or not isinstance(result, dict):
            continue
        rows.extend(_bench_rows(benchmark, result))
        if "categories" in result and (note := _limit_note(benchmark, result)) is not None:
            notes.append(note)
    headline = {}
    for row in rows:
        key = f"{row['benchmark']}/{row['metric']}"
        if row["metric"] in _HEADLINE:
            headline[key] = row["value"]
    return {"model": results.get("model"), "rows": rows, "headline": headline, "notes": notes}


def _cell(value: Any, metric: str) -> str:
    if value is None:
        return "-"
    if metric in ("ppl", "nll_per_token") or not isinstance(value, float) or value > 1.0:
        return f"{value:.3f}" if isinstance(value, float) else str(value)
    return f"{100 * value:.2f}%"


def format_scorecard(scorecard: dict[str, Any], style: str = "text") -> str:
    """Render as ``style="text"`` (fixed-width, for the terminal) or ``"markdown"`` (for metadata)."""
    header = ("benchmark", "metric", "value", "n")
    body = [
        (
            row["benchmark"],
            row["metric"],
            _cell(row["value"], row["metric"]),
            "-" if row["n"] is None else str(row["n"]),
        )
        for row in scorecard["rows"]
    ]
    title = f"Scorecard: {scorecard.get('model') or 'model'}"
    notes = scorecard.get("notes") or []
    if style == "markdown":
        lines = [f"**{title}**", "", "| " + " | ".join(header) + " |", "| --- | --- | ---: | ---: |"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        lines += ["", *(f"_{note}_" for note in notes)] if notes else []
        return "\n".join(lines)
    if style != "text":
        raise ValueError(f"unknown style {style!r}: use 'text' or 'markdown'")
    widths = [
        max(len(header[i]), *(len(cells[i]) for cells in body)) if body else len(header[i]) for i in range(4)
    ]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i >= 2 else cell.ljust(widths[i]) for i, cell in enumerate(cells)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    tail = ["", *(f"note: {note}" for note in notes)] if notes else []
    return "\n".join([title, line(header), rule, *(line(cells) for cells in body), *tail])


def _fmt_ci(scores: dict[str, float], key: str) -> str:
    if key not in scores:
        return "-"
    lo, hi = scores.get(f"{key}.lo"), scores.get(f"{key}.hi")
    main = f"{100 * scores[key]:.1f}"
    return f"{main} [{100 * lo:.1f}, {100 * hi:.1f}]" if lo is not None and hi is not None else main


def comparison_table(results: dict[str, dict[str, Any]], base: str = "base") -> str:
    """Checkpoints side by side as Markdown: one row per checkpoint (``results`` in order, each an
    :func:`evaluation.checkpoint.evaluate_checkpoint` result), accuracies in percent with their
    bootstrap 95% intervals per category, the teacher-forced NLL of the ground-truth calls,
    held-out perplexity per category and its retention (relative change against ``base``)."""
    from evaluation.checkpoint import flat_scores

    scores = {name: flat_scores(res) for name, res in results.items()}
    acc_keys = sorted(
        {k for s in scores.values() for k in s if ".acc." in k and not k.endswith((".lo", ".hi"))}
    )
    ll_keys = sorted({k for s in scores.values() for k in s if k.startswith("loglik_") and k.count(".") == 1})
    ppl_keys = sorted({k for s in scores.values() for k in s if k.startswith("ppl.")})
    base_scores = scores.get(base, {})
    header = ["checkpoint", *acc_keys, "humaneval.pass@1", *ll_keys, *ppl_keys]
    header += [f"retention.{k.removeprefix('ppl.')}" for k in ppl_keys]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for name, s in scores.items():
        cells = [name, *(_fmt_ci(s, k) for k in acc_keys), _fmt_ci(s, "humaneval.pass@1")]
        cells += [f"{s[k]:.3f}" if k in s else "-" for k in ll_keys]
        cells += [f"{s[k]:.2f}" if k in s else "-" for k in ppl_keys]
        for k in ppl_keys:
            if k in s and k in base_scores:
                cells.append(f"{100 * (s[k] / base_scores[k] - 1):+.1f}%")
            else:
                cells.append("-")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Accuracies in % with bootstrap 95% intervals over items; `loglik_*.nll`: nats per token of the "
        "ground-truth call given the prompt (lower is better); retention: change of held-out perplexity "
        f"against `{base}` (negative is better).",
    ]
    return "\n".join(lines)
