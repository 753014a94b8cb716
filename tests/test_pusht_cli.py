"""`ddpm-nb train pusht | pusht-bc` and `ddpm-nb eval pusht`: the commands behind chapter 5's numbers.

The end-to-end test trains for a few steps on the real demonstrations (shared data folder) and scores
the result on one episode of gym-pusht; the committed checkpoints are checked to load with
weights_only=True and to match their recipes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ddpm_nb import recipes
from ddpm_nb.cli import main
from ddpm_nb.data.pusht import STORE_NAME
from ddpm_nb.policy import POLICIES, load_policy, make_planner, policy_config, recipe_config

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"  # what `make` sets DDPM_NB_DATA to
REAL = SHARED / "pusht" / STORE_NAME
FIELDS = {"episodes", "mean_score", "mean_max_coverage", "success_rate", "plans_per_second", "sampler",
          "steps", "checkpoint", "checkpoint_sha256",
          # what decides the per-episode scores, and the protocol (issue 12, Build 5)
          "torch", "threads", "gym_pusht", "pymunk", "cpu_model", "cpu_flags", "max_steps",
          "success_threshold",
          # issue 15: per-episode outcomes, intervals, the processes
          "final_coverages", "max_coverages", "steps_to_success", "success_rate_ci95", "mean_score_ci95",
          "mean_score_ci95_method", "success_rate_ci95_method", "workers"}


@pytest.fixture
def data_root(monkeypatch):
    if not REAL.is_dir():
        pytest.skip(f"the shared data folder has no {REAL}")
    monkeypatch.setenv("DDPM_NB_DATA", str(SHARED))
    before = torch.get_num_threads()
    yield SHARED
    torch.set_num_threads(before)  # the commands set --threads for the whole process


def test_recipes_store_the_configs_the_policy_builds():
    wide = {"features": "keypoints", "down_dims": (48, 96, 192)}
    assert recipes.get_recipe("pusht").config == recipe_config("diffusion", **wide)
    assert recipes.get_recipe("pusht-flow").config == recipe_config("flow", **wide)
    assert recipes.get_recipe("pusht-bc").config == recipe_config("regression")
    for name in ("pusht", "pusht-flow", "pusht-bc"):
        model = recipes.build(recipes.get_recipe(name).config)
        assert model.config == recipes.get_recipe(name).config  # what a checkpoint stores comes back


def test_train_resume_and_eval_end_to_end(tmp_path, data_root, capsys):
    pytest.importorskip("gym_pusht")
    out = tmp_path / "pusht.pt"
    train = ["train", "pusht", "--steps", "60", "--threads", "1", "--out", str(out)]
    assert main(train) == 0
    model, meta = load_policy(out, map_location="cpu")
    assert meta["command"] == "ddpm-nb " + " ".join(train) and meta["steps"] == 60 and meta["seconds"] > 0
    assert meta["threads"] == 1 and meta["device"] == "cpu" and meta["torch"] == torch.__version__
    assert model.config == recipes.get_recipe("pusht").config and out.with_suffix(".state.pt").is_file()
    assert out.stat().st_size <= 20 * 1024 * 1024
    # rerunning the same command resumes from the saved state: here it is finished, so the same weights
    assert main(train) == 0
    again, _ = load_policy(out, map_location="cpu")
    for k, v in model.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]), k

    report = tmp_path / "eval.json"
    assert main(["eval", "pusht", "--policy", "diffusion", "--checkpoint", str(out), "--episodes", "1",
                 "--seed", "0", "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert FIELDS <= set(result) and result["episodes"] == 1 and result["policy"] == "diffusion"
    assert result["sampler"] == "dpm_solver" and result["steps"] == 5 and result["first"] == 99
    assert 0 <= result["mean_score"] <= 1 and result["plans_per_second"] > 0
    assert result["command"].startswith("ddpm-nb eval pusht") and len(result["checkpoint_sha256"]) == 64
    assert result["threads"] == 1 and result["max_steps"] == 300 and result["success_threshold"] == 0.95
    assert result["gym_pusht"] == "0.1.8" and result["pymunk"].split(".")[0] < "7" and result["cpu_model"]
    # the same command again: the same per-episode scores, to the bit
    second = tmp_path / "again.json"
    assert main(["eval", "pusht", "--policy", "diffusion", "--checkpoint", str(out), "--episodes", "1",
                 "--seed", "0", "--json", str(second)]) == 0
    assert json.loads(second.read_text())["scores"] == result["scores"]


def test_eval_refuses_unknown_samplers_policies_and_mismatched_checkpoints(tmp_path, capsys):
    assert main(["eval", "pusht", "--sampler", "nope", "--episodes", "1"]) == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    assert main(["eval", "pusht", "--policy", "transformer"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["eval", "cartpole"]) == 2
    assert "invalid choice: 'cartpole'" in capsys.readouterr().err
    assert main(["eval", "pusht", "--checkpoint", str(tmp_path / "none.pt")]) == 2
    assert "No checkpoint at" in capsys.readouterr().err
    from ddpm_nb.policy import PolicyModel, save_policy

    save_policy(tmp_path / "diffusion.pt", PolicyModel(policy_config("diffusion", down_dims=(8, 16))))
    assert main(["eval", "pusht", "--policy", "bc", "--checkpoint", str(tmp_path / "diffusion.pt")]) == 2
    assert "holds a diffusion policy, not the bc one" in capsys.readouterr().err


def test_planner_defaults_and_the_baseline_takes_no_sampler():
    from ddpm_nb.policy import PolicyModel

    planner = make_planner(PolicyModel(policy_config("diffusion", down_dims=(8, 16))))
    assert (planner.sampler, planner.steps, planner.first) == ("dpm_solver", 5, 99)  # DEFAULT_SAMPLER
    ddpm = make_planner(PolicyModel(policy_config("diffusion", down_dims=(8, 16))), "ddpm")
    assert (ddpm.steps, ddpm.first) == (100, 100)
    with pytest.raises(ValueError, match="takes no sampler"):
        make_planner(PolicyModel(policy_config("regression", down_dims=(8, 16))), "ddim")


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_committed_policy_checkpoint_loads_with_weights_only(policy):
    name = POLICIES[policy][0]
    path = recipes.checkpoint_path(name)
    assert path.is_file(), f"no committed checkpoint {path}: run `ddpm-nb train {name}`"
    assert path.stat().st_size <= 20 * 1024 * 1024
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["config"] == recipes.get_recipe(name).config
    assert raw["meta"]["command"].startswith(f"ddpm-nb train {name}")
    model, meta = load_policy(path, map_location="cpu")
    assert model.objective == POLICIES[policy][1] and meta["steps"] == recipes.get_recipe(name).train.steps
    assert (model.act_high > model.act_low).all()  # the normalisers travelled with the weights


def test_workers_give_the_same_episodes_as_one_process():
    pytest.importorskip("gym_pusht")
    from ddpm_nb.policy import evaluate_checkpoint

    one = evaluate_checkpoint("diffusion", episodes=3, seed=100000, max_steps=40, progress=False)
    two = evaluate_checkpoint("diffusion", episodes=3, seed=100000, max_steps=40, workers=2, progress=False)
    assert two["workers"] == 2 and one["workers"] == 1
    for key in ("scores", "max_coverages", "final_coverages", "successes", "steps_to_success",
                "episode_steps", "plans", "mean_score", "success_rate_ci95", "mean_score_ci95",
                "checkpoint", "checkpoint_sha256", "sampler", "steps", "first", "threads"):
        assert one[key] == two[key], key


def test_eval_refuses_a_bad_worker_count(capsys):
    assert main(["eval", "pusht", "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err
