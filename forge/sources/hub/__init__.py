"""forge.sources.hub."""
