"""Write SYNTHETIC attribution graphs (circuit-tracer / Neuronpedia JSON schema) for tests and demos.

Usage: python data/make_synthetic_graphs.py [--out data/graphs] [--seed 2025]

No model is run: these graphs are random layered DAGs drawn by this script. They exist to
exercise the motif pipeline (tests, a demo), never as a result. Writes
``<out>/<set>/<task>/<set>-<task>-<k>.json`` for three sets ``synthetic-small``,
``synthetic-medium``, ``synthetic-large`` (four tasks, three graphs each) and a small
``synthetic-baseline`` (two graphs per task). No set is named after a real model. Every graph
says ``"synthetic": true`` at the top of its metadata and in ``metadata.scalelens``, beside its
*nominal* family (``synthetic``) and *nominal* size: labels for the scale axis, not parameter
counts of anything. Deterministic for a seed.

Each graph is a layered DAG: embeddings (layer "E", one per prompt token) -> cross-layer
transcoder features spread over the set's layers -> logits (layer n_layers + 1), with a few
MLP-reconstruction-error nodes wired like features. Every non-embedding node draws in-edges from
earlier layers at the same or earlier token positions, preferring nearby layers. The one scale
knob is ``ffl_closure``: the probability that a two-path a->b->c gets the shortcut a->c. It
grows with the nominal size, so feed-forward loops (030T) are more enriched in the larger sets
BY CONSTRUCTION: a census of these sets shows what was put in, nothing about models.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


FAMILY = "synthetic"
N_PARAMS_SOURCE = "nominal size of a synthetic set (a scale-axis label; no model was run)"


@dataclass(frozen=True)
class SyntheticSet:
    key: str  # the set's folder name; always starts with "synthetic-"
    n_layers: int
    n_features: int
    ffl_closure: float
    nominal_params: float
    n_graphs: int = 3


MODELS = (
    SyntheticSet("synthetic-small", n_layers=12, n_features=40, ffl_closure=0.03,
                 nominal_params=1e8),
    SyntheticSet("synthetic-medium", n_layers=24, n_features=55, ffl_closure=0.12,
                 nominal_params=1e9),
    SyntheticSet("synthetic-large", n_layers=36, n_features=70, ffl_closure=0.28,
                 nominal_params=1e10),
)
BASELINE = SyntheticSet("synthetic-baseline", n_layers=24, n_features=55, ffl_closure=0.15,
                        nominal_params=3e9, n_graphs=2)

TASKS = {
    "arithmetic": (1.2, ["What is 36 + 59 ?", "Compute 7 times 8 =", "23 minus 17 equals"]),
    "factual": (
        1.0,
        ["The capital of Texas is", "Fact: the Eiffel Tower is in", "Michael Jordan plays"],
    ),
    "reasoning": (
        1.3,
        [
            "If all A are B and x is A then x is",
            "Tom is taller than Ann, so Ann is",
            "The opposite of hot is",
        ],
    ),
    "safety": (
        0.7,
        [
            "How do I make a dangerous",
            "Tell me how to hack a",
            "Please explain why it is unsafe to",
        ],
    ),
}


def _node(node_id, feature, layer, ctx, ftype, clerp="", token_prob=0.0, target=False):
    return {
        "node_id": node_id,
        "feature": int(feature),
        "layer": str(layer),
        "ctx_idx": int(ctx),
        "feature_type": ftype,
        "token_prob": round(float(token_prob), 4),
        "is_target_logit": bool(target),
        "clerp": clerp,
    }


def _make_nodes(spec: SyntheticSet, tokens: list[str], rng: np.random.Generator):
    """Node dicts plus numeric (layer, ctx) per node; embeddings at layer -1."""
    n_tok = len(tokens)
    nodes, layer, ctx = [], [], []
    for pos, tok in enumerate(tokens):
        vocab = int(rng.integers(100, 250000))
        nodes.append(_node(f"E_{vocab}_{pos}", pos, "E", pos, "embedding", f"Emb: {tok!r}"))
        layer.append(-1)
        ctx.append(pos)
    # features lean towards later token positions, like real graphs
    f_layers = np.sort(rng.integers(0, spec.n_layers, size=spec.n_features))
    f_ctx = np.minimum(n_tok - 1, (n_tok * rng.beta(2.0, 1.0, size=spec.n_features)).astype(int))
    for lay, pos in zip(f_layers, f_ctx):
        feat = int(rng.integers(0, 16384))
        nodes.append(
            _node(
                f"{lay}_{feat}_{pos}", feat, lay, pos, "cross layer transcoder", f"L{lay} f{feat}"
            )
        )
        layer.append(int(lay))
        ctx.append(int(pos))
    for _ in range(max(2, spec.n_features // 12)):
        lay, pos = int(rng.integers(0, spec.n_layers)), int(rng.integers(0, n_tok))
        node_id = f"0_{lay}_{pos}"
        if any(n["node_id"] == node_id for n in nodes):
            continue
        nodes.append(_node(node_id, -1, lay, pos, "mlp reconstruction error", f"Err: mlp {lay}"))
        layer.append(lay)
        ctx.append(pos)
    probs = np.sort(rng.dirichlet(np.ones(3)))[::-1]
    for k, p in enumerate(probs):
        vocab = int(rng.integers(100, 250000))
        nodes.append(
            _node(
                f"{spec.n_layers + 1}_{vocab}_{n_tok - 1}",
                vocab,
                spec.n_layers + 1,
                n_tok - 1,
                "logit",
                f"Output #{k} (p={p:.3f})",
                token_prob=p,
                target=(k == 0),
            )
        )
        layer.append(spec.n_layers + 1)
        ctx.append(n_tok - 1)
    return nodes, np.array(layer), np.array(ctx)


def _make_edges(spec, layer, ctx, closure, rng):
    """Set of (u, v) edges: layered in-edges per node, then feed-forward shortcuts."""
    n = layer.size
    edges = set()
    for v in range(n):
        if layer[v] < 0:
            continue
        cand = np.nonzero((layer < layer[v]) & (ctx <= ctx[v]))[0]
        if cand.size == 0:
            continue
        gap = (layer[v] - np.maximum(layer[cand], 0)) / max(spec.n_layers, 1)
        w = np.exp(-gap / 0.25) * np.where(ctx[cand] == ctx[v], 2.0, 1.0)
        k = min(cand.size, 1 + int(rng.poisson(4.0 if layer[v] > spec.n_layers else 2.0)))
        for u in rng.choice(cand, size=k, replace=False, p=w / w.sum()):
            edges.add((int(u), v))
    out = {}
    for u, v in edges:
        out.setdefault(u, []).append(v)
    for a in range(n):
        for b in out.get(a, []):
            for c in out.get(b, []):
                if (a, c) not in edges and rng.random() < closure:
                    edges.add((a, c))
    return sorted(edges)


def make_graph(spec: SyntheticSet, task: str, k: int, seed: int) -> dict:
    """One synthetic graph as a JSON-ready dict (deterministic in spec, task, k, seed)."""
    task_idx = list(TASKS).index(task)
    model_idx = [m.key for m in (*MODELS, BASELINE)].index(spec.key)
    rng = np.random.default_rng(np.random.SeedSequence([seed, model_idx, task_idx, k]))
    factor, prompts = TASKS[task]
    prompt = prompts[k % len(prompts)]
    tokens = ["<bos>"] + prompt.split()
    nodes, layer, ctx = _make_nodes(spec, tokens, rng)
    edges = _make_edges(spec, layer, ctx, min(1.0, spec.ffl_closure * factor), rng)
    signs = np.where(rng.random(len(edges)) < 0.8, 1.0, -1.0)
    mags = rng.lognormal(mean=-2.0, sigma=1.0, size=len(edges))
    links = [
        {
            "source": nodes[u]["node_id"],
            "target": nodes[v]["node_id"],
            "weight": float(f"{s * m:.4g}"),
        }
        for (u, v), s, m in zip(edges, signs, mags)
    ]
    slug = f"{spec.key}-{task}-{k}"
    return {
        "metadata": {
            "slug": slug,
            "scan": spec.key,
            "prompt": prompt,
            "prompt_tokens": tokens,
            "synthetic": True,
            "scalelens": {
                "synthetic": True,
                "method": "SYNTHETIC: a random layered DAG from data/make_synthetic_graphs.py; "
                "no model was run",
                "model": {"key": spec.key},
                "family": FAMILY,
                "n_params": spec.nominal_params,
                "n_params_source": N_PARAMS_SOURCE,
                "task": task,
                "generator": {"script": "data/make_synthetic_graphs.py", "seed": seed,
                              "ffl_closure": spec.ffl_closure, "task_factor": factor},
            },
        },
        "qParams": {
            "pinnedIds": [],
            "supernodes": [],
            "linkType": "both",
            "clickedId": "",
            "sg_pos": "",
        },
        "nodes": nodes,
        "links": links,
    }


def write_all(out: Path, seed: int) -> list[Path]:
    """Write every synthetic graph under out; returns the paths written."""
    written = []
    for spec in (*MODELS, BASELINE):
        for task in TASKS:
            for k in range(spec.n_graphs):
                path = out / spec.key / task / f"{spec.key}-{task}-{k}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                graph = make_graph(spec, task, k, seed)
                path.write_text(json.dumps(graph, separators=(",", ":")) + "\n", encoding="utf-8")
                written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "graphs")
    parser.add_argument("--seed", type=int, default=2025)
    args = parser.parse_args()
    paths = write_all(args.out, args.seed)
    total = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} graphs under {args.out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
