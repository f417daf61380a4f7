"""The streaming node: wire records, sender clocks, the socket-free tracker and rig fusion,
sockets and their security, the node's loop, a worker's link to a cluster router.

Layer: may import ``api`` and everything below it; never ``cluster``, ``apps``, ``evaluation``.
"""
