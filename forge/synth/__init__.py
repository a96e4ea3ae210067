"""Synthesized function-calling data: arguments, the schema-validating executor, trajectories, text generators, unseen-API items."""
