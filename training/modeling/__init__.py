"""The model families, how they are fitted, searched and chosen."""
