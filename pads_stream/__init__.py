"""pads-stream: real-time 3D human pose from 2D keypoints with a diffusion pose prior (PADS)."""

__version__ = "0.1.0"
