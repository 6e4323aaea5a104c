"""One predictor per task (`inference.predictor.PREDICTORS` lists them)."""
