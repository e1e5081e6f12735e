"""Propagation rules by family: ``base`` (shared by every family: pass-through, z-rules, z^B,
the conv and linear machinery), ``agf`` and ``lrp``. Which rule a step gets is data: the
``rules`` column of :data:`probe.attribution.layers.LAYERS`, assembled by ``composite``."""
