"""The small v3 grid on one CPU machine, in an order that answers the headline claims first:
every job of `itl grid --scale small` (each condition x seed once, with the probes of every
claim that uses it), run two at a time (one thread each: the scale's cpu_threads), random init
first, then seed by seed the conditions of claims 4, 5.2-5.4, 5.6a and 6, then claim by claim
(THEN: the cheapest claims first, all seeds of one before the next) so that every session ends
with whole claims to commit. Jobs already done in the run store are skipped, so it resumes
where a session stopped. The order decides only when a job runs, never what it computes.

    python scripts/grid_small_v3.py [--jobs 2] [--only N]    # N: stop after N jobs
    python scripts/grid_small_v3.py --list                  # the order, and what is done

Commit the run records after each group (`itl report --scale small --runs`).
"""
from __future__ import annotations

import argparse
import multiprocessing
import time

from itl import grid, pipeline, scales

SCALE = "small"
FIRST = (pipeline.RANDOM, "full", "images-per-class=500", "labels=down-up:29",
         "without=pascal-voc", "extra=40")  # claims 4, 5.2, 5.3, 5.4, 5.6a, 6
THEN = ("section5_5", "section5_6a", "section4", "section5_6b", "section5_1")  # fewest jobs first


def ordered() -> list[grid.Job]:
    found = grid.jobs(scales.get(SCALE))

    def rank(j: grid.Job) -> tuple:
        if j.condition == pipeline.RANDOM:
            return (0, j.seed, 0)
        if j.condition in FIRST:
            return (1, j.seed, FIRST.index(j.condition))
        first = min((THEN.index(c) for c in j.claims if c in THEN), default=len(THEN))
        return (2, first, j.seed, j.condition)
    return sorted(found, key=rank)


def run(job: grid.Job) -> str:
    t = time.time()
    scale = scales.get(job.scale)  # in the worker (spawned): a Job carries the scale's name
    pipeline.condition(scale, job.condition, job.seed, probes=job.probes)
    return f"{job} done in {time.time() - t:.0f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", type=int, help="stop after this many jobs (not counting done)")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    scale = scales.get(SCALE)
    todo = [j for j in ordered() if not grid.done(scale, j)]
    if args.list:
        for j in ordered():
            print(f"{'todo' if j in todo else 'done'}  {j}")
        return
    todo = todo[:args.only] if args.only else todo
    print(f"{len(todo)} jobs to run, {args.jobs} at a time", flush=True)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(args.jobs, maxtasksperchild=1) as pool:
        for line in pool.imap(run, todo):
            print(time.strftime("%H:%M:%S"), line, flush=True)


if __name__ == "__main__":
    main()
