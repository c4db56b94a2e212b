"""Generation: a trained model rolled out into motion a person can look at.

- ``control``: the control signal of a rollout: a clip's own, or a constant speed and turn rate;
- ``rollout``: the autoregressive rollout from a real start frame, for as many frames as asked, as a clip
  (the rollout itself is ``model.rollout.autoregress``; the world motion ``data.trajectory``);
- ``bvh_writer``: a clip on its skeleton as a BVH file the importer reads back;
- ``inference``: the exported inference model (weights, normalizer, skeleton, config) and its loader;
- ``preview``: skeleton animations (GIF, MP4) of one motion or two side by side;
- ``api``: the entry points behind ``motiontune generate``, ``export-model`` and ``preview``.

Arrows point down: generate uses data, model and train (the checkpoint and the
model loader), never evaluate or anything above trainer_core.
"""
