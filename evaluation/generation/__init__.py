"""evaluation.generation."""
