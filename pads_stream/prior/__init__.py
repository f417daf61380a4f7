"""The diffusion pose prior and its sampler: the joint-token Transformer, the noise schedule,
the reverse steps, the guidance of a forward operator, checkpoints and training.

Layer: may import ``data``, ``geometry`` and ``common`` (torch where a module says so).
"""
