"""sensinet: sensitivity-driven training and interpretation of dense neural networks (C++/Eigen core)."""
import os as _os

# The engine's OpenMP threads must sleep, not spin, between kernels; libgomp reads this once at load.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ._config import get_num_threads, set_num_threads  # noqa: E402
from ._version import __version__  # noqa: E402
from ._engine import build_info  # noqa: E402
from .cuda import cuda_available, cuda_info  # noqa: E402  (imports the CUDA extension lazily)
from .data import Dataset  # noqa: E402
from .layers import ACTIVATIONS, Dense, Residual  # noqa: E402
from .errors import DivergenceError, NonFiniteError  # noqa: E402
from .fit_result import FitResult  # noqa: E402
from .network import Network  # noqa: E402
from .optimizers import LBFGS, SGD, Adam  # noqa: E402
from .sensitivity import SensitivityResult, group_curvature, group_sensitivity, sensitivity  # noqa: E402


def __getattr__(name: str):  # lazy: these pull optional dependencies or heavier modules
    if name in ("save", "load"):
        from . import io

        return getattr(io, name)
    if name in ("from_sklearn", "from_torch", "to_torch"):
        from . import convert

        return getattr(convert, name)
    if name in ("from_onnx", "to_onnx"):
        from . import onnx_io

        return getattr(onnx_io, name)
    if name in ("ReluClusters", "explain"):
        from . import clusters

        return getattr(clusters, name)
    if name in ("prune", "pruning_curve"):
        from . import pruning

        return getattr(pruning, name)
    if name in ("GrowShrink",):
        from .growshrink import GrowShrink

        return GrowShrink
    if name in ("LayerInsertion",):
        from . import insertion

        return getattr(insertion, name)
    if name in ("HierarchicalOptimizer",):
        from . import hierarchical

        return getattr(hierarchical, name)
    if name in ("SensiNetRegressor", "SensiNetClassifier"):
        from . import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module 'sensinet' has no attribute {name!r}")


__all__ = [
    "ACTIVATIONS", "Adam", "Dataset", "GrowShrink", "HierarchicalOptimizer", "LayerInsertion", "ReluClusters", "explain", "Dense", "DivergenceError", "FitResult", "NonFiniteError", "LBFGS", "Network", "Residual", "SGD",
    "SensiNetClassifier", "SensiNetRegressor", "SensitivityResult", "cuda_available", "cuda_info",
    "group_curvature", "group_sensitivity",
    "sensitivity", "__version__", "build_info", "from_onnx", "from_sklearn", "from_torch",
    "get_num_threads", "load", "prune", "pruning_curve", "save", "set_num_threads", "to_onnx", "to_torch",
]
