"""Block-parallel NoProp-DT: 2 workers give the weights of 1 worker, the gathered model is a checkpoint the
book loads, the noise of a block does not depend on its neighbours, and bad input is one clear error."""

from __future__ import annotations

import os

import pytest
import torch

from ddpm_nb import noprop, recipes
from ddpm_nb.checkpoints import load_weights, save_weights
from ddpm_nb.train import TrainConfig, train

CFG = TrainConfig(steps=3, batch_size=16, lr=1e-2, warmup=1, grad_clip=None, ema_decay=0.9, seed=0,
                  ckpt_every=None, log_every=1)


def tiny(T: int = 3, **kw) -> noprop.NoPropDT:
    torch.manual_seed(0)
    return noprop.NoPropDT(T=T, width=16, **kw)


def data(n: int = 64, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g) * 2 - 1, torch.randint(10, (n,), generator=g)


@pytest.fixture(scope="module")
def one_and_two():
    """The same tiny run (T = 3 blocks and the head, 3 steps) with 1 worker and with 2."""
    x, y = data()
    return [noprop.train_noprop_parallel(tiny(), (x, y), CFG, workers=w) for w in (1, 2)]


def test_two_workers_give_the_weights_of_one(one_and_two):
    one, two = one_and_two
    assert one.blocks == [[1, 2, 3, 4]] and two.blocks == [[1, 2], [3, 4]]  # the head (4) with the last
    start = tiny().state_dict()
    for which in ("model", "ema_model"):
        a, b = getattr(one, which).state_dict(), getattr(two, which).state_dict()
        for k, v in a.items():
            assert torch.allclose(v.float(), b[k].float(), rtol=1e-6, atol=1e-7), f"{which} {k}"
    moved = [k for k, v in one.model.state_dict().items() if not torch.equal(v, start[k])]
    assert any(k.startswith("blocks.0.") for k in moved) and any(k.startswith("blocks.2.") for k in moved)
    assert any(k.startswith("head.") for k in moved), "the head is trained (by the last worker)"
    assert one.steps == two.steps == CFG.steps and len(two.history) == CFG.steps
    assert one.history == pytest.approx(two.history, rel=1e-6)


def test_one_worker_is_train_noprop_with_per_block_noise(one_and_two):
    x, y = data()
    factory, step = noprop.noprop_training(tiny(), per_block_noise=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the one worker runs: a convolution's sums depend on the thread count
    try:
        here = train(tiny(), None, (x, y), CFG, device="cpu", progress=False, step=step, optimizers=factory)
    finally:
        torch.set_num_threads(threads)
    for k, v in here.ema_model.state_dict().items():
        assert torch.equal(v, one_and_two[0].ema_model.state_dict()[k]), k


def test_a_block_draws_the_same_noise_whoever_trains_beside_it():
    gen = torch.Generator().manual_seed(3)
    state = gen.get_state()
    all_of_them = noprop.block_generators(gen, [1, 2, 3, 4])
    after_all = gen.get_state()
    gen.set_state(state)
    alone = noprop.block_generators(gen, [3])
    assert torch.equal(gen.get_state(), after_all), "one draw of the loop's generator, whatever the blocks"
    assert torch.equal(torch.randn(5, generator=all_of_them[2]), torch.randn(5, generator=alone[0]))
    assert not torch.equal(torch.randn(5, generator=all_of_them[0]), torch.randn(5, generator=all_of_them[1]))


def test_the_gathered_model_is_a_checkpoint_the_book_loads(one_and_two, tmp_path):
    two = one_and_two[1]
    config = {**recipes.get_recipe("noprop").config, "net_config": two.model.net_config}
    save_weights(tmp_path / "noprop.pt", two.ema_model, config=config, meta={"steps": two.steps})
    model, _ = load_weights(tmp_path / "noprop.pt", recipes.build, expect={"net": "NoPropDT"},
                            map_location="cpu")
    for k, v in two.ema_model.state_dict().items():
        assert torch.equal(v, model.state_dict()[k]), k


@pytest.mark.parametrize("workers, message", [
    (0, r"workers must be a whole number, at least 1, got 0\."),
    (5, r"workers must be at most the number of blocks \(T = 3\), got 5: each worker trains at least one"),
])
def test_bad_worker_counts_are_one_sentence(workers, message):
    with pytest.raises(ValueError, match=message):
        noprop.train_noprop_parallel(tiny(), data(), CFG, workers=workers)


def test_a_learned_embedding_and_a_bad_timing_are_refused():
    with pytest.raises(ValueError, match="needs fixed one-hot class embeddings"):
        noprop.train_noprop_parallel(tiny(embed="learned", embed_dim=6), data(), CFG)
    with pytest.raises(ValueError, match="timed_from must lie in 1..steps-1"):
        noprop.train_noprop_parallel(tiny(), data(), CFG, timed_from=3)


def test_a_worker_run_resumes_from_its_state_file(one_and_two, tmp_path):
    x, y = data()
    short = TrainConfig(**{**CFG.__dict__, "steps": 2})
    noprop.train_noprop_parallel(tiny(), (x, y), short, workers=1, state_dir=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["worker0-of-1.state.pt"]
    resumed = noprop.train_noprop_parallel(tiny(), (x, y), CFG, workers=1, state_dir=tmp_path)
    assert resumed.history == one_and_two[0].history
    for k, v in one_and_two[0].ema_model.state_dict().items():
        assert torch.equal(v, resumed.ema_model.state_dict()[k]), k


def test_an_error_in_a_worker_is_the_parents_one_sentence():
    small = torch.zeros(64, 1, 14, 14), torch.zeros(64, dtype=torch.int64)
    with pytest.raises(ValueError, match=r"x must be a batch of 28x28 grey images"):
        noprop.train_noprop_parallel(tiny(), small, CFG, workers=2, timed_from=1)


def test_train_noprop_workers_on_the_command_line(tmp_path, monkeypatch, capsys):
    """`ddpm-nb train noprop --workers 2` (quick) writes a checkpoint the book loads, its state in a folder
    of worker files, and the weights of the same run in one process."""
    from ddpm_nb.cli import main
    from ddpm_nb.recipes import build, get_recipe, train_config

    if "DDPM_NB_DATA" not in os.environ:
        pytest.skip("needs the data sets (DDPM_NB_DATA)")
    out = tmp_path / "np.pt"
    assert main(["train", "noprop", "--quick", "--workers", "2", "--out", str(out)]) == 0, capsys.readouterr()
    assert "its blocks over 2 processes" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "np.workers").iterdir()) == [
        "worker0-of-2.state.pt", "worker1-of-2.state.pt"]
    got, meta = load_weights(out, build, map_location="cpu")
    assert meta["workers"] == 2 and meta["threads"] == 1
    recipe, cfg = get_recipe("noprop"), train_config("noprop", quick=True)
    torch.manual_seed(cfg.seed)
    here = noprop.train_noprop_parallel(build(recipe.config), recipe.data(), cfg, workers=1)
    for k, v in here.ema_model.state_dict().items():
        assert torch.allclose(v.float(), got.state_dict()[k].float(), rtol=1e-6, atol=1e-7), k


@pytest.mark.parametrize("argv, says", [
    (["train", "pusht", "--workers", "2"], "pusht is one network: use --threads"),
    (["train", "noprop", "--workers", "2", "--threads", "2"], "leave out --threads"),
    (["train", "noprop", "--workers", "2", "--device", "cuda"], "leave out --device"),
    (["train", "noprop", "--workers", "0"], "--workers"),
])
def test_bad_worker_options_are_one_sentence(argv, says, capsys):
    from ddpm_nb.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
