"""Training: losses, schedules, the loop (``loop.fit``), checkpoints and metric files."""
