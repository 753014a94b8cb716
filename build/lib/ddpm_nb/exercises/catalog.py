"""Every exercise of the book in one place: what the grader, the student and the teacher's editions use.

An exercise is `code` (the student fills in a function; its checker cell scores it), or `think` (a
written answer, graded by hand with the rubric below). The checker cell of a code exercise is the one
line `checker_source` in its chapter (a test keeps the notebooks and this table in step); the grader
runs that line, not the student's copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import UserError

__all__ = ["Exercise", "EXERCISES", "CHAPTERS", "exercises_of", "chapter_of", "POINTS"]

# Points per kind of exercise (a teacher may rescale the gradebook).
POINTS = {"code": 2, "think": 3, "build": 5}

# The chapter notebooks, by number.
CHAPTERS = {1: "01_markov", 2: "02_elbo", 3: "03_ddpm", 4: "04_sde_ode", 5: "05_diffusion_policy",
            6: "06_noprop"}


@dataclass(frozen=True)
class Exercise:
    id: str  # "1.1"
    kind: str  # "code", "build" (both checked by a cell) or "think" (graded by hand)
    title: str
    answer: tuple[str, ...] = ()  # the names the student defines
    checker: str = ""  # the function of ddpm_nb.exercises.chNN that checks them
    model_answer: str = ""  # think exercises
    rubric: tuple[str, ...] = field(default=())  # think exercises: one point per line

    @property
    def chapter(self) -> int:
        return int(self.id.split(".")[0])

    @property
    def module(self) -> str:
        return f"ch{self.chapter:02d}"

    @property
    def points(self) -> int:
        return POINTS[self.kind]

    @property
    def checked(self) -> bool:
        return self.kind in ("code", "build")

    @property
    def checker_source(self) -> str:
        """The checker cell's one line, as it stands in the chapter."""
        return f"{self.module}.{self.checker}({', '.join(self.answer)})" if self.checked else ""

    @property
    def grading_source(self) -> str:
        """What the grader runs in place of the submitted checker cell (the module imported afresh, so a
        rebound name in the student's notebook changes nothing)."""
        return f"from ddpm_nb.exercises import {self.module} as _{self.module}\n_{self.checker_source}"


def _code(id: str, title: str, answer: str | tuple[str, ...], checker: str) -> Exercise:
    return Exercise(id, "code", title, (answer,) if isinstance(answer, str) else answer, checker)


def _build(id: str, title: str, answer: str | tuple[str, ...], checker: str) -> Exercise:
    """A larger exercise that builds one of the book's real pieces, checked like a code exercise."""
    return Exercise(id, "build", title, (answer,) if isinstance(answer, str) else answer, checker)


def _think(id: str, title: str, model_answer: str, *rubric: str) -> Exercise:
    assert len(rubric) == POINTS["think"], id
    return Exercise(id, "think", title, model_answer=model_answer, rubric=rubric)


EXERCISES: tuple[Exercise, ...] = (
    _code("1.1", "one forward step", "forward_step", "check_forward_step"),
    _code("1.2", "the signal kept", "alpha_bar_from_beta", "check_alpha_bar"),
    _code("1.3", "the stationary law", "stationary", "check_stationary"),
    _think(
        "1.4", "a forward process with memory",
        "If x_t also depends on x_{t-2}, one step's kernel no longer composes into q(x_t | x_0): the law of "
        "x_t depends on the first two states and follows a second-order recursion instead of the single "
        "product ᾱ_t, so there is no one-line closed form to sample x_t in one go. The reverse process is "
        "harder too: q(x_{t-1} | x_t, x_0) no longer summarises the future (x_{t+1} carries information "
        "about x_{t-1}), so the reverse model has to condition on more than x_t, and the ELBO's one KL "
        "per step, which rests on the Markov property, does not follow. The trick of the first section is "
        "to enlarge the state: the pair s_t = (x_{t-1}, x_t) is a Markov chain. The cost is a state twice "
        "as large, with a degenerate transition (the copied half adds no noise), which the model must now "
        "handle.",
        "Says why q(x_t | x_0) loses its closed form (one-step kernels no longer compose; second-order "
        "recursion).",
        "Says why the reverse process or the ELBO gets harder (the reverse step needs more than x_t).",
        "Names the pair (x_{t-1}, x_t) as a Markov state and a cost (doubled dimension or degenerate "
        "noise).",
    ),
    _build("1.5", "the forward chain and its closed form", ("forward_chain", "jump", "combined_noise"),
           "check_forward_chain"),
    _code("2.1", "the posterior mean", "posterior_mean", "check_posterior_mean"),
    _code("2.2", "KL of two Gaussians", "kl", "check_gaussian_kl"),
    _code("2.3", "from noise to data", "x0_from_noise", "check_x0_from_eps"),
    _think(
        "2.4", "likelihood against samples",
        "The likelihood is dominated by the first steps, t near 1, where the noise is small and the data's "
        "fine detail is resolved: there β̃_t = β_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t) is much smaller than β_t (β̃_1 "
        "= 0), and each KL term carries a log variance ratio times the dimension, so the choice costs many "
        "nats. Sample quality is decided by the large-t steps that lay down the coarse structure; there ᾱ "
        "is small and β̃_t ≈ β_t, so the two choices barely differ, and at small t both noises are tiny "
        "next to the data's scale, so the samples look the same.",
        "Says the likelihood (the bound) is dominated by the small-t steps.",
        "Says that at large t, which shape the samples, β̃_t ≈ β_t.",
        "Says why the small-t difference matters for the bound but not for samples (log variance ratio "
        "against tiny absolute noise).",
    ),
    _build("2.5", "the terms of the ELBO", "elbo_terms", "check_elbo_terms"),
    _code("3.1", "one ancestral step", "ddpm_step", "check_ddpm_step"),
    _code("3.2", "the DDIM update", "ddim_step", "check_ddim_step"),
    _code("3.3", "Langevin", "langevin_step", "check_langevin_step"),
    _build("3.4", "train with L_simple, sample with DDPM", ("train_step", "sample_ddpm_loop"),
           "check_ddpm_build"),
    _code("4.1", "Euler–Maruyama", "em_step", "check_em_step"),
    _code("4.2", "Heun", "heun_step", "check_heun_step"),
    _code("4.3", "the DDIM update as an ODE step", "ddim_ode_step", "check_ddim_ode_step"),
    _build("4.4", "DPM-Solver++(2M)", ("dpm_step", "sample_dpm_loop"), "check_dpm_solver_build"),
    _code("5.1", "the windows of an episode", "episode_windows", "check_episode_windows"),
    _code("5.2", "the min-max normaliser", ("minmax_encode", "minmax_decode"), "check_minmax"),
    _code("5.3", "the receding horizon", "receding_horizon", "check_receding_horizon"),
    _think(
        "5.4", "how many actions to execute",
        "(a) Each plan is a fresh sample of a multimodal distribution: with T_a = 1 two consecutive plans "
        "may come from different modes (around the T on the left, then on the right), so the executed "
        "actions switch between modes from one step to the next and the agent dithers or stalls; T_a = 8 "
        "commits to one mode for eight steps (temporal consistency), and costs eight times fewer plans. "
        "(b) The regression baseline is deterministic, so it has no mode switching to fear: T_a = 1 would "
        "make it react to every new observation and correct its compounding errors sooner, at eight times "
        "the network calls; it still averages the modes, which re-planning does not fix. (c) The chunk "
        "starts at the oldest observation so that it lines up with the observation window: the network "
        "also predicts the actions of the steps it has seen, which ties the chunk to the motion under "
        "way, and the executed actions are its rows T_o - 1 onward. Starting at the current step would "
        "drop those rows: the executed part would be rows 0 .. T_a - 1, each chunk would be shorter for "
        "the same horizon into the future (or the same length reaching further), and the windows cut from "
        "the demonstrations would change with it.",
        "(a) Mode switching between consecutive samples with T_a = 1 (temporal consistency of a chunk).",
        "(b) A deterministic regression gains reactivity (error correction) at more network calls, and "
        "keeps averaging modes.",
        "(c) The chunk lines up with the observation window (rows T_o - 1 onward are executed); says what "
        "the indices and windows become if it starts at the current step.",
    ),
    _build("5.5", "a DDIM planner for the trained policy", ("ddim_plan", "episode"), "check_ddim_planner"),
    _code("6.1", "the coefficients of one step", "abc", "check_abc"),
    _code("6.2", "the block weights", "block_weight", "check_block_weight"),
    _code("6.3", "one inference step", "inference_step", "check_inference_step"),
    _think(
        "6.4", "the first and the last block",
        "Block 1's input z_0 carries almost nothing of the label (b_1 ≈ 0), so block 1 is in effect a "
        "classifier of the image alone: it maps x to a guess of the label embedding, like an ordinary "
        "(shallow) network trained by back-propagation within itself. Block T is trained on z_{T-1} drawn "
        "from the forward process, which already holds most of the label (ᾱ_{T-1} is near 1), so it learns "
        "to trust and mostly copy its input; at inference z_{T-1} comes instead from the chain of the "
        "other blocks, with their errors, and a block that trusts its input passes those errors on: the "
        "mismatch between training and inference inputs (exposure bias) is largest where the training "
        "input was most informative.",
        "Block 1 is in effect an image classifier (its noisy input carries no label).",
        "Block T is trained on an almost clean z_{T-1} from the forward process and learns to rely on it.",
        "At inference its input comes from the other blocks' predictions, so their errors reach it "
        "unchecked (train/inference mismatch).",
    ),
    _build("6.5", "one block's training step", ("block_optimiser", "block_step"), "check_noprop_block"),
)

_BY_ID = {e.id: e for e in EXERCISES}


def exercises_of(chapter: int) -> list[Exercise]:
    """The exercises of chapter `chapter` (1..6), in order."""
    return [e for e in EXERCISES if e.chapter == chapter]


def chapter_of(stem: str) -> int | None:
    """The chapter number of a notebook's file stem ("01_markov" -> 1), None if it is not a chapter."""
    for n, name in CHAPTERS.items():
        if stem == name:
            return n
    return None


def get(exercise_id: str) -> Exercise:
    if exercise_id not in _BY_ID:
        raise UserError(f"No exercise {exercise_id!r}: the book has {', '.join(_BY_ID)}.")
    return _BY_ID[exercise_id]
