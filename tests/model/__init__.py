"""Model tests: training, export parity, the committed model and its explanations."""
