"""The names a user types, as plain tuples: importing this module imports nothing else.

The command line builds its `choices` from here, so `ddpm-nb --help` and argument errors never load
torch; a test checks that each tuple equals the keys of the registry it names.
"""

__all__ = ["SAMPLERS", "RECIPES", "BENCHMARKS", "POLICIES", "DEVICES", "EVALUATIONS"]

# ddpm_nb.samplers.SAMPLERS
SAMPLERS = ("ddpm", "ddim", "euler_maruyama", "euler", "heun", "dpm_solver", "unipc", "rk45")
RECIPES = ("ddpm-2d", "ddpm-images", "fashion-classifier", "noprop", "noprop-backprop", "pusht",
           "pusht-flow", "pusht-bc")  # ddpm_nb.recipes.RECIPES
BENCHMARKS = ("elbo", "images", "samplers", "noprop", "noprop-parallel",
              "pusht-samplers")  # ddpm_nb.bench.BENCHMARKS
POLICIES = ("diffusion", "flow", "bc")  # ddpm_nb.policy.evaluation.POLICIES
EVALUATIONS = ("pusht",)
DEVICES = ("cuda", "mps", "cpu")
