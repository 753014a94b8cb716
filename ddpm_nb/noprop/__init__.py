"""NoProp-DT: training a classifier block by block, with no gradient crossing blocks (chapter 6).

Li, Teh & Pascanu 2025, "NoProp: training neural networks without back-propagation or
forward-propagation". The label is the clean end of a diffusion: z_0 ~ N(0, I) is noise, z_T is
close to the label embedding u_y, and block t learns û_θt(z_{t-1}, x) ≈ u_y. Modules: `schedule`
(NoProp's reversed index), `blocks` and `model` (with the reverse-chain inference), `step` (per-block
training through `ddpm_nb.train`), `parallel` (the blocks split over worker processes), `inference`
(predictions over a data set), `meters` (memory).
"""

from __future__ import annotations

from .blocks import BackpropChain, DenoiseBlock, check_images
from .inference import DATASETS, NOPROP_INFERENCE, accuracy, load_split, predict
from .meters import SavedTensorMeter
from .model import EMBEDDINGS, NoPropDT, infer
from .parallel import ParallelResult, split_blocks, train_noprop_parallel
from .schedule import alphas_from, block_weights, kl_z0, noprop_alpha_bar, q_z, residual_coefficients
from .step import (
    block_generators,
    block_loss,
    noprop_step,
    noprop_training,
    optimisers,
    output_loss,
    train_noprop,
)

__all__ = ["EMBEDDINGS", "NOPROP_INFERENCE", "DATASETS", "noprop_alpha_bar", "alphas_from",
           "residual_coefficients", "block_weights", "q_z", "kl_z0", "NoPropDT", "BackpropChain",
           "DenoiseBlock", "check_images", "block_loss", "output_loss", "optimisers", "noprop_step",
           "noprop_training", "infer", "predict", "accuracy", "load_split", "SavedTensorMeter",
           "train_noprop", "block_generators", "split_blocks", "train_noprop_parallel", "ParallelResult"]
