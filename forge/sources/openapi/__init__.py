"""forge.sources.openapi."""
