"""Training room: one Lightning system, recipes, MLflow tracking and registration, evaluation."""
