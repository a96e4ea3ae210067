"""forge.core."""
