"""Motion data: BVH import, clips, the skeleton, features, soft gait, dataset folders, splits, device tensors
and the world motion of a clip or rollout (``trajectory``).

Nothing here knows the model; ``model``, ``train``, ``generate`` and ``evaluate`` build on it. It uses
only the leaves (``config``, ``geometry``, ``errors``, ...; see ``trainer_core``).
"""
