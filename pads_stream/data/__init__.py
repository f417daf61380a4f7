"""Motion and keypoint data: BVH files, the Human3.6M and V-H36M sets, keypoint files people have
(COCO, OpenPose), and a virtual capture rig that places poses before cameras.

Layer: may import ``geometry`` and ``common``.
"""
