"""forge.sources."""
