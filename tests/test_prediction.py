"""v-prediction (nets/prediction.py): the wrapper's ε and x̂_0, the v-loss, recipes and checkpoints."""

import pytest
import torch

from ddpm_nb import recipes
from ddpm_nb.checkpoints import load_weights, save_weights
from ddpm_nb.elbo import l_simple
from ddpm_nb.nets import MLPDenoiser
from ddpm_nb.nets.prediction import VPrediction
from ddpm_nb.schedules import alpha_bar, beta_schedule

BETA = beta_schedule("linear", 1000)
AB = alpha_bar(BETA)


class _Oracle(torch.nn.Module):
    """Returns a fixed v whatever the input: lets the tests pick v by hand."""

    def __init__(self, v):
        super().__init__()
        self.value = v

    def forward(self, x, t):
        return self.value


def test_the_true_v_gives_back_the_true_eps_and_x0():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g)
    t = torch.tensor([1, 5, 100, 500, 990, 1000])
    a, s = AB[t].sqrt().float()[:, None], (1 - AB[t]).sqrt().float()[:, None]
    xt, v = a * x0 + s * eps, a * eps - s * x0
    wrapped = VPrediction(_Oracle(v), BETA)
    assert torch.allclose(wrapped(xt, t), eps, atol=1e-5)
    assert torch.allclose(a * xt - s * v, x0, atol=1e-5)  # x̂_0 = α x_t - σ v


def test_an_error_in_v_is_damped_by_alpha_in_eps():
    """At t = T an error δ in v moves ε̂ by α_T δ (0.0063 δ on the linear schedule), where an
    ε-network's error would move x̂_0 by δ σ_T / α_T: the reason for v (chapter 4)."""
    t = torch.tensor([1000])
    delta = torch.tensor([[1.0, 0.0]])
    x = torch.zeros(1, 2)
    moved = VPrediction(_Oracle(delta), BETA)(x, t) - VPrediction(_Oracle(0 * delta), BETA)(x, t)
    assert moved[0, 0].item() == pytest.approx(AB[1000].sqrt().item(), rel=1e-5)


def test_real_valued_t_interpolates_between_the_steps():
    wrapped = VPrediction(_Oracle(torch.zeros(1, 2)), BETA)
    x = torch.ones(1, 2)
    lo, hi, mid = (wrapped(x, torch.tensor([t])) for t in (700.0, 701.0, 700.5))
    assert torch.all((mid - lo) * (mid - hi) < 0)  # strictly between
    assert torch.allclose(wrapped(x, torch.tensor([700])), lo)
    with pytest.raises(ValueError, match="must lie in"):
        wrapped(x, torch.tensor([1001.0]))
    with pytest.raises(ValueError, match="must lie in"):
        wrapped(x, torch.tensor([-1]))


def test_the_recipe_loss_is_the_v_loss():
    torch.manual_seed(0)
    recipe = recipes.get_recipe("ddpm-2d")
    assert recipe.config["prediction"] == "v"
    net = recipes.build(recipe.config)
    assert isinstance(net, VPrediction)
    x0 = torch.randn(256, 2)
    got = recipes.ddpm.diffusion_loss(recipe.config)(net, x0, torch.Generator().manual_seed(3))
    # the same draws by hand: t, then ε, as l_simple makes them
    g = torch.Generator().manual_seed(3)
    t = torch.randint(1, 1001, (256,), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    a, s = AB[t].sqrt().float()[:, None], (1 - AB[t]).sqrt().float()[:, None]
    xt = a * x0 + s * eps
    want = ((net.v(xt, t) - (a * eps - s * x0)) ** 2).mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-4)
    plain = l_simple(net, x0, BETA.float(), generator=torch.Generator().manual_seed(3))
    assert plain.item() < got.item()  # unweighted ε-loss: the 1/ᾱ weights are there


def test_unknown_prediction_is_one_clear_error():
    config = {**recipes.get_recipe("ddpm-2d").config, "prediction": "x0"}
    with pytest.raises(ValueError, match="Unknown prediction 'x0'"):
        recipes.build(config)


def test_a_v_checkpoint_round_trips(tmp_path):
    config = recipes.get_recipe("ddpm-2d").config
    net = recipes.build(config)
    save_weights(tmp_path / "m.pt", net, config=config)
    back, _ = load_weights(tmp_path / "m.pt", recipes.build)
    x, t = torch.randn(4, 2), torch.tensor([1, 2, 999, 1000])
    assert torch.equal(back(x, t), net(x, t))
    eps_net = MLPDenoiser(width=256, depth=4, emb_dim=64)  # an ε-network's weights do not fit a v recipe
    save_weights(tmp_path / "eps.pt", eps_net, config={**config, "prediction": "eps"})
    with pytest.raises(ValueError):
        load_weights(tmp_path / "eps.pt", lambda c: recipes.build({**c, "prediction": "v"}))


def test_a_cosine_v_network_is_inverted_with_the_samplers_alpha_and_sigma():
    """ε̂ = σ(t) x + α(t) v̂ with the very α(t), σ(t) the continuous-time samplers use (one schedule)."""
    from ddpm_nb import sde
    from ddpm_nb.samplers import Denoiser
    from ddpm_nb.schedules import beta_schedule

    beta = beta_schedule("cosine", 1000)
    v_net = lambda x, t: torch.ones_like(x)  # noqa: E731
    wrapped = VPrediction(v_net, beta).double()
    wrapped.log_alpha_bar = wrapped.log_alpha_bar.double()
    model = Denoiser(wrapped, beta)
    x = torch.zeros(3, 2, dtype=torch.float64)
    for t in (999.4, 999.9, 500.25, 0.3):
        a, s = sde.alpha_sigma(model, t)
        eps = wrapped(x, torch.full((3,), t, dtype=torch.float64))
        torch.testing.assert_close(eps, torch.full_like(x, float(a)), rtol=1e-6, atol=1e-9)
