"""The names that options take, in one light module: the CLI offers them as choices
without importing the jobs' dependencies, and the jobs' option records check them."""

# How the paint follows a face: "edit" warps the paint alone onto the footage, "generate"
# pastes the whole X2Face-generated face (the paper's output).
MODES = ("edit", "generate")
# "landmarks": each frame's warp pinned to its landmarks (lock.py); "none": the pure X2Face warp.
LOCK_MODES = ("landmarks", "none")
# "auto": paint is hidden where something covers the face (occlusion.py); "off": drawn over it.
OCCLUSION_MODES = ("auto", "off")
# How ``pose`` turns a head: by moving its landmarks, or by the paper's equation (1).
POSE_METHODS = ("landmarks", "paper")
