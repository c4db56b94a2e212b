"""Ray Tune glue: the trainable, sweeps, resume, export, results, and the CLI.

Importing this package does not import Ray; the modules that need it do.
"""
