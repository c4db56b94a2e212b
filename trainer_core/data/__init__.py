"""Motion data: BVH import, clips, the skeleton, features, soft gait, dataset folders, splits and device tensors.

Nothing here knows the model; ``model``, ``train`` and ``evaluate`` build on it.
"""
