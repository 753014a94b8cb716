"""Tests for ddpm_nb.train: the lr schedule, the EMA, the loop, bit-exact resume, checkpoints."""

from __future__ import annotations

import dataclasses
import hashlib
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from ddpm_nb.checkpoints import load_or_train, load_weights, save_weights
from ddpm_nb.train import EMA, STATE_FORMAT, TrainConfig, TrainResult, lr_at, train

CPU = torch.device("cpu")


# ---------------------------------------------------------------------------------------------
# Helpers: a 2 -> hidden -> 1 MLP regressing a fixed smooth function.


def make_mlp(hidden: int = 16, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 1))


def target(x: torch.Tensor) -> torch.Tensor:
    return (torch.sin(2 * x[:, :1]) + 0.5 * x[:, 1:] ** 2).to(x.dtype)


def dataset(n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(123))
    return x, target(x)


def mse(model: nn.Module, batch, generator: torch.Generator) -> torch.Tensor:
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def noisy_mse(model: nn.Module, batch, generator: torch.Generator) -> torch.Tensor:
    """Uses the loss generator, so a resume must also restore the noise stream."""
    x, y = batch
    x = x + 0.1 * torch.randn(x.shape, generator=generator, device=x.device)
    return ((model(x) - y) ** 2).mean()


def cfg_for(steps: int = 60, **kw) -> TrainConfig:
    base = dict(steps=steps, batch_size=32, lr=1e-2, weight_decay=1e-4, warmup=10, min_lr_ratio=0.1,
                grad_clip=1.0, ema_decay=0.9, seed=7, ckpt_every=10, log_every=5)
    return TrainConfig(**{**base, **kw})


def run(cfg: TrainConfig, state_path=None, data=None, loss_fn=noisy_mse, **kw) -> TrainResult:
    return train(make_mlp(), loss_fn, dataset() if data is None else data, cfg, device=CPU,
                 state_path=state_path, progress=False, **kw)


def assert_same_models(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# ---------------------------------------------------------------------------------------------
# lr_at


def test_lr_at_warmup_then_cosine():
    kw = dict(lr=1e-3, warmup=10, total=110, min_lr_ratio=0.1)
    assert lr_at(0, **kw) == 0.0
    assert lr_at(5, **kw) == pytest.approx(5e-4, rel=1e-12)
    assert lr_at(10, **kw) == pytest.approx(1e-3, rel=1e-12)
    assert lr_at(60, **kw) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5), rel=1e-12)  # half-way: cos = 0
    assert lr_at(35, **kw) == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4))), rel=1e-12)
    assert lr_at(110, **kw) == pytest.approx(1e-4, rel=1e-12)
    assert lr_at(500, **kw) == pytest.approx(1e-4, rel=1e-12)
    assert lr_at(0, lr=1e-3, warmup=0, total=10) == 1e-3  # no warm-up: starts at the peak
    assert lr_at(10, lr=1e-3, warmup=0, total=10) == 0.0


@pytest.mark.parametrize("kw", [dict(warmup=20, total=10), dict(warmup=-1, total=10),
                                dict(warmup=0, total=0), dict(warmup=0, total=10, min_lr_ratio=2.0)])
def test_lr_at_rejects_bad_settings(kw):
    with pytest.raises(ValueError):
        lr_at(0, lr=1e-3, **kw)


# ---------------------------------------------------------------------------------------------
# EMA


class Scalar(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("scale", torch.tensor(4.0, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(0))


def test_ema_matches_hand_computation():
    model = Scalar()
    ema = EMA(model, decay=0.5)
    shadow_w, shadow_scale = 1.0, 4.0
    for n in range(12):
        w, scale = 2.0 + n, 4.0 - n
        with torch.no_grad():
            model.w.fill_(w)
            model.scale.fill_(scale)
            model.count.fill_(n + 1)
        d = min(0.5, (1 + n) / (10 + n))  # 0.1, 0.1818..., ... capped at 0.5 from n = 8
        assert ema.current_decay() == pytest.approx(d, rel=1e-15)
        ema.update(model)
        shadow_w = d * shadow_w + (1 - d) * w
        shadow_scale = d * shadow_scale + (1 - d) * scale
    assert ema.num_updates == 12
    assert ema.shadow["w"].item() == pytest.approx(shadow_w, rel=1e-13)
    assert ema.shadow["scale"].item() == pytest.approx(shadow_scale, rel=1e-13)
    assert ema.shadow["count"].item() == 12  # integer buffers are copied
    assert ema.shadow["w"].item() == pytest.approx(12.0125, rel=1e-9)  # lags the last weight, 13

    other = Scalar()
    ema.copy_to(other)
    assert other.w.item() == ema.shadow["w"].item() and other.count.item() == 12

    again = EMA(Scalar(), decay=0.1)
    again.load_state_dict(ema.state_dict())
    ema.update(model)
    again.update(model)
    assert again.num_updates == 13 and torch.equal(again.shadow["w"], ema.shadow["w"])


def test_ema_rejects_another_model():
    ema = EMA(make_mlp(16))
    with pytest.raises(ValueError, match="shape"):
        ema.copy_to(make_mlp(8))


# ---------------------------------------------------------------------------------------------
# The loop


def test_loss_really_drops_and_ema_model_is_good():
    x, y = dataset()
    result = run(cfg_for(300, ema_decay=0.95), data=(x, y), loss_fn=mse)
    assert len(result.history) == 300 and result.steps == 300 and result.seconds > 0
    first, last = sum(result.history[:20]) / 20, sum(result.history[-20:]) / 20
    assert last < 0.2 * first, (first, last)
    assert not result.ema_model.training and result.model is not result.ema_model
    with torch.no_grad():
        before = ((make_mlp()(x) - y) ** 2).mean().item()
        after = ((result.ema_model(x) - y) ** 2).mean().item()
    assert after < 0.2 * before, (before, after)


def test_data_as_callable_and_generators_are_explicit():
    seen = []

    def sample(batch_size: int, generator: torch.Generator):
        seen.append(generator.device.type)
        x = torch.randn(batch_size, 2, generator=generator)
        return x, target(x)

    def loss(model, batch, generator):
        assert isinstance(generator, torch.Generator) and generator.device.type == "cpu"
        return noisy_mse(model, batch, generator)

    a = run(cfg_for(200), data=sample, loss_fn=loss)
    b = run(cfg_for(200), data=sample, loss_fn=loss)
    assert seen == ["cpu"] * 400
    assert a.history == b.history  # same seed, same batches and noise
    x, y = dataset()
    with torch.no_grad():
        before = ((make_mlp()(x) - y) ** 2).mean().item()
        after = ((a.ema_model(x) - y) ** 2).mean().item()
    assert after < 0.5 * before, (before, after)
    c = run(cfg_for(200, seed=8), data=sample, loss_fn=loss)
    assert c.history != a.history


def test_update_k_uses_lr_at_k():
    """Under warm-up, update 0 has lr_at(0) = 0: AdamW (with weight decay) leaves the weights as they were."""
    model, snapshots = make_mlp(), []
    start = {k: v.clone() for k, v in model.state_dict().items()}
    cb = lambda step, loss: snapshots.append({k: v.clone() for k, v in model.state_dict().items()})  # noqa: E731
    train(model, noisy_mse, dataset(), cfg_for(3, warmup=2), device=CPU, callback=cb, progress=False)
    assert all(torch.equal(start[k], snapshots[0][k]) for k in start)
    assert not all(torch.equal(snapshots[0][k], snapshots[1][k]) for k in start)


@pytest.mark.parametrize("clip", [0.01, None])
def test_gradients_are_clipped_to_the_global_norm(clip):
    model, norms = make_mlp(), []

    def cb(step, loss):  # gradients are still there after the update, as clipped
        norms.append(torch.stack([p.grad.norm() for p in model.parameters()]).norm().item())

    train(model, noisy_mse, dataset(), cfg_for(10, warmup=2, grad_clip=clip), device=CPU, callback=cb,
          progress=False)
    if clip is None:
        assert min(norms) > 0.05
    else:
        assert max(norms) <= clip * (1 + 1e-5)


def test_single_tensor_data_and_bad_data():
    x, y = dataset()
    xy = torch.cat([x, y], dim=1)

    def loss(model, batch, generator):
        assert batch.shape == (32, 3)
        return mse(model, (batch[:, :2], batch[:, 2:]), generator)

    assert len(run(cfg_for(5, warmup=2), data=xy, loss_fn=loss).history) == 5
    with pytest.raises(ValueError, match="first dimension"):
        run(cfg_for(5, warmup=2), data=(x, y[:10]))
    with pytest.raises(ValueError, match="scalar"):
        run(cfg_for(5, warmup=2), loss_fn=lambda m, b, g: (m(b[0]) - b[1]) ** 2)


def test_nan_loss_is_one_clear_error():
    with pytest.raises(FloatingPointError, match="step 1"):
        run(cfg_for(5, warmup=2), loss_fn=lambda m, b, g: m(b[0]).sum() * float("nan"))


@pytest.mark.parametrize("field", [dict(steps=0), dict(warmup=100), dict(ema_decay=1.0), dict(grad_clip=0.0)])
def test_config_validation(field):
    with pytest.raises(ValueError, match="TrainConfig"):
        cfg_for(**{"steps": 60, **field})


# ---------------------------------------------------------------------------------------------
# Resume


class Interrupt:
    """Raise KeyboardInterrupt once, at step `at`: from the callback (after the update) or from
    inside the loss (before the update, after the batch and some noise were drawn)."""

    def __init__(self, at: int, where: str) -> None:
        self.at, self.where, self.calls, self.fired = at, where, 0, False

    def callback(self, step: int, loss: float) -> None:
        if self.where == "callback" and step == self.at and not self.fired:
            self.fired = True
            raise KeyboardInterrupt

    def loss(self, model, batch, generator):
        self.calls += 1
        value = noisy_mse(model, batch, generator)
        if self.where == "loss" and self.calls == self.at and not self.fired:
            self.fired = True
            raise KeyboardInterrupt
        return value


@pytest.mark.parametrize("where", ["callback", "loss"])
def test_interrupted_run_resumes_bit_identically(tmp_path, where):
    cfg = cfg_for(60)
    a = run(cfg, state_path=tmp_path / "a.pt")

    stop = Interrupt(23, where)
    path = tmp_path / "b.pt"
    with pytest.raises(KeyboardInterrupt):
        run(cfg, state_path=path, loss_fn=stop.loss, callback=stop.callback)
    state = torch.load(path, weights_only=True)
    done = 23 if where == "callback" else 22  # the loss raised inside step 23: 22 steps were done
    assert state["format"] == STATE_FORMAT and state["step"] == done and len(state["history"]) == done
    assert leftovers(tmp_path, {"a.pt", "b.pt"}) == []

    b = run(cfg, state_path=path, loss_fn=stop.loss, callback=stop.callback)
    assert b.history == a.history and b.steps == 60
    assert all(type(v) is float for v in b.history)
    assert_same_models(b.model, a.model)
    assert_same_models(b.ema_model, a.ema_model)
    assert torch.load(path, weights_only=True)["step"] == 60

    c = run(cfg, state_path=path)  # already finished: loads, trains nothing, same result
    assert c.history == a.history
    assert_same_models(c.ema_model, a.ema_model)


def test_resume_with_another_recipe_names_the_field(tmp_path):
    path = tmp_path / "s.pt"
    run(cfg_for(10, warmup=5), state_path=path)
    with pytest.raises(ValueError, match=r"lr \(saved 0.01, now 0.02\)"):
        run(cfg_for(10, warmup=5, lr=2e-2), state_path=path)
    with pytest.raises(ValueError, match="ema_decay"):
        run(cfg_for(10, warmup=5, ema_decay=0.99), state_path=path)
    with pytest.raises(ValueError, match="another recipe"):
        run(cfg_for(10, warmup=5, seed=3, batch_size=16), state_path=path)
    with pytest.raises(ValueError, match="beyond steps=5"):
        run(cfg_for(5, warmup=5), state_path=path)
    assert torch.load(path, weights_only=True)["step"] == 10  # untouched by the refusals


def test_more_steps_on_resume_continue(tmp_path):
    path = tmp_path / "s.pt"
    first = run(cfg_for(30), state_path=path)
    more = run(cfg_for(45, log_every=3), state_path=path)
    assert more.steps == 45 and len(more.history) == 45
    assert more.history[:30] == first.history
    assert torch.load(path, weights_only=True)["step"] == 45


def test_truncated_state_is_one_clear_error_and_changes_nothing(tmp_path):
    path = tmp_path / "s.pt"
    run(cfg_for(10), state_path=path)
    path.write_bytes(path.read_bytes()[:500])
    model = make_mlp()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=rf"{path.name} is corrupt or truncated.*delete it"):
        train(model, noisy_mse, dataset(), cfg_for(10), device=CPU, state_path=path, progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_state_for_another_model_is_refused(tmp_path):
    path = tmp_path / "s.pt"
    run(cfg_for(10), state_path=path)
    with pytest.raises(ValueError, match="does not fit this model"):
        train(make_mlp(8), noisy_mse, dataset(), cfg_for(20), device=CPU, state_path=path, progress=False)


# ---------------------------------------------------------------------------------------------
# Published weights


def build(config: dict) -> nn.Module:
    return make_mlp(config["hidden"], seed=99)


@pytest.fixture(scope="module")
def trained() -> TrainResult:
    return run(cfg_for(20))


def test_save_load_round_trip(tmp_path, trained):
    path = tmp_path / "mlp.pt"
    digest = save_weights(path, trained.ema_model, config={"hidden": 16, "sizes": (2, 1)},
                          meta={"steps": 20, "command": "pytest"})
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert leftovers(tmp_path, {"mlp.pt"}) == []
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"format", "state_dict", "config", "meta"}
    assert raw["config"] == {"hidden": 16, "sizes": [2, 1]}  # JSON-plain: tuples become lists

    model, meta = load_weights(path, build, expect={"hidden": 16, "sizes": (2, 1)}, map_location="cpu")
    assert meta == {"steps": 20, "command": "pytest"} and not model.training
    assert_same_models(model, trained.ema_model)
    assert path.stat().st_size < 20_000  # weights only: no optimizer, no history


def test_load_weights_errors(tmp_path, trained):
    path = tmp_path / "mlp.pt"
    save_weights(path, trained.ema_model, config={"hidden": 16})
    with pytest.raises(ValueError, match=r"has hidden=16 but hidden=32 is expected.*retrain"):
        load_weights(path, build, expect={"hidden": 32})
    with pytest.raises(ValueError, match=r"has no 'schedule' in its config but schedule='cosine'"):
        load_weights(path, build, expect={"schedule": "cosine"})
    shape = r"does not fit.*0.weight is \(16, 2\) in the file but \(32, 2\) in the model"
    with pytest.raises(ValueError, match=shape):
        load_weights(path, lambda c: make_mlp(32))
    with pytest.raises(ValueError, match="missing"):
        load_weights(path, lambda c: nn.Sequential(*make_mlp(16), nn.Linear(1, 1)))
    with pytest.raises(FileNotFoundError, match="No checkpoint at"):
        load_weights(tmp_path / "nope.pt", build)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt is not a torch file, not a checkpoint"):
        load_weights(bad, build)
    bad.write_bytes(path.read_bytes()[:300])  # a cut download or copy
    with pytest.raises(ValueError, match="bad.pt is corrupt or truncated"):
        load_weights(bad, build)
    bad.write_text('{"episodes": 50}')  # an evaluation JSON passed by mistake
    with pytest.raises(ValueError, match="bad.pt is a JSON file, not a checkpoint"):
        load_weights(bad, build)
    with pytest.raises(ValueError, match="JSON"):
        save_weights(tmp_path / "x.pt", trained.ema_model, config={"t": torch.ones(2)})
    assert not (tmp_path / "x.pt").exists()


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path, trained, monkeypatch):
    path = tmp_path / "mlp.pt"
    save_weights(path, trained.ema_model, config={"hidden": 16})
    old = path.read_bytes()

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_weights(path, trained.model, config={"hidden": 16})
    assert path.read_bytes() == old and leftovers(tmp_path, {"mlp.pt"}) == []


def test_load_or_train(tmp_path, trained, capsys):
    path = tmp_path / "sub" / "mlp.pt"
    calls = []

    def train_fn():
        calls.append(1)
        return trained  # a TrainResult: its ema_model is saved

    m1 = load_or_train(path, build, train_fn, config={"hidden": 16})
    assert len(calls) == 1 and path.exists() and "trained in" in capsys.readouterr().out
    assert_same_models(m1, trained.ema_model)
    assert torch.load(path, weights_only=True)["meta"]["steps"] == 20

    m2 = load_or_train(path, build, train_fn, config={"hidden": 16}, expect={"hidden": 16})
    out = capsys.readouterr().out
    assert len(calls) == 1 and out.startswith(f"loaded {path} (sha256 ")
    assert_same_models(m2, trained.ema_model)

    load_or_train(path, build, lambda: (calls.append(1), trained.ema_model)[1], config={"hidden": 16},
                  train=True)
    assert len(calls) == 2 and "trained in" in capsys.readouterr().out
    assert leftovers(path.parent, {"mlp.pt"}) == []
    with pytest.raises(ValueError, match="hidden"):
        load_or_train(path, build, train_fn, config={"hidden": 16}, expect={"hidden": 8})


def test_config_is_plain():
    assert dataclasses.asdict(cfg_for(10))["grad_clip"] == 1.0
