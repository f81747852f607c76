"""The training pipeline: load data as of a date, run every model stage, write the scores."""
