"""What a run leaves for humans: tables, figures and the model card, written from results handed in."""
