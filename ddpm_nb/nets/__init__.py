"""Networks of the book: the time embedding, an MLP denoiser for 2-D data, a small image UNet."""

from .embeddings import sinusoidal_embedding
from .mlp import MLPDenoiser
from .unet2d import UNet2D

__all__ = ["sinusoidal_embedding", "MLPDenoiser", "UNet2D"]
