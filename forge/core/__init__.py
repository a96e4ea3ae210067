"""Shared plumbing of every stage: atomic writes, ids, drop statistics, completion markers, the warehouse reader, stages and their code fingerprints."""
