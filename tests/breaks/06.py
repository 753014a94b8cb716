"""Chapter 6's formulas, broken: the residual coefficients, and a block loss that runs the chain before it."""

PATCH = '''
import torch, ddpm_nb.noprop as _n, ddpm_nb.noprop.schedule as _sch, ddpm_nb.noprop.model as _m
import ddpm_nb.noprop.step as _st
_good_abc = _sch.residual_coefficients
def _broken_abc(alpha_bar):
    a, b, c = _good_abc(alpha_bar)
    alpha = _sch.alphas_from(alpha_bar)
    ab, ab_prev, a_prev = alpha_bar[1:], alpha_bar[:-1], alpha[:-1]
    b = torch.cat([b[:1], a_prev * (1 - ab) / (1 - ab_prev)])   # sqrt(α_{t-1}) became α_{t-1}
    return a, b, c
_sch.residual_coefficients = _m.residual_coefficients = _n.residual_coefficients = _broken_abc
def _broken_block_loss(model, t, x, y, generator):
    u = model.embed(y)
    z = torch.randn(u.shape, generator=generator, device=u.device, dtype=u.dtype)
    a, b, c = model.abc
    for s in range(1, t):   # z_{t-1} from the model's own chain (gradients flow back) instead of q(z_{t-1}|y)
        z = a[s] * model.u_hat(s, z, x) + b[s] * z
    return model.weights[t] * ((model.u_hat(t, z, x) - u) ** 2).sum(1).mean()
_st.block_loss = _n.block_loss = _broken_block_loss
'''
