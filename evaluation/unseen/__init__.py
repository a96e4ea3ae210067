"""The unseen-API benchmark: its versioned card."""
