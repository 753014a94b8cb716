"""The MLP noise predictor of chapters 2-4: shapes, and the optional linear skip path."""

import pytest
import torch

from ddpm_nb.nets import MLPDenoiser


def test_skip_starts_as_the_plain_network_and_adds_a_learnt_linear_path():
    torch.manual_seed(0)
    plain = MLPDenoiser(width=32, depth=2, emb_dim=16)
    torch.manual_seed(0)
    skip = MLPDenoiser(width=32, depth=2, emb_dim=16, skip=True)
    x, t = torch.randn(8, 2), torch.randint(1, 1000, (8,))
    torch.testing.assert_close(skip(x, t), plain(x, t))  # the gain starts at zero
    with torch.no_grad():
        skip.gain.bias.fill_(1.0)
    torch.testing.assert_close(skip(x, t), plain(x, t) + x)  # gain 1: ε̂ = blocks + x
    assert skip.config["skip"] is True and plain.config["skip"] is False


def test_old_configs_without_skip_still_build():
    net = MLPDenoiser(**{"dim": 2, "width": 16, "depth": 1, "emb_dim": 8})
    assert net.gain is None
    assert set(net.state_dict()) == set(MLPDenoiser(width=16, depth=1, emb_dim=8).state_dict())


def test_wrong_shapes_are_refused():
    net = MLPDenoiser(width=16, depth=1, emb_dim=8, skip=True)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 2\)"):
        net(torch.zeros(4, 3), torch.ones(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"t must have shape \(4,\)"):
        net(torch.zeros(4, 2), torch.ones(3, dtype=torch.long))
