"""Data sets of the book: 2-D toys with exact densities, Fashion-MNIST (book split), and the cache."""

from .cache import CorruptDownload, DatasetUnavailable
from .fashion_mnist import CLASSES, from_model_range, load_fashion_mnist, to_model_range
from .toy2d import TOY2D, mixture_eps, mixture_log_prob, mixture_params, sample_toy2d

__all__ = [
    "TOY2D", "sample_toy2d", "mixture_params", "mixture_log_prob", "mixture_eps",
    "CLASSES", "load_fashion_mnist", "to_model_range", "from_model_range",
    "DatasetUnavailable", "CorruptDownload",
]
