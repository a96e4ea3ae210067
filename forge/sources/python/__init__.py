"""forge.sources.python."""
