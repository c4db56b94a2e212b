"""Evaluation: teacher and free-run metrics against the baselines, on the validation split or any dataset."""
