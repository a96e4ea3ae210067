"""Batched generation: the static-KV-cache engine, its kernels, the generate() baseline."""
