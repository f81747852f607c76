"""The life of a model run: start it under the training lock, activate it, roll back."""
