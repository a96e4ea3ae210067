"""forge.text."""
