"""Between the models and their users: the registry of all families, bundle I/O, one predictor per
task, and the MLflow pyfunc model. Training writes bundles through it; the service and
`mlflow models serve` read them through it."""
