"""Command line: ``python -m scalelens.motifs census GRAPH.json [--null config|er|layer] ...``.

Prints one JSON object to stdout: the graph's size, whether its metadata says it is synthetic,
its census by MAN label, and the null mean, std, Z (with the zero-variance flags) and SP per
label. Errors a user can fix (missing file, bad
JSON, bad schema, bad option) print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from scalelens.errors import ScalelensError
from scalelens.motifs.analysis import analyze_graph
from scalelens.motifs.census import CENSUS_METHODS
from scalelens.motifs.loader import load_attribution_graph
from scalelens.motifs.nulls import NULL_MODELS
from scalelens.motifs.sets import graph_is_synthetic

EXIT_USAGE = 2


class _OneLineParser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are a single stderr line and exit status 2."""

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    """Parser for the ``census`` subcommand."""
    parser = _OneLineParser(prog="python -m scalelens.motifs", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    census = sub.add_parser("census", help="triad census, null model Z-scores and SP of one graph")
    census.add_argument(
        "graph", help="attribution graph JSON (circuit-tracer / Neuronpedia schema)"
    )
    census.add_argument(
        "--null", choices=NULL_MODELS, default="config", help="null model (default config)"
    )
    census.add_argument("--n-random", type=int, default=100, help="null samples (default 100)")
    census.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    census.add_argument(
        "--swaps-per-edge",
        type=float,
        default=10.0,
        help="attempted swaps per edge for config/layer nulls (default 10)",
    )
    census.add_argument("--n-jobs", type=int, default=1, help="worker processes (default 1)")
    census.add_argument(
        "--weight-threshold",
        type=float,
        default=0.0,
        help="keep edges with |weight| >= this (default 0: all)",
    )
    census.add_argument(
        "--keep-error-nodes",
        action="store_true",
        help="keep 'mlp reconstruction error' nodes (dropped by default)",
    )
    census.add_argument(
        "--z-threshold", type=float, default=2.0, help="|Z| for enrichment (default 2)"
    )
    census.add_argument(
        "--census-method",
        choices=CENSUS_METHODS,
        default="auto",
        help="triad census implementation (identical counts; default auto)",
    )
    return parser


def run_census(args: argparse.Namespace) -> dict:
    """Load the graph, run the analysis and return the JSON-ready report."""
    graph = load_attribution_graph(
        args.graph,
        drop_error_nodes=not args.keep_error_nodes,
        weight_threshold=args.weight_threshold,
    )
    result = analyze_graph(
        graph,
        null_model=args.null,
        n_random=args.n_random,
        seed=args.seed,
        swaps_per_edge=args.swaps_per_edge,
        z_threshold=args.z_threshold,
        n_jobs=args.n_jobs,
        census_method=args.census_method,
    )
    report = {"graph": args.graph, "synthetic": graph_is_synthetic(graph.metadata),
              **result.to_json_dict()}
    report.pop("model")
    report.pop("task")
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    args = build_parser().parse_args(argv)
    try:
        report = run_census(args)
    except (ScalelensError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n".replace("\n", " ").rstrip() + "\n")
        return EXIT_USAGE
    try:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. piped into `head`; not an error of ours
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
