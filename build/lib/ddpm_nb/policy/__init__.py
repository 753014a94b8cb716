"""Diffusion Policy on PushT (Chi et al., RSS 2023): chapter 5's application, in one folder.

- `windows`: the demonstrations cut into training windows, the min-max normaliser;
- `model`: the trained policy (a 1-D conditional UNet with its normalisers) and its checkpoint;
- `planners`: observation window -> action chunk (diffusion, or the regression baseline), and the
  receding-horizon controller that executes a chunk and re-plans;
- `train`: the losses and the fit through the book's training loop;
- `env`: the gym-pusht environment, rollouts and the paper's evaluation protocol;
- `evaluation`: a committed checkpoint scored by that protocol, in one process or several;
- `stats`: intervals for a success rate (Wilson) and a mean score, paired differences;
- `draw`: the T block, the goal, paths and rollout animations.
"""

from __future__ import annotations

from .env import (
    EVAL_SEED,
    MAX_STEPS,
    SUCCESS_COVERAGE,
    Episode,
    EpisodeResult,
    environment_info,
    evaluate,
    make_env,
    merge_evaluations,
    rollout,
    summarise,
)
from .evaluation import POLICIES, evaluate_checkpoint, evaluate_file, evaluate_in_workers, load_planner
from .model import (
    OBJECTIVES,
    POLICY_KIND,
    PolicyModel,
    load_policy,
    policy_config,
    recipe_config,
    save_policy,
)
from .planners import (
    DEFAULT_SAMPLER,
    DiffusionPlanner,
    FlowPlanner,
    Planner,
    RecedingHorizonPolicy,
    RegressionPlanner,
    default_first,
    make_planner,
)
from .train import (
    LOSSES,
    chunk_error,
    diffusion_loss,
    fit_policy,
    flow_policy_loss,
    regression_loss,
    train_policy,
    validation_loss,
)
from .windows import (
    ACTION_HORIZON,
    FEATURES,
    OBS_HORIZON,
    PRED_HORIZON,
    MinMax,
    Windows,
    make_windows,
    prepare,
    split_episodes,
    state_features,
    window_index,
)

__all__ = [
    "EVAL_SEED", "MAX_STEPS", "POLICIES", "SUCCESS_COVERAGE", "Episode", "EpisodeResult",
    "environment_info", "evaluate", "evaluate_checkpoint", "evaluate_in_workers", "evaluate_file",
    "load_planner", "make_env", "merge_evaluations", "rollout", "summarise", "OBJECTIVES", "POLICY_KIND",
    "PolicyModel", "load_policy", "policy_config", "recipe_config", "save_policy", "DEFAULT_SAMPLER",
    "DiffusionPlanner", "FlowPlanner", "Planner", "RecedingHorizonPolicy", "RegressionPlanner",
    "default_first", "make_planner", "LOSSES", "chunk_error", "diffusion_loss", "fit_policy",
    "flow_policy_loss", "regression_loss", "train_policy", "validation_loss", "ACTION_HORIZON", "FEATURES",
    "OBS_HORIZON", "PRED_HORIZON", "MinMax", "Windows", "make_windows", "prepare", "split_episodes",
    "state_features", "window_index",
]
