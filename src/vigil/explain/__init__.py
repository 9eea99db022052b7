"""Per-alert explanations: which features drove a score, and what the model expected them to read."""
