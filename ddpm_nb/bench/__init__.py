"""Benchmarks behind `ddpm-nb bench NAME`: one module each, a typed keyword function returning a
JSON-able dict of measured numbers (the command line maps its arguments onto the keywords)."""

from __future__ import annotations

from .elbo import bench_elbo
from .images import bench_images
from .noprop import bench_noprop, checkpoint_accuracy, noprop_accuracies, step_cost
from .noprop_parallel import bench_noprop_parallel
from .pusht import bench_pusht_samplers, count_nfe
from .samplers import (
    bench_samplers,
    paired_with_ddpm,
    sampler_rows,
    swd_difference,
    swd_floor,
    swd_to_data,
    times_2d,
)

__all__ = ["BENCHMARKS", "bench_elbo", "bench_images", "bench_samplers", "bench_noprop", "sampler_rows",
           "paired_with_ddpm", "swd_floor", "swd_to_data", "swd_difference", "times_2d", "step_cost",
           "noprop_accuracies", "checkpoint_accuracy", "bench_noprop_parallel", "bench_pusht_samplers",
           "count_nfe"]

BENCHMARKS = {"elbo": bench_elbo, "images": bench_images, "samplers": bench_samplers, "noprop": bench_noprop,
              "noprop-parallel": bench_noprop_parallel, "pusht-samplers": bench_pusht_samplers}
