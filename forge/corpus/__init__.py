"""Corpus assembly: tokenizer, mixtures and packing, exports for training and evaluation."""
