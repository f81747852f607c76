"""The models, one module each. None of them imports Slack or writes to the database:
they read a `TrainingData` and fill columns of the run's score frame.
"""
