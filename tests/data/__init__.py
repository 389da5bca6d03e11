"""Data tests: the readers, cleaning, splits and descriptions of labelled tweet files."""
