"""forge.corpus.build."""
