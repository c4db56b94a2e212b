"""The search: the Ray Tune experiment that samples and trains the trials; imports only ``tuner.experiment``.

``sweep`` (Tuner + TPESearch + ASHA: run or resume a search), ``tpe_search`` (the searcher: Optuna's ask/tell,
one suggestion drawn ahead), ``trainable`` (the trial function around the trainer), ``sampler`` (windowed TPE),
``multi`` (several objectives and constraints), ``pending`` (how many trials start at once), ``stop``
(SIGTERM/SIGINT save the state), ``progress`` (progress lines and the budget stopper). The verification's trials
reuse the trainable, ``stop`` and ``progress``.
"""
