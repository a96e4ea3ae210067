"""Formats that cross package lines: forge, training and evaluation import them, never each other."""
