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


def test_the_unet_plans_through_a_trace_that_is_bitwise_the_eager_network():
    import copy

    from ddpm_nb.nets import unet1d

    net = unet1d.UNet1D(obs_dim=5, down_dims=(16, 32), step_dim=16)
    x, o = torch.randn(3, 16, 2), torch.randn(3, 2, 5)
    t = torch.tensor([1, 50, 99])
    with torch.no_grad():
        fast = net(x, t, o)
        assert unet1d._TRACES[net], "no trace was made without gradients"
        assert torch.equal(fast, net._run(x, t, o))
        for p in net.parameters():  # an optimiser's in-place update: the trace shares the parameters
            p.mul_(1.01)
        assert torch.equal(net(x, t, o), net._run(x, t, o)) and not torch.equal(net(x, t, o), fast)
        assert torch.equal(net(x[:1], t[:1], o[:1]), net._run(x[:1], t[:1], o[:1]))  # another shape
        twin = copy.deepcopy(net)  # an EMA copy has its own parameters and no traces of the original's
        assert twin not in unet1d._TRACES
        for p in twin.parameters():
            p.zero_()
        assert torch.equal(net(x, t, o), net._run(x, t, o))
        net.double()  # another dtype: traced again
        assert torch.equal(net(x.double(), t, o.double()), net._run(x.double(), t, o.double()))
    out = net(x.double(), t, o.double())  # with gradients: the eager code, differentiable
    out.sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    with torch.no_grad(), pytest.raises(Exception, match="obs must have shape"):
        net(x, t, o[:, :1])  # the checks still run before the trace
