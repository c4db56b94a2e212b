"""The model: rotation geometry and FK, the MotionEncoder with its heads, and rollouts (teacher, scheduled, free run).
"""
