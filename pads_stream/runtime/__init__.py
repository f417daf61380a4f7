"""How a step runs: the exported step graphs' contract, the backends (torch, ONNX Runtime,
TensorRT, CUDA graphs) and the exporter that writes graphs and engines.

Layer: may import ``prior``, ``data``, ``geometry`` and ``common``.
"""
