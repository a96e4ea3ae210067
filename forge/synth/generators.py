"""LLM text generators for synthesized trajectories (the :class:`forge.synth.trajectories.TextGenerator`
protocol): a local transformers causal LM, or an OpenAI-compatible chat-completions endpoint.

An LLM writes the user request and the final answer; the calls, arguments and observations stay
those of the executor. A request must state every scalar argument value the call uses (so the
request and the arguments agree and a model can learn to copy them); a reply that does not, that
is empty, or that fails (timeout, HTTP error after retries) is replaced by the template text and
counted in ``counts`` by reason (``fallback:<reason>``); ``counts["llm_ok"]`` counts accepted
replies. Build one from profile configuration with :func:`make_generator`.
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from forge.text.render import TemplateGenerator, action_phrase

log = logging.getLogger(__name__)

_SYSTEM = (
    "You write realistic text for tool-use training data. Reply with the requested text only, "
    "no preamble, no quotes."
)


def scalar_values(args: Any) -> list[str]:
    """The scalar values inside call arguments, as text a request must contain (booleans and
    None are skipped: they are phrased, not quoted)."""
    out: list[str] = []
    todo = [args]
    while todo:
        v = todo.pop()
        if isinstance(v, dict):
            todo.extend(v.values())
        elif isinstance(v, list):
            todo.extend(v)
        elif isinstance(v, str | int | float) and not isinstance(v, bool):
            out.append(str(v))
    return out


def missing_values(text: str, args_list: list[dict]) -> list[str]:
    """Argument values not found in ``text`` (case-insensitive; 3.0 also matches '3')."""
    low = text.lower()
    missing = []
    for args in args_list:
        for v in scalar_values(args):
            alt = v[:-2] if v.endswith(".0") else v
            if v.lower() not in low and alt.lower() not in low:
                missing.append(v)
    return missing


class LLMGenerator:
    """Prompts, checks and fallback shared by the LLM generators; subclasses implement
    :meth:`complete` (chat messages -> text, raising on failure)."""

    name = "llm"

    def __init__(self, *, fallback: TemplateGenerator | None = None, max_request_chars: int = 1200) -> None:
        self.fallback = fallback or TemplateGenerator()
        self.max_request_chars = max_request_chars
        self.counts: Counter = Counter()

    def complete(self, messages: list[dict[str, str]], *, seed: int = 0) -> str:
        raise NotImplementedError

    def _ask(self, prompt: str, rng: random.Random) -> tuple[str | None, str]:
        """(text, "") or (None, reason). The sampling seed comes from the trajectory's rng."""
        messages = [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": prompt}]
        try:
            text = self.complete(messages, seed=rng.getrandbits(31))
        except Exception as exc:  # any backend failure falls back to templates, counted
            log.warning("%s: generation failed: %s", self.name, exc)
            return None, f"error_{type(exc).__name__}"
        text = (text or "").strip().strip('"').strip()
        if not text:
            return None, "empty"
        if len(text) > self.max_request_chars:
            return None, "too_long"
        return text, ""

    def write_request(
        self, ops: list[dict], args: list[dict], *, pattern: str, rng: random.Random, link: dict | None = None
    ) -> str:
        tasks = "\n".join(
            f"- {action_phrase(op)} (function {op.get('function_name')}) with arguments "
            f"{json.dumps(a, ensure_ascii=False, sort_keys=True)}"
            for op, a in zip(ops, args, strict=True)
        )
        extra = ""
        if pattern == "parallel":
            extra = " The user wants the same action done once for each argument set."
        elif pattern == "multi_step" and link:
            extra = (
                f" The second step must use the {link['field']} returned by the first step "
                f"(do not invent it)."
            )
        elif pattern == "irrelevance":
            extra = " Write the request even though no tool will be able to serve it."
        prompt = (
            f"Write one message a user would send to an assistant asking it to do the following.{extra} "
            f"Mention every argument value exactly as given.\n{tasks}"
        )
        text, reason = self._ask(prompt, rng)
        if text is not None and pattern != "irrelevance":
            shown = list(args)
            if pattern == "multi_step" and link and len(shown) > 1:
                shown[1] = {k: v for k, v in shown[1].items() if k != link.get("param")}
            if missing_values(text, shown):
                text, reason = None, "missing_values"
        if text is None:
            self.counts[f"fallback:{reason}"] += 1
            return self.fallback.write_request(ops, args, pattern=pattern, rng=rng, link=link)
        self.counts["llm_ok"] += 1
        return text

    def write_answer(
        self, ops: list[dict], args: list[dict], observations: list[str], *, pattern: str, rng: random.Random
    ) -> str:
        if pattern == "irrelevance":
            prompt = (
                "The user asked for something the available tools cannot do. The tools are: "
                + "; ".join(action_phrase(op) for op in ops[:3])
                + ". Write the assistant's short reply that says so without calling any tool."
            )
        else:
            results = "\n".join(
                f"- {op.get('function_name')}: {o[:800]}" for op, o in zip(ops, observations, strict=False)
            )
            prompt = (
                "Write the assistant's short final answer to the user, based only on these tool "
                f"results (JSON):\n{results}"
            )
        text, reason = self._ask(prompt, rng)
        if text is None:
            self.counts[f"fallback:{reason}"] += 1
            return self.fallback.write_answer(ops, args, observations, pattern=pattern, rng=rng)
        self.counts["llm_ok"] += 1
        return text


class OpenAIChatGenerator(LLMGenerator):
    """An OpenAI-compatible ``POST {base_url}/chat/completions`` endpoint (vLLM, llama.cpp server,
    TGI, OpenAI). The key is read from the environment variable ``api_key_env`` when the
    generator is built (never at import). Retries ``max_retries`` times on timeouts, connection
    errors, 429 and 5xx, with exponential backoff starting at ``backoff_s`` seconds."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        timeout_s: float = 30.0,
        max_retries: int = 2,
        backoff_s: float = 0.5,
        temperature: float = 0.7,
        max_tokens: int = 256,
        fallback: TemplateGenerator | None = None,
    ) -> None:
        import httpx

        super().__init__(fallback=fallback)
        self.name = f"openai:{model}"
        self.model, self.temperature, self.max_tokens = model, temperature, max_tokens
        self.max_retries, self.backoff_s = max_retries, backoff_s
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env) if api_key_env else None
        if api_key_env and not key:
            log.warning(
                "%s: environment variable %s is not set; calling without a key", self.name, api_key_env
            )
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)

    def complete(self, messages: list[dict[str, str]], *, seed: int = 0) -> str:
        import httpx

        body = {
            "seed": seed,
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        for attempt in range(self.max_retries + 1):
            try:
                resp = self._client.post("/chat/completions", json=body)
                if resp.status_code == 429 or resp.status_code >= 500:
                    raise httpx.HTTPStatusError(
                        f"HTTP {resp.status_code}", request=resp.request, response=resp
                    )
                resp.raise_for_status()
                return resp.json()["choices"][0]["message"]["content"] or ""
            except (httpx.TimeoutException, httpx.TransportError, httpx.HTTPStatusError) as exc:
                retryable = (
                    not isinstance(exc, httpx.HTTPStatusError)
                    or exc.response.status_code in (429,)
                    or (exc.response.status_code >= 500)
                )
                self.counts["http_retry" if retryable and attempt < self.max_retries else "http_failed"] += 1
                if not retryable or attempt == self.max_retries:
                    raise
                time.sleep(self.backoff_s * 2**attempt)
        raise RuntimeError("unreachable")

    def close(self) -> None:
        self._client.close()


class TransformersGenerator(LLMGenerator):
    """Any local transformers causal LM directory (``AutoModelForCausalLM`` + ``AutoTokenizer``),
    run on the CPU by default. Uses the tokenizer's chat template when it has one, otherwise a
    plain ``System/User/Assistant`` prompt. Sampling is seeded per call from the trajectory's rng
    so runs repeat."""

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        *,
        max_new_tokens: int = 96,
        temperature: float = 0.7,
        device: str = "cpu",
        fallback: TemplateGenerator | None = None,
    ) -> None:
        try:
            import torch  # noqa: F401
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:  # pragma: no cover - torch/transformers are project dependencies
            raise RuntimeError("TransformersGenerator needs torch and transformers installed") from exc
        super().__init__(fallback=fallback)
        path = Path(model_dir)
        if not path.is_dir():
            raise FileNotFoundError(f"model directory not found: {path}")
        self.name = f"transformers:{path.name}"
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path).to(device).eval()
        self.device, self.max_new_tokens, self.temperature = device, max_new_tokens, temperature

    def _prompt(self, messages: list[dict[str, str]]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        return "\n".join(lines) + "\nAssistant:"

    def complete(self, messages: list[dict[str, str]], *, seed: int = 0) -> str:
        import torch

        torch.manual_seed(seed)
        enc = self.tokenizer(self._prompt(messages), return_tensors="pt", add_special_tokens=False).to(
            self.device
        )
        pad = self.tokenizer.pad_token_id
        with torch.no_grad():
            out = self.model.generate(
                **enc,
                max_new_tokens=self.max_new_tokens,
                do_sample=self.temperature > 0,
                temperature=self.temperature if self.temperature > 0 else None,
                pad_token_id=pad if pad is not None else self.tokenizer.eos_token_id,
            )
        return self.tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)


def make_generator(cfg: dict[str, Any] | None) -> Any:
    """A TextGenerator from profile configuration ``synthesis.generator``:

    - None or ``{"kind": "template"}``: :class:`forge.text.render.TemplateGenerator`;
    - ``{"kind": "transformers", "model_dir": ..., "max_new_tokens"?, "temperature"?, "device"?}``;
    - ``{"kind": "openai", "base_url": ..., "model": ..., "api_key_env"?, "timeout_s"?,
      "max_retries"?, "temperature"?, "max_tokens"?}``.
    """
    if not cfg or cfg.get("kind", "template") == "template":
        return TemplateGenerator()
    cfg = dict(cfg)
    kind = cfg.pop("kind")
    if kind == "transformers":
        return TransformersGenerator(cfg.pop("model_dir"), **cfg)
    if kind == "openai":
        return OpenAIChatGenerator(cfg.pop("base_url"), cfg.pop("model"), **cfg)
    raise ValueError(f"unknown generator kind {kind!r} (template, transformers or openai)")
