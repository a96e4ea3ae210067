"""Hugging Face model cards and TorchHub hubconf.py entry points as API rows."""
