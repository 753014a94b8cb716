"""Tests for chapter 6's build exercise (6.5, one NoProp block's training step): the right build passes,
each realistic wrong build (a leak across blocks among them) fails with the message that names it."""

import pytest
import torch

from ddpm_nb.exercises import ExerciseNotDone, ExerciseWrong, ch06


def block_optimiser(model, t, lr):
    return torch.optim.AdamW(model.blocks[t - 1].parameters(), lr=lr)


def _z(model, t, y, generator, s=None):
    """u_y and a draw of z_s ~ q(z_s | y) (s = t - 1 unless given)."""
    s = t - 1 if s is None else s
    u = model.embed(y)
    eps = torch.randn(u.shape, generator=generator)
    ab = model.alpha_bar
    return u, ab[s].sqrt() * u + (1 - ab[s]).sqrt() * eps


def make_step(z_from="q", zero=True, weight=True, reduce="sum", step_first=False):
    def block_step(model, opt, t, x, y, generator):
        if zero:
            opt.zero_grad()
        if z_from == "q":
            u, z = _z(model, t, y, generator)
        elif z_from == "q_t":
            u, z = _z(model, t, y, generator, s=t)
        else:  # z_{t-1} from the previous block's prediction (one inference step from a draw of z_{t-2})
            u, z = _z(model, t, y, generator, s=max(t - 2, 0))
            if t > 1:
                a, b, c = model.abc
                ctx = torch.no_grad() if z_from == "chain_detached" else torch.enable_grad()
                with ctx:
                    z = a[t - 1] * model.u_hat(t - 1, z, x) + b[t - 1] * z
        err = (model.u_hat(t, z, x) - u) ** 2
        loss = (err.sum(1) if reduce == "sum" else err).mean()
        loss = model.weights[t] * loss if weight else loss
        if step_first:
            opt.step()
        loss.backward()
        if not step_first:
            opt.step()
        return loss.item()

    return block_step


def test_the_right_build_passes(capsys):
    ch06.check_noprop_block(block_optimiser, make_step())
    assert capsys.readouterr().out.startswith("✓ Exercise 6.5 passed")


def test_model_zero_grad_and_a_tensor_loss_pass_too(capsys):
    step = make_step()

    def block_step(model, opt, t, x, y, generator):
        model.zero_grad()
        return torch.tensor(step(model, opt, t, x, y, generator))

    ch06.check_noprop_block(block_optimiser, block_step)
    assert "✓ Exercise 6.5 passed" in capsys.readouterr().out


def test_stubs_are_not_done():
    def stub(*args):
        raise NotImplementedError

    with pytest.raises(ExerciseNotDone, match="6.5"):
        ch06.check_noprop_block(stub, make_step())
    with pytest.raises(ExerciseNotDone, match="6.5"):
        ch06.check_noprop_block(block_optimiser, stub)


@pytest.mark.parametrize("optimiser, step, match", [
    # the leak the exercise is about: z_{t-1} computed through block t - 1, graph kept
    (block_optimiser, make_step(z_from="chain"), "a gradient reached block 2 from block 3's loss"),
    # the chain again, detached: no gradient, but block t - 1 ran (its BatchNorm statistics moved)
    (block_optimiser, make_step(z_from="chain_detached"), "block 2's running statistics"),
    (lambda m, t, lr: torch.optim.AdamW(m.parameters(), lr=lr), make_step(),
     "holds parameters outside block 3"),
    (lambda m, t, lr: torch.optim.AdamW(list(m.blocks[t - 1].parameters())[:-2], lr=lr), make_step(),
     "misses some of block 3's parameters"),
    (block_optimiser, make_step(zero=False), "Clear block t's old gradients first"),
    (block_optimiser, make_step(step_first=True), "parameters did not change: call opt.step\\(\\) after"),
    (block_optimiser, make_step(weight=False), "Multiply by the block's weight w_t"),
    (block_optimiser, make_step(z_from="q_t"), "drawn with ᾱ_\\{t-1\\}"),
    (block_optimiser, make_step(reduce="mean"), "Sum the squared error over the d coordinates"),
])
def test_wrong_builds_fail_with_their_message(optimiser, step, match):
    with pytest.raises(ExerciseWrong, match=match):
        ch06.check_noprop_block(optimiser, step)


def test_stepping_before_the_backward_pass_is_named():
    step = make_step(zero=False)

    def block_step(model, opt, t, x, y, generator):  # the previous step's update, then this step's loss
        opt.step()
        opt.zero_grad()
        return step(model, torch.optim.SGD(model.blocks[t - 1].parameters(), lr=0.0), t, x, y, generator)

    with pytest.raises(ExerciseWrong, match="after loss.backward\\(\\): you stepped first"):
        ch06.check_noprop_block(block_optimiser, block_step)


def test_training_every_block_on_the_summed_loss_is_a_leak():
    def all_blocks(model, opt, t, x, y, generator):
        opt.zero_grad()
        total = 0
        for s in range(1, model.T + 1):
            u, z = _z(model, s, y, torch.Generator().manual_seed(0) if s != t else generator)
            total = total + model.weights[s] * ((model.u_hat(s, z, x) - u) ** 2).sum(1).mean()
        total.backward()
        opt.step()
        return total.item()

    with pytest.raises(ExerciseWrong, match="a gradient reached block 1"):
        ch06.check_noprop_block(block_optimiser, all_blocks)


def test_calling_the_package_is_rejected():
    from ddpm_nb import noprop

    def step(model, opt, t, x, y, generator):
        return noprop.noprop_step(model, [opt], x, y, generator, blocks=[t])[0]

    with pytest.raises(ExerciseWrong, match="the package's own answer"):
        ch06.check_noprop_block(block_optimiser, step)
    with pytest.raises(ExerciseWrong, match="the package's own answer"):
        ch06.check_noprop_block(lambda m, t, lr: noprop.optimisers(m, lr, 0.01, [t])[0], make_step())
