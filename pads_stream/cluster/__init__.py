"""Scale-out: which worker owns a stream (placement) and the router that supervises the workers.

Layer: may import ``stream`` and everything below it.
"""
