"""The NoProp-DT model (T denoising blocks, the class embedding, the classifier head) and its
inference: the reverse chain z_0 -> z_T through the blocks, then the classifier on z_T."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import UserError
from .blocks import DenoiseBlock, check_images
from .schedule import block_weights, check_T, noprop_alpha_bar, residual_coefficients

__all__ = ["EMBEDDINGS", "NoPropDT", "infer"]

EMBEDDINGS = ("onehot", "learned")
Tensor = torch.Tensor


class NoPropDT(nn.Module):
    """NoProp-DT: T denoising blocks, class embeddings W_embed (classes, d), classifier p(y|z_T).

    embed: 'onehot' (W_embed = I, fixed, d = classes: the book's choice) or 'learned' (d = embed_dim,
    orthogonal start, trained by the summed losses, so its gradient is dominated by the last block's
    large w_t). Each block has its own AdamW, whose step does not change when its loss is multiplied
    by a constant, so with one-hot embeddings the weights w_t change no block's training at all.
    The classifier starts as logits = W_embed z (the nearest class of an orthonormal embedding), so a
    short run does not leave a random head on a good z_T. The schedule (NoProp convention) is rebuilt
    from the config: `model.alpha_bar`, `model.weights` (w_t) and `model.abc` (a, b, c), float32.
    `model.net_config` holds the constructor's arguments (what rebuilds the same network elsewhere).
    """

    def __init__(self, T: int = 10, classes: int = 10, embed: str = "onehot", embed_dim: int | None = None,
                 schedule: str = "cosine", eta: float = 1.0, width: int = 128):
        super().__init__()
        check_T(T)
        if embed not in EMBEDDINGS:
            raise UserError(f"Unknown class embedding {embed!r}: choose one of {', '.join(EMBEDDINGS)}.")
        d = classes if embed == "onehot" else int(embed_dim or classes)
        self.T, self.classes, self.d, self.eta, self.kind = T, classes, d, float(eta), embed
        self.net_config = {"T": T, "classes": classes, "embed": embed, "embed_dim": embed_dim,
                           "schedule": schedule, "eta": eta, "width": width}
        self.blocks = nn.ModuleList(DenoiseBlock(classes, d, width) for _ in range(T))
        if embed == "onehot":
            self.register_buffer("W_embed", torch.eye(classes))
        else:
            self.W_embed = nn.Parameter(nn.init.orthogonal_(torch.empty(classes, d)))
        self.head = nn.Linear(d, classes)  # p(y | z_T), started at the nearest-embedding rule W_embed z
        with torch.no_grad():
            self.head.weight.copy_(self.W_embed)
            self.head.bias.zero_()
        ab = noprop_alpha_bar(schedule, T)
        self.register_buffer("alpha_bar", ab.float(), persistent=False)
        self.register_buffer("weights", block_weights(ab, eta).float(), persistent=False)
        self.register_buffer("abc", torch.stack(residual_coefficients(ab)).float(), persistent=False)

    def embed(self, y: Tensor) -> Tensor:
        """u_y (B, d) for labels y (B,)."""
        if y.dim() != 1 or y.dtype != torch.int64 or (y.numel() and (y.min() < 0 or y.max() >= self.classes)):
            raise UserError(f"y must be a (B,) int64 tensor of class indices in 0..{self.classes - 1}.")
        return self.W_embed[y]

    def u_hat(self, t: int, z: Tensor, x: Tensor) -> Tensor:
        """û_θt(z_{t-1}, x) = softmax(logits) · W_embed, (B, d); t in 1..T."""
        if not 1 <= t <= self.T:
            raise UserError(f"Block index t must lie in 1..{self.T}, got {t}.")
        return self.blocks[t - 1](z, x).softmax(-1) @ self.W_embed

    def forward(self, x: Tensor) -> Tensor:
        """Class probabilities (B, classes) by noise-free inference (see `infer`)."""
        return infer(self, x, noise=False)


@torch.no_grad()
def infer(model: NoPropDT, x: Tensor, *, noise: bool = True, samples: int = 1,
          generator: torch.Generator | None = None, callback=None, per_chain: bool = False,
          mean_path: bool = False) -> Tensor:
    """p(y|x) (B, classes): z_0 ~ N(0, I), z_t = a_t û_θt(z_{t-1}, x) + b_t z_{t-1} + sqrt(c_t) ε, then
    softmax of the classifier on z_T, averaged over `samples` chains (noise=False: the mean path, z_0 = 0).

    per_chain=True returns each chain's probabilities instead, (chains, B, classes); mean_path=True
    appends the noise-free chain as the last one (same noise draws for the others). Each block's image
    features are computed once and shared by the chains. callback(t, z) sees z_t (chains·B, d), t = 0..T.
    """
    check_images(x)
    if samples < 1:
        raise UserError(f"samples must be at least 1, got {samples}.")
    B, S = x.shape[0], samples

    def draw() -> Tensor:  # noise for the S noisy chains, zeros for the mean path
        eps = torch.randn((S * B, model.d), generator=generator, device=x.device) if noise else \
            x.new_zeros(S * B, model.d)
        return torch.cat([eps, x.new_zeros(B, model.d)]) if mean_path else eps

    a, b, c = model.abc
    z = draw()
    if callback is not None:
        callback(0, z)
    chains = S + int(mean_path)
    for t in range(1, model.T + 1):
        block = model.blocks[t - 1]
        h = block.features(x).repeat(chains, 1)
        u = block.logits_from(h, z).softmax(-1) @ model.W_embed
        z = a[t] * u + b[t] * z + c[t].sqrt() * draw()
        if callback is not None:
            callback(t, z)
    probs = model.head(z).softmax(-1).view(chains, B, -1)
    return probs if per_chain else probs.mean(0)
