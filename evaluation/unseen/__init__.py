"""evaluation.unseen."""
