"""Call signatures of Hugging Face pipeline tasks: what a model card's ``pipeline_tag`` means as a tool.

A model on the Hub is called through ``transformers.pipeline(task, model=...)`` (or the Inference
API, which takes the same inputs). Each entry gives the JSON Schema of the call's arguments and a
one-line description of what comes back, for the tasks that cover nearly all cards. The argument
names follow the pipelines' ``__call__`` signatures (transformers 4.x/5.x).
"""

from __future__ import annotations

from typing import Any

_TEXT = {"type": "string", "description": "the input text"}
_IMAGE = {"type": "string", "description": "the image: a local path, an http(s) URL, or base64 data"}
_AUDIO = {"type": "string", "description": "the audio: a local path or an http(s) URL (any ffmpeg format)"}
_TOP_K = {"type": "integer", "description": "how many of the best labels to return", "minimum": 1}
_MAX_NEW = {"type": "integer", "description": "maximum number of tokens to generate", "minimum": 1}


def _s(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required}


#: task -> (arguments JSON Schema, description of the result)
TASKS: dict[str, tuple[dict[str, Any], str]] = {
    "text-classification": (_s({"inputs": _TEXT, "top_k": _TOP_K}, ["inputs"]), "list of {label, score}"),
    "token-classification": (
        _s(
            {
                "inputs": _TEXT,
                "aggregation_strategy": {
                    "type": "string",
                    "enum": ["none", "simple", "first", "average", "max"],
                },
            },
            ["inputs"],
        ),
        "list of {entity_group|entity, score, word, start, end}",
    ),
    "question-answering": (
        _s(
            {"question": {"type": "string"}, "context": {"type": "string"}, "top_k": _TOP_K},
            ["question", "context"],
        ),
        "{answer, score, start, end}",
    ),
    "table-question-answering": (
        _s(
            {
                "table": {"type": "object", "description": "column name -> list of cell strings"},
                "query": {"type": "string"},
            },
            ["table", "query"],
        ),  # fmt: skip
        "{answer, coordinates, cells, aggregator}",
    ),
    "zero-shot-classification": (
        _s(
            {
                "sequences": _TEXT,
                "candidate_labels": {"type": "array", "items": {"type": "string"}},
                "multi_label": {"type": "boolean", "default": False},
            },
            ["sequences", "candidate_labels"],
        ),  # fmt: skip
        "{sequence, labels, scores}",
    ),
    "fill-mask": (
        _s(
            {
                "inputs": {"type": "string", "description": "text containing the model's mask token"},
                "top_k": _TOP_K,
            },
            ["inputs"],
        ),  # fmt: skip
        "list of {sequence, score, token, token_str}",
    ),
    "summarization": (
        _s(
            {"inputs": _TEXT, "max_length": {"type": "integer"}, "min_length": {"type": "integer"}},
            ["inputs"],
        ),
        "list of {summary_text}",
    ),
    "translation": (
        _s({"inputs": _TEXT, "src_lang": {"type": "string"}, "tgt_lang": {"type": "string"}}, ["inputs"]),
        "list of {translation_text}",
    ),
    "text-generation": (
        _s(
            {
                "inputs": {"type": "string", "description": "the prompt"},
                "max_new_tokens": _MAX_NEW,
                "temperature": {"type": "number", "minimum": 0},
                "top_p": {"type": "number", "minimum": 0, "maximum": 1},
                "do_sample": {"type": "boolean"},
                "return_full_text": {"type": "boolean", "default": True},
            },
            ["inputs"],
        ),  # fmt: skip
        "list of {generated_text}",
    ),
    "text2text-generation": (
        _s({"inputs": _TEXT, "max_new_tokens": _MAX_NEW}, ["inputs"]),
        "list of {generated_text}",
    ),
    "feature-extraction": (_s({"inputs": _TEXT}, ["inputs"]), "nested list of floats (token embeddings)"),
    "sentence-similarity": (
        _s(
            {
                "source_sentence": {"type": "string"},
                "sentences": {"type": "array", "items": {"type": "string"}},
            },
            ["source_sentence", "sentences"],
        ),  # fmt: skip
        "list of similarity scores, one per sentence",
    ),
    "image-classification": (_s({"images": _IMAGE, "top_k": _TOP_K}, ["images"]), "list of {label, score}"),
    "object-detection": (
        _s({"images": _IMAGE, "threshold": {"type": "number", "default": 0.5}}, ["images"]),
        "list of {label, score, box: {xmin, ymin, xmax, ymax}}",
    ),
    "image-segmentation": (
        _s({"images": _IMAGE, "threshold": {"type": "number"}}, ["images"]),
        "list of {label, score, mask}",
    ),
    "image-to-text": (
        _s({"images": _IMAGE, "max_new_tokens": _MAX_NEW}, ["images"]),
        "list of {generated_text}",
    ),
    "zero-shot-image-classification": (
        _s(
            {"image": _IMAGE, "candidate_labels": {"type": "array", "items": {"type": "string"}}},
            ["image", "candidate_labels"],
        ),  # fmt: skip
        "list of {label, score}",
    ),
    "depth-estimation": (_s({"images": _IMAGE}, ["images"]), "{predicted_depth, depth}"),
    "automatic-speech-recognition": (
        _s(
            {
                "inputs": _AUDIO,
                "return_timestamps": {"type": "boolean"},
                "chunk_length_s": {"type": "number"},
            },
            ["inputs"],
        ),  # fmt: skip
        "{text, chunks?}",
    ),
    "audio-classification": (_s({"inputs": _AUDIO, "top_k": _TOP_K}, ["inputs"]), "list of {label, score}"),
    "text-to-speech": (_s({"text_inputs": _TEXT}, ["text_inputs"]), "{audio, sampling_rate}"),
    "text-to-image": (
        _s(
            {
                "prompt": {"type": "string"},
                "negative_prompt": {"type": "string"},
                "num_inference_steps": {"type": "integer", "minimum": 1},
                "guidance_scale": {"type": "number"},
                "width": {"type": "integer"},
                "height": {"type": "integer"},
            },
            ["prompt"],
        ),  # fmt: skip
        "an image",
    ),
    "visual-question-answering": (
        _s({"image": _IMAGE, "question": {"type": "string"}}, ["image", "question"]),
        "list of {answer, score}",
    ),
    "document-question-answering": (
        _s({"image": _IMAGE, "question": {"type": "string"}}, ["image", "question"]),
        "list of {answer, score, start, end}",
    ),
}

#: tags that mean "this is a pipeline task" when ``pipeline_tag`` is missing
TASK_ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification",
                "conversational": "text-generation"}  # fmt: skip


def task_signature(task: str) -> tuple[dict[str, Any], str] | None:
    """(arguments schema, result description) of a pipeline task, or None when unknown."""
    task = TASK_ALIASES.get(task, task)
    entry = TASKS.get(task)
    if entry is None:
        return None
    schema, result = entry
    return {k: (dict(v) if isinstance(v, dict) else list(v)) for k, v in schema.items()}, result
