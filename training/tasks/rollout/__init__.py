"""The rollout task: objective (loss, metrics, monitor, plots) and retraining holdout."""
