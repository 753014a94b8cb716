"""The MLP of chapters 2-4: bad shapes are refused with one clear error each."""

import pytest
import torch

from ddpm_nb.nets import MLPDenoiser


def test_wrong_shapes_are_refused():
    net = MLPDenoiser(width=16, depth=1, emb_dim=8)
    assert net(torch.zeros(4, 2), torch.ones(4, dtype=torch.long)).shape == (4, 2)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 2\)"):
        net(torch.zeros(4, 3), torch.ones(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"t must have shape \(4,\)"):
        net(torch.zeros(4, 2), torch.ones(3, dtype=torch.long))
