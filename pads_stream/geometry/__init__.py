"""Pose geometry in plain numpy: the Human3.6M skeleton and its bones, input keypoint layouts,
pinhole cameras and rays, metrics, the root (pelvis) from 2D, the floor, several views, filters
over time, bone-keeping fits.

Units: metres in 3D, pixels in images; each function says its frame (camera: OpenCV axes;
world: the rig's). Layer: may import ``common`` only.
"""
