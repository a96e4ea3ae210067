"""The registered model's pyfunc class: conversations with tools in, generated assistant text out.

Input rows ``{"messages": [...], "tools": [...], "max_new_tokens": 128}`` (``tools`` and
``max_new_tokens`` optional; a pandas frame or a list of dicts); output: the generated assistant text per
row, tool calls written as ``<tool_call>`` blocks. The bound is a row's field, not an MLflow ``params``
entry: a signature inferred from the type hints has no params schema, and MLflow drops undeclared params. Logged as code by
:mod:`evaluation.pyfunc_model`; versions registered before 2026-12-05 were pickles of this class under
its old name, ``evaluation.registry.ToolCallingModel``, which still resolves.
"""

from __future__ import annotations

from typing import Any

from mlflow.pyfunc import PythonModel


class ToolCallingModel(PythonModel):
    """pyfunc: input rows ``{"messages": [...], "tools": [...]}`` → the generated assistant text."""

    def load_context(self, context: Any) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        hf_dir = context.artifacts["hf_dir"]
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(hf_dir)
        self.model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=dtype).to(self.device).eval()

    def predict(
        self, context: Any, model_input: list[dict[str, Any]], params: dict[str, Any] | None = None
    ) -> list[str]:  # the hints are MLflow's input and output schema
        """A reply per row; a row's ``max_new_tokens`` (default 128) bounds its reply."""
        from evaluation.generation.generate import generate

        rows = model_input.to_dict("records") if hasattr(model_input, "to_dict") else list(model_input)
        budgets = [int(r.get("max_new_tokens") or (params or {}).get("max_new_tokens") or 128) for r in rows]
        replies: list[str] = [""] * len(rows)
        for budget in sorted(set(budgets)):  # one generate call per budget, the replies in the rows' order
            index = [i for i, b in enumerate(budgets) if b == budget]
            prompts = [{"messages": rows[i]["messages"], "tools": rows[i].get("tools") or []} for i in index]
            for i, reply in zip(index, generate(self.model, self.tokenizer, prompts, budget, 8), strict=True):
                replies[i] = reply
        return replies
