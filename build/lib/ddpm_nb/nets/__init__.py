"""Networks of the book: time embedding, MLP denoiser (2-D), small image UNet, image classifier, and
the v-prediction wrapper that makes a v-network callable as a noise predictor."""

from .classifier import ImageClassifier
from .embeddings import sinusoidal_embedding
from .mlp import MLPDenoiser
from .prediction import VPrediction
from .unet1d import UNet1D
from .unet2d import UNet2D

__all__ = ["sinusoidal_embedding", "MLPDenoiser", "UNet2D", "ImageClassifier", "UNet1D"]
__all__ += ["VPrediction"]
