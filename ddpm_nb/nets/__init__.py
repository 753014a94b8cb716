"""Networks of the book: time embedding, MLP denoiser (2-D), small image UNet, image classifier."""

from .classifier import ImageClassifier
from .embeddings import sinusoidal_embedding
from .mlp import MLPDenoiser
from .unet2d import UNet2D

__all__ = ["sinusoidal_embedding", "MLPDenoiser", "UNet2D", "ImageClassifier"]
