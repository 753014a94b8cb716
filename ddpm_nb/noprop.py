"""NoProp-DT: training a classifier block by block, with no gradient crossing blocks (chapter 6).

Li, Teh & Pascanu 2025, "NoProp: training neural networks without back-propagation or
forward-propagation". The label is the clean end of a diffusion: z_0 ~ N(0, I) is noise, z_T is
close to the label embedding u_y, and block t learns û_θt(z_{t-1}, x) ≈ u_y.

Convention (NoProp's own, the reverse of chapters 1-4): ᾱ is indexed from the LABEL end,
ᾱ_t = Π_{s=t}^{T} α_s, so ᾱ increases with t: ᾱ_0 ≈ 0 (noise) and ᾱ_T ≈ 1 (label). Schedules are
(T + 1,) float64 tensors indexed by t = 0..T; q(z_t|y) = N(sqrt(ᾱ_t) u_y, (1 - ᾱ_t) I) and
z_{t-1} = sqrt(α_{t-1}) z_t + sqrt(1 - α_{t-1}) ε (the noising step goes from t to t-1).
"""

from __future__ import annotations

import time
import weakref
from pathlib import Path

import torch
from torch import nn

from .nets.noprop_blocks import BackpropChain, DenoiseBlock, check_images
from .schedules import SCHEDULES, alpha_bar_continuous, snr

__all__ = ["EMBEDDINGS", "NOPROP_INFERENCE", "DATASETS", "noprop_alpha_bar", "alphas_from",
           "residual_coefficients", "block_weights", "q_z", "kl_z0", "NoPropDT", "BackpropChain",
           "block_loss", "output_loss", "noprop_step", "infer", "predict", "accuracy", "load_split",
           "SavedTensorMeter", "train_noprop"]

EMBEDDINGS = ("onehot", "learned")
# The inference whose accuracy the book reports (`ddpm-nb bench noprop`): see chapter 6.
NOPROP_INFERENCE = "eight_chains"
DATASETS = ("fashion-mnist",)
Tensor = torch.Tensor


def _check_T(T) -> None:
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a whole number of blocks, at least 1, got {T!r}.")


def noprop_alpha_bar(kind: str, T: int) -> Tensor:
    """ᾱ_0..ᾱ_T in NoProp's convention, shape (T + 1,) float64, increasing in t.

    ᾱ_t = ᾱ(s_t) with s_t = 1 - t/(T + 1): the book's continuous schedule (`alpha_bar_continuous`,
    'linear' = the VP-SDE limit of DDPM's linear β, 'cosine' = Nichol & Dhariwal) read from the
    noise end (s = 1, t = 0) towards the label end (s = 1/(T + 1), t = T), so ᾱ_T < 1 strictly.
    """
    if kind not in SCHEDULES:
        raise ValueError(f"Unknown schedule {kind!r}: choose one of {', '.join(SCHEDULES)}.")
    _check_T(T)
    s = 1.0 - torch.arange(T + 1, dtype=torch.float64) / (T + 1)
    return alpha_bar_continuous(s, kind).clamp(min=1e-12)


def alphas_from(alpha_bar: Tensor) -> Tensor:
    """α_t = ᾱ_t / ᾱ_{t+1} for t < T and α_T = ᾱ_T, so that ᾱ_t = Π_{s>=t} α_s. Shape (T + 1,)."""
    if not isinstance(alpha_bar, Tensor) or alpha_bar.dim() != 1 or alpha_bar.numel() < 2:
        raise ValueError("alpha_bar must be a 1-D tensor ᾱ_0..ᾱ_T of length T + 1 >= 2.")
    if torch.any(alpha_bar <= 0) or torch.any(alpha_bar >= 1) or torch.any(alpha_bar[1:] < alpha_bar[:-1]):
        raise ValueError("alpha_bar must lie in (0, 1) and increase with t (NoProp indexes it from the "
                         "label end: ᾱ_0 ≈ 0 is noise, ᾱ_T ≈ 1 the label).")
    return torch.cat([alpha_bar[:-1] / alpha_bar[1:], alpha_bar[-1:]])


def residual_coefficients(alpha_bar: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """a_t, b_t, c_t, each (T + 1,) with index 0 unused (= 0), of
    q(z_t | z_{t-1}, y) = N(a_t u_y + b_t z_{t-1}, c_t I):

    a_t = sqrt(ᾱ_t)(1 - α_{t-1})/(1 - ᾱ_{t-1}), b_t = sqrt(α_{t-1})(1 - ᾱ_t)/(1 - ᾱ_{t-1}),
    c_t = (1 - ᾱ_t)(1 - α_{t-1})/(1 - ᾱ_{t-1})  (Li et al. 2025, eq. 3: the Gaussian posterior of
    the noising chain, the roles of DDPM's eq. 7 with time reversed).
    """
    alpha = alphas_from(alpha_bar)
    ab, ab_prev, a_prev = alpha_bar[1:], alpha_bar[:-1], alpha[:-1]
    zero = alpha_bar.new_zeros(1)
    a = torch.cat([zero, ab.sqrt() * (1 - a_prev) / (1 - ab_prev)])
    b = torch.cat([zero, a_prev.sqrt() * (1 - ab) / (1 - ab_prev)])
    c = torch.cat([zero, (1 - ab) * (1 - a_prev) / (1 - ab_prev)])
    return a, b, c


def block_weights(alpha_bar: Tensor, eta: float = 1.0) -> Tensor:
    """w_t = (T/2)·η·(SNR(t) - SNR(t-1)), SNR(t) = ᾱ_t/(1 - ᾱ_t): shape (T + 1,), w_0 = 0 (eq. 8)."""
    alphas_from(alpha_bar)  # validates
    T = alpha_bar.numel() - 1
    s = snr(alpha_bar)
    return torch.cat([alpha_bar.new_zeros(1), T / 2 * eta * (s[1:] - s[:-1])])


def q_z(u: Tensor, t: int, alpha_bar: Tensor, eps: Tensor) -> Tensor:
    """A draw of z_t ~ q(z_t|y) = N(sqrt(ᾱ_t) u_y, (1 - ᾱ_t) I): u, eps (B, d) -> (B, d)."""
    return alpha_bar[t].sqrt() * u + (1 - alpha_bar[t]).sqrt() * eps


def kl_z0(u: Tensor, alpha_bar: Tensor) -> Tensor:
    """KL(q(z_0|y) || N(0, I)) per example, (B,): ½(ᾱ_0|u|² + d(1 - ᾱ_0) - d - d·log(1 - ᾱ_0))."""
    d, ab0 = u.shape[1], alpha_bar[0]
    return 0.5 * (ab0 * (u**2).sum(1) + d * (1 - ab0) - d - d * torch.log1p(-ab0))


class NoPropDT(nn.Module):
    """NoProp-DT: T denoising blocks, class embeddings W_embed (classes, d), classifier p(y|z_T).

    embed: 'onehot' (W_embed = I, fixed, d = classes: the book's choice) or 'learned' (d = embed_dim,
    orthogonal start, trained by the summed losses, so its gradient is dominated by the last block's
    large w_t). Each block has its own AdamW, whose step does not change when its loss is multiplied
    by a constant, so with one-hot embeddings the weights w_t change no block's training at all.
    The classifier starts as logits = W_embed z (the nearest class of an orthonormal embedding), so a
    short run does not leave a random head on a good z_T. The schedule (NoProp convention) is rebuilt
    from the config: `model.alpha_bar`, `model.weights` (w_t) and `model.abc` (a, b, c), float32.
    """

    def __init__(self, T: int = 10, classes: int = 10, embed: str = "onehot", embed_dim: int | None = None,
                 schedule: str = "cosine", eta: float = 1.0, width: int = 128):
        super().__init__()
        _check_T(T)
        if embed not in EMBEDDINGS:
            raise ValueError(f"Unknown class embedding {embed!r}: choose one of {', '.join(EMBEDDINGS)}.")
        d = classes if embed == "onehot" else int(embed_dim or classes)
        self.T, self.classes, self.d, self.eta, self.kind = T, classes, d, float(eta), embed
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
            raise ValueError(f"y must be a (B,) int64 tensor of class indices in 0..{self.classes - 1}.")
        return self.W_embed[y]

    def u_hat(self, t: int, z: Tensor, x: Tensor) -> Tensor:
        """û_θt(z_{t-1}, x) = softmax(logits) · W_embed, (B, d); t in 1..T."""
        if not 1 <= t <= self.T:
            raise ValueError(f"Block index t must lie in 1..{self.T}, got {t}.")
        return self.blocks[t - 1](z, x).softmax(-1) @ self.W_embed

    def forward(self, x: Tensor) -> Tensor:
        """Class probabilities (B, classes) by noise-free inference (see `infer`)."""
        return infer(self, x, noise=False)


# ---------------------------------------------------------------------------------------------- training


def block_loss(model: NoPropDT, t: int, x: Tensor, y: Tensor, generator: torch.Generator) -> Tensor:
    """Block t's loss: w_t · E‖û_θt(z_{t-1}, x) - u_y‖², z_{t-1} ~ q(z_{t-1}|y). Scalar; touches θ_t only
    (and W_embed when it is learned)."""
    u = model.embed(y)
    eps = torch.randn(u.shape, generator=generator, device=u.device, dtype=u.dtype)
    z = q_z(u, t - 1, model.alpha_bar, eps)
    return model.weights[t] * ((model.u_hat(t, z, x) - u) ** 2).sum(1).mean()


def output_loss(model: NoPropDT, y: Tensor, generator: torch.Generator) -> Tensor:
    """-log p(y|z_T) with z_T ~ q(z_T|y), plus KL(q(z_0|y) || N(0, I)); mean over the batch."""
    u = model.embed(y)
    eps = torch.randn(u.shape, generator=generator, device=u.device, dtype=u.dtype)
    z_T = q_z(u, model.T, model.alpha_bar, eps)
    return nn.functional.cross_entropy(model.head(z_T), y) + kl_z0(u, model.alpha_bar).mean()


def _optimisers(model: NoPropDT, lr: float, weight_decay: float) -> list[torch.optim.Optimizer]:
    """One AdamW per block, then one for the classifier head (and the embedding when learned)."""
    shared = list(model.head.parameters()) + ([model.W_embed] if model.kind == "learned" else [])
    groups = [list(b.parameters()) for b in model.blocks] + [shared]
    return [torch.optim.AdamW(g, lr=lr, weight_decay=weight_decay) for g in groups]


def noprop_step(model: NoPropDT, opts: list, x: Tensor, y: Tensor, generator: torch.Generator,
                grad_clip: float | None = None) -> list[float]:
    """One NoProp-DT step on a batch: for t = 1..T, block t's loss, its backward, its optimiser; then
    the output loss and the shared optimiser (classifier; a learned embedding, whose gradient sums all
    T + 1 losses). Each graph is freed before the next is built. Returns the T + 1 losses."""
    for opt in opts:
        opt.zero_grad(set_to_none=True)
    values = []
    for t in range(1, model.T + 2):
        loss = block_loss(model, t, x, y, generator) if t <= model.T else output_loss(model, y, generator)
        opt = opts[t - 1]
        loss.backward()
        if grad_clip is not None:
            nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)  # free this block's gradients before the next block
        values.append(loss.item())
    return values


# ---------------------------------------------------------------------------------------------- inference


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
        raise ValueError(f"samples must be at least 1, got {samples}.")
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


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, *, batch_size: int = 500, progress: bool = False, **kw) -> Tensor:
    """Class probabilities (N, classes) for images x (N, 1, 28, 28), in batches on the model's device
    ((samples, N, classes) for a NoPropDT with per_chain=True).

    A NoPropDT goes through `infer(**kw)` (with a generator seeded 0 unless one is given); any other
    classifier through its logits."""
    from tqdm.auto import tqdm

    check_images(x)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    if isinstance(model, NoPropDT) and kw.get("noise", True) and kw.get("generator") is None:
        kw["generator"] = torch.Generator(device=device).manual_seed(0)
    out = []
    for i in tqdm(range(0, x.shape[0], batch_size), desc="predict", disable=not progress, mininterval=5):
        xb = x[i:i + batch_size].to(device)
        out.append((infer(model, xb, **kw) if isinstance(model, NoPropDT) else model(xb).softmax(-1)).cpu())
    model.train(was_training)
    return torch.cat(out, dim=-2)


def accuracy(probs: Tensor, labels: Tensor) -> float:
    """Fraction of rows of probs (N, classes) whose argmax is the label (N,)."""
    return float((probs.argmax(-1) == labels.to(probs.device)).double().mean())


def load_split(dataset: str, split: str) -> tuple[Tensor, Tensor, str]:
    """(images (N, 1, 28, 28) in [-1, 1], labels (N,), the data set's name) of one split."""
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}.")
    from .data.fashion_mnist import load_fashion_mnist, to_model_range

    data = load_fashion_mnist(split)
    return to_model_range(data.images), data.labels, data.name



# ---------------------------------------------------------------------------------------------- memory


class SavedTensorMeter:
    """Peak bytes of the tensors saved for backward that are alive at the same time.

    Inside `with meter:` every tensor autograd saves goes through torch.autograd.graph.saved_tensors_hooks;
    a storage is counted once however many graphs hold it, from when it is saved until the last graph
    holding it is freed (after its backward). `meter.peak` is the maximum of the live total, in bytes.
    """

    def __init__(self) -> None:
        self.live: dict[int, list[int]] = {}  # storage address -> [holders, bytes]
        self.current = self.peak = 0
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)

    def _pack(self, tensor: Tensor):
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        entry = self.live.setdefault(key, [0, storage.nbytes()])
        if entry[0] == 0:
            self.current += entry[1]
            self.peak = max(self.peak, self.current)
        entry[0] += 1
        holder = _Held(tensor)
        weakref.finalize(holder, self._release, key)
        return holder

    def _unpack(self, holder: _Held) -> Tensor:
        return holder.tensor

    def _release(self, key: int) -> None:
        entry = self.live[key]
        entry[0] -= 1
        if entry[0] == 0:
            self.current -= entry[1]
            del self.live[key]

    def __enter__(self) -> SavedTensorMeter:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


class _Held:
    __slots__ = ("tensor", "__weakref__")

    def __init__(self, tensor: Tensor) -> None:
        self.tensor = tensor


# ---------------------------------------------------------------------------------------------- the loop


def train_noprop(model: NoPropDT, data, cfg, *, device=None, state_path=None, desc: str = "noprop",
                 progress: bool = True):
    """Train NoProp-DT: `noprop_step` on random batches of data = (images, labels), AdamW per block at
    `lr_at(step)`, an EMA of all weights; resumable from `state_path` (saved every cfg.ckpt_every steps
    and on Ctrl-C). Returns a `ddpm_nb.train.TrainResult` (history: the mean of the T block losses)."""
    import copy

    from tqdm.auto import tqdm

    from .config import pick_device
    from .train import EMA, TrainResult, _batch_sampler, _derive_seed, lr_at

    device = torch.device(device) if device is not None else pick_device()
    draw = _batch_sampler(data, cfg.batch_size, device)
    model.to(device).train()
    opts = _optimisers(model, cfg.lr, cfg.weight_decay)
    ema = EMA(model, cfg.ema_decay)
    gens = (torch.Generator().manual_seed(_derive_seed(cfg.seed, "data")),
            torch.Generator(device=device).manual_seed(_derive_seed(cfg.seed, "noise")))
    run = {"step": 0, "history": [], "seconds": 0.0}
    path = Path(state_path) if state_path is not None else None
    if path is not None and path.exists():
        _resume(path, model, opts, ema, gens, run, cfg)
    bar = tqdm(total=cfg.steps, initial=run["step"], desc=desc, disable=not progress, dynamic_ncols=True)
    clock, start = time.perf_counter(), run["seconds"]
    try:
        while run["step"] < cfg.steps:
            lr = lr_at(run["step"], lr=cfg.lr, warmup=cfg.warmup, total=cfg.steps,
                       min_lr_ratio=cfg.min_lr_ratio)
            for opt in opts:
                for group in opt.param_groups:
                    group["lr"] = lr
            x, y = draw(gens[0])
            losses = noprop_step(model, opts, x, y, gens[1], cfg.grad_clip)
            ema.update(model)
            run["history"].append(sum(losses[:-1]) / model.T)
            run["step"] += 1
            run["seconds"] = start + time.perf_counter() - clock
            bar.update(1)
            if run["step"] % cfg.log_every == 0:
                recent = run["history"][-cfg.log_every:]
                bar.set_postfix(loss=f"{sum(recent) / len(recent):.4g}", out=f"{losses[-1]:.3g}")
            if path is not None and cfg.ckpt_every and run["step"] % cfg.ckpt_every == 0:
                _save(path, model, opts, ema, gens, run, cfg)
    except KeyboardInterrupt:
        if path is not None:
            _save(path, model, opts, ema, gens, run, cfg)
            print(f"Interrupted after step {run['step']}: state saved to {path}; run the same call again.")
        raise
    finally:
        bar.close()
    if path is not None:
        _save(path, model, opts, ema, gens, run, cfg)
    ema_model = copy.deepcopy(model)
    ema.copy_to(ema_model)
    return TrainResult(model=model, ema_model=ema_model.eval(), history=run["history"],
                       seconds=run["seconds"], steps=run["step"])


STATE_FORMAT = "ddpm_nb.noprop_state/1"


def _save(path: Path, model, opts, ema, gens, run: dict, cfg) -> None:
    from dataclasses import asdict

    from .weights import _atomic_save

    _atomic_save({"format": STATE_FORMAT, "config": asdict(cfg), "model": model.state_dict(),
                  "opts": [o.state_dict() for o in opts], "ema": ema.state_dict(),
                  "rng_data": gens[0].get_state(), "rng_noise": gens[1].get_state(), **run}, path)


def _resume(path: Path, model, opts, ema, gens, run: dict, cfg) -> None:
    from dataclasses import asdict

    from .weights import _read

    state = _read(path, STATE_FORMAT, "NoProp training state", "start training afresh")
    saved, now = state["config"], asdict(cfg)
    differ = [k for k in now if k not in ("steps", "ckpt_every", "log_every") and saved.get(k) != now[k]]
    if differ or state["step"] > cfg.steps:
        raise ValueError(f"The training state {path} does not fit this run (differs in {differ or 'steps'}): "
                         "use its settings, or delete it to start afresh.")
    model.load_state_dict(state["model"])
    for opt, s in zip(opts, state["opts"], strict=True):
        opt.load_state_dict(s)
    ema.load_state_dict(state["ema"])
    gens[0].set_state(state["rng_data"])
    gens[1].set_state(state["rng_noise"])
    run.update(step=state["step"], history=list(state["history"]), seconds=float(state["seconds"]))
