"""Data sets of the book: 2-D toys with exact densities (more arrive with later chapters)."""

from .toy2d import TOY2D, mixture_log_prob, mixture_params, sample_toy2d

__all__ = ["TOY2D", "sample_toy2d", "mixture_params", "mixture_log_prob"]
