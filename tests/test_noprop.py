"""NoProp-DT (chapter 6): the schedule's convention, the residual coefficients against the Gaussian they
come from, gradient isolation between blocks, inference, the saved-bytes meter, training and resuming."""

from __future__ import annotations

import math

import pytest
import torch

from ddpm_nb import noprop, recipes
from ddpm_nb.bench import step_cost
from ddpm_nb.checkpoints import save_weights
from ddpm_nb.cli import main
from ddpm_nb.schedules import alpha_bar_continuous
from ddpm_nb.train import TrainConfig

T = 10


def tiny(T: int = 3, **kw) -> noprop.NoPropDT:
    torch.manual_seed(0)
    return noprop.NoPropDT(T=T, width=16, **kw)


def batch(n: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g) * 2 - 1, torch.randint(10, (n,), generator=g)


# ------------------------------------------------------------------------------------------ the schedule


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_alpha_bar_is_indexed_from_the_label_end(kind):
    ab = noprop.noprop_alpha_bar(kind, T)
    assert ab.shape == (T + 1,) and ab.dtype == torch.float64
    assert torch.all(ab[1:] > ab[:-1]), "ᾱ_t must increase towards the label (t = T)"
    assert ab[0] < 1e-3 and 0.9 < ab[T] < 1.0
    # ᾱ_t = ᾱ(s) of the book's continuous schedule at s = 1 - t/(T + 1)
    s = 1 - torch.arange(T + 1, dtype=torch.float64) / (T + 1)
    assert torch.allclose(ab, alpha_bar_continuous(s, kind).clamp(min=1e-12), rtol=0, atol=0)
    # ᾱ_t = Π_{s=t}^{T} α_s
    alpha = noprop.alphas_from(ab)
    prods = torch.stack([alpha[t:].prod() for t in range(T + 1)])
    assert torch.allclose(prods, ab, rtol=1e-12, atol=0)


def test_block_weights_are_the_snr_differences():
    ab = noprop.noprop_alpha_bar("cosine", T)
    w = noprop.block_weights(ab, eta=0.5)
    snr = ab / (1 - ab)
    for t in range(1, T + 1):
        assert w[t].item() == pytest.approx(T / 2 * 0.5 * (snr[t] - snr[t - 1]).item(), rel=1e-12)
    assert w[0] == 0 and torch.all(w[1:] > 0)


def test_kl_of_z0_against_torch_distributions():
    ab = noprop.noprop_alpha_bar("linear", 4).clamp(min=0.3)  # a larger ᾱ_0 so the KL is not ~0
    ab = torch.sort(ab).values
    u = torch.randn(5, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    N = torch.distributions.Normal
    want = torch.distributions.kl_divergence(N(ab[0].sqrt() * u, (1 - ab[0]).sqrt()), N(0.0, 1.0)).sum(1)
    assert torch.allclose(noprop.kl_z0(u, ab), want, atol=1e-12)


# ------------------------------------------------------------ a_t, b_t, c_t against their Gaussian


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_abc_are_the_gaussian_conditional_in_closed_form(kind):
    """(z_t, z_{t-1}) | y is jointly Gaussian: condition it by the textbook formula, per coordinate."""
    ab = noprop.noprop_alpha_bar(kind, T)
    alpha = noprop.alphas_from(ab)
    a, b, c = noprop.residual_coefficients(ab)
    for t in range(1, T + 1):
        var_t, var_prev = 1 - ab[t], 1 - ab[t - 1]
        cov = alpha[t - 1].sqrt() * var_t  # Cov(z_t, z_{t-1}) as z_{t-1} = sqrt(α_{t-1}) z_t + noise
        gain = cov / var_prev
        assert b[t].item() == pytest.approx(gain.item(), rel=1e-10)
        # mean = sqrt(ᾱ_t) u + gain (z_{t-1} - sqrt(ᾱ_{t-1}) u): the coefficient of u is a_t
        want_a = ab[t].sqrt() - gain * ab[t - 1].sqrt()
        assert a[t].item() == pytest.approx(want_a.item(), rel=1e-9, abs=1e-12)
        assert c[t].item() == pytest.approx((var_t - cov**2 / var_prev).item(), rel=1e-9, abs=1e-15)
        # the step keeps the marginal: z_{t-1} ~ q(z_{t-1}|y) gives z_t ~ q(z_t|y)
        assert (a[t] + b[t] * ab[t - 1].sqrt()).item() == pytest.approx(ab[t].sqrt().item(), rel=1e-10)
        assert (b[t] ** 2 * var_prev + c[t]).item() == pytest.approx(var_t.item(), rel=1e-10)


def test_abc_match_the_gaussian_by_sampling():
    """Simulate the noising chain from the label end; regress z_t on z_{t-1} for a fixed u."""
    ab = noprop.noprop_alpha_bar("cosine", T)
    alpha = noprop.alphas_from(ab)
    a, b, c = noprop.residual_coefficients(ab)
    g = torch.Generator().manual_seed(0)
    n, u = 400_000, 0.8
    for t in (2, 5, 9, T):
        z_t = ab[t].sqrt() * u + (1 - ab[t]).sqrt() * torch.randn(n, generator=g, dtype=torch.float64)
        z_prev = alpha[t - 1].sqrt() * z_t + (1 - alpha[t - 1]).sqrt() * torch.randn(n, generator=g,
                                                                                      dtype=torch.float64)
        slope = torch.cov(torch.stack([z_t, z_prev]))[0, 1] / z_prev.var()
        intercept = z_t.mean() - slope * z_prev.mean()
        resid = (z_t - intercept - slope * z_prev).var()
        tol = 6 / math.sqrt(n)
        assert abs(slope - b[t]) < tol * 3, (t, slope, b[t])
        assert abs(intercept - a[t] * u) < tol * 3, (t, intercept, a[t] * u)
        assert abs(resid - c[t]) < tol * 2 * c[t] + 1e-4, (t, resid, c[t])


# ------------------------------------------------------------------------------- gradient isolation


@pytest.mark.parametrize("embed", ["onehot", "learned"])
def test_a_block_loss_reaches_no_other_block(embed):
    model = tiny(T=3, embed=embed, embed_dim=6)
    x, y = batch()
    g = torch.Generator().manual_seed(0)
    for t in range(1, model.T + 1):
        model.zero_grad(set_to_none=True)
        noprop.block_loss(model, t, x, y, g).backward()
        for s, block in enumerate(model.blocks, start=1):
            grads = [p.grad for p in block.parameters()]
            if s == t:
                assert all(gr is not None for gr in grads) and any(gr.abs().sum() > 0 for gr in grads)
            else:
                assert all(gr is None for gr in grads), f"block {t}'s loss reached block {s}"
        assert all(p.grad is None for p in model.head.parameters())
    model.zero_grad(set_to_none=True)
    noprop.output_loss(model, y, g).backward()
    assert all(p.grad is None for b in model.blocks for p in b.parameters())
    assert model.head.weight.grad is not None


def test_backprop_chain_sends_gradients_to_every_block():
    torch.manual_seed(0)
    chain = noprop.BackpropChain(T=3, width=16)
    x, y = batch()
    torch.nn.functional.cross_entropy(chain(x), y).backward()
    assert all(p.grad is not None for b in chain.blocks for p in b.parameters())


def test_noprop_step_updates_every_block_and_the_head():
    model = tiny()
    opts = noprop.optimisers(model, 1e-2, 0.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = batch(16)
    losses = noprop.noprop_step(model, opts, x, y, torch.Generator().manual_seed(0))
    assert len(losses) == model.T + 1 and all(math.isfinite(v) for v in losses)
    after = model.state_dict()
    for t in range(model.T):
        key = f"blocks.{t}.fuse.6.weight"
        assert not torch.equal(before[key], after[key])
    assert not torch.equal(before["head.weight"], after["head.weight"])
    assert all(p.grad is None for p in model.parameters()), "a step leaves no gradients behind"
    learned = tiny(embed="learned", embed_dim=6)
    w0 = learned.W_embed.detach().clone()
    opts = noprop.optimisers(learned, 1e-2, 0.0)
    noprop.noprop_step(learned, opts, x, y, torch.Generator().manual_seed(0))
    assert not torch.equal(w0, learned.W_embed.detach()), "a learned embedding is trained too"


def test_adam_ignores_a_constant_factor_on_a_block_loss():
    """Why the book's one-hot NoProp is unaffected by w_t: AdamW's step is scale-free, so the trained
    block computes the same function. (Compared by outputs: a bias in front of a BatchNorm has a zero
    gradient up to rounding, which Adam amplifies into steps that change nothing the block computes;
    float64 keeps the rounding of other near-zero gradient entries from blurring the comparison.)"""
    x, y = batch(16)
    x = x.double()
    z = torch.randn(16, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    outputs = []
    for scale in (1.0, 1000.0):
        model = tiny(T=1).double()
        opt = torch.optim.AdamW(model.blocks[0].parameters(), lr=1e-3, weight_decay=1e-4, eps=1e-12)
        g = torch.Generator().manual_seed(0)
        for _ in range(3):
            opt.zero_grad()
            (scale * noprop.block_loss(model, 1, x, y, g)).backward()
            opt.step()
        outputs.append(model.blocks[0](z, x).detach())
    assert torch.allclose(outputs[0], outputs[1], atol=1e-5)
    assert not torch.allclose(outputs[0], tiny(T=1).double().blocks[0](z, x), atol=1e-2), "training moved it"


# ------------------------------------------------------------------------------------------ inference


def test_inference_shapes_and_callback():
    model = tiny().eval()
    x, _ = batch(5)
    seen = []
    probs = noprop.infer(model, x, samples=3, generator=torch.Generator().manual_seed(0),
                         callback=lambda t, z: seen.append((t, tuple(z.shape))))
    assert probs.shape == (5, 10) and torch.allclose(probs.sum(1), torch.ones(5))
    assert seen == [(t, (15, 10)) for t in range(model.T + 1)]
    assert model.u_hat(2, torch.zeros(5, 10), x).shape == (5, 10)
    assert noprop.predict(model, x, batch_size=2, noise=False).shape == (5, 10)
    g1, g2 = (torch.Generator().manual_seed(3) for _ in range(2))
    assert torch.equal(noprop.infer(model, x, generator=g1), noprop.infer(model, x, generator=g2))
    # the mean path appended to the noisy chains is the noise-free inference; the noisy chains are unchanged
    both = noprop.infer(model, x, samples=2, per_chain=True, mean_path=True,
                        generator=torch.Generator().manual_seed(4))
    noisy = noprop.infer(model, x, samples=2, per_chain=True, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(both[:2], noisy) and torch.allclose(both[2], noprop.infer(model, x, noise=False))


def test_bad_input_gives_one_clear_error():
    model = tiny()
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        noprop.infer(model, torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        noprop.BackpropChain(T=1, width=8)(torch.zeros(2, 28, 28))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="at least 1"):
            noprop.NoPropDT(T=bad)
    with pytest.raises(ValueError, match="at least 1"):
        noprop.BackpropChain(T=0)
    with pytest.raises(ValueError, match="at least 1"):
        noprop.noprop_alpha_bar("cosine", 0)
    with pytest.raises(ValueError, match="Unknown dataset 'mnist'.*fashion-mnist"):
        noprop.load_split("mnist", "test")
    with pytest.raises(ValueError, match="Unknown schedule"):
        noprop.noprop_alpha_bar("sigmoid", 10)
    with pytest.raises(ValueError, match="Unknown class embedding"):
        noprop.NoPropDT(embed="prototype")
    with pytest.raises(ValueError, match="increase with t"):
        noprop.alphas_from(noprop.noprop_alpha_bar("cosine", 5).flip(0))
    assert main(["bench", "noprop", "--dataset", "mnist"]) == 2


# ----------------------------------------------------------------------------------- saved-bytes meter


def test_meter_counts_a_storage_once_and_frees_it_after_backward():
    a = torch.randn(1000, requires_grad=True)
    with noprop.SavedTensorMeter() as meter:
        b = a.exp()  # saves its result (4000 bytes)
        c = b.sin()  # saves its input, the same storage: counted once
        c.sum().backward()
    assert meter.peak == 4000 and meter.current == 0
    with noprop.SavedTensorMeter() as meter:
        for _ in range(3):  # three graphs one after another: the peak is one graph, not three
            a.exp().sum().backward()
    assert meter.peak == 4000


def test_noprop_keeps_far_fewer_saved_bytes_than_backprop():
    x, y = batch(8)
    torch.manual_seed(0)
    np_cost = step_cost(noprop.NoPropDT(T=6, width=16), x, y, repeats=1)
    bp_cost = step_cost(noprop.BackpropChain(T=6, width=16), x, y, repeats=1)
    assert np_cost["saved_bytes_per_step"] < 0.35 * bp_cost["saved_bytes_per_step"]
    assert np_cost["seconds_per_step"] > 0


# ----------------------------------------------------------------------------- training, checkpoints


def test_quick_training_resumes_bit_identically(tmp_path):
    x, y = batch(64)
    cfg = TrainConfig(steps=4, batch_size=16, lr=1e-3, warmup=1, grad_clip=None, ema_decay=0.9, seed=0,
                      ckpt_every=None, log_every=1)
    straight = noprop.train_noprop(tiny(T=2), (x, y), cfg, device="cpu", progress=False)
    state = tmp_path / "s.pt"
    noprop.train_noprop(tiny(T=2), (x, y), TrainConfig(**{**cfg.__dict__, "steps": 2}), device="cpu",
                        state_path=state, progress=False)
    resumed = noprop.train_noprop(tiny(T=2), (x, y), cfg, device="cpu", state_path=state, progress=False)
    assert resumed.steps == 4 and resumed.history == straight.history
    for k, v in straight.ema_model.state_dict().items():
        assert torch.equal(v, resumed.ema_model.state_dict()[k]), k
    with pytest.raises(ValueError, match="used another recipe"):
        noprop.train_noprop(tiny(T=2), (x, y), TrainConfig(**{**cfg.__dict__, "lr": 5e-3}), device="cpu",
                            state_path=state, progress=False)


def test_recipes_load_a_noprop_checkpoint_and_refuse_another(tmp_path, monkeypatch):
    (tmp_path / "MANIFEST.md").write_text("empty\n")
    monkeypatch.setenv("DDPM_NB_CHECKPOINTS", str(tmp_path))
    for name in ("noprop", "noprop-backprop"):
        config = recipes.get_recipe(name).config
        save_weights(tmp_path / f"{name}.pt", recipes.build(config), config=config, meta={"steps": 1})
    model = recipes.load("noprop", device="cpu")
    assert isinstance(model, noprop.NoPropDT) and not model.training
    assert isinstance(recipes.load("noprop-backprop", device="cpu"), noprop.BackpropChain)
    save_weights(tmp_path / "noprop.pt", recipes.build(recipes.get_recipe("noprop-backprop").config),
                 config=recipes.get_recipe("noprop-backprop").config)
    with pytest.raises(ValueError, match="expected"):
        recipes.load("noprop", device="cpu")
