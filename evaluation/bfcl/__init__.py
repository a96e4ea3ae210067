"""evaluation.bfcl."""
