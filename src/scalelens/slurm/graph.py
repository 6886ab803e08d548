"""The DVC stage graph as DVC resolves it: one node per stage instance, edges from outputs to deps.

Generic over the dvc.yaml mapping (`scalelens.pipeline.build_dvc_yaml` or the file itself): a
`foreach` stage becomes `<name>@<key>` instances with `${key}` and `${item}` substituted, and
stage B depends on stage A when one of B's deps is one of A's outs, metrics or plots (or lies
inside one, or contains one). A new stage in the table needs no change here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from scalelens.errors import ScalelensError

_VAR = re.compile(r"\$\{\s*([^}]*?)\s*\}")
PRODUCT_KEYS = ("outs", "metrics", "plots")


@dataclass
class Stage:
    """One stage instance: its DVC address (`phiid@tiny-llama`), command, deps and products."""

    address: str
    base: str  # the stage's name in dvc.yaml (`phiid`)
    key: str | None  # the foreach key (the slug), None for a plain stage
    item: object  # the foreach item (the model key)
    cmd: str
    deps: tuple[str, ...]
    products: tuple[str, ...]  # outs, metrics and plots
    upstream: list[str] = field(default_factory=list)  # addresses, in graph order


def _norm(path: str) -> str:
    return PurePosixPath(str(path).replace("\\", "/")).as_posix().rstrip("/")


def _paths(entries) -> list[str]:
    """Paths of a deps/outs/metrics/plots list, whose entries are strings or {path: options}."""
    out = []
    for entry in entries or []:
        if isinstance(entry, dict):
            out.extend(str(k) for k in entry)
        else:
            out.append(str(entry))
    return out


def _substitute(value, bindings: dict[str, str], where: str):
    """`${name}` replaced from bindings in every string of a stage body; anything else is an
    error (DVC's `vars` and params interpolation are not resolved here)."""
    if isinstance(value, str):
        def repl(m: re.Match) -> str:
            if m.group(1) in bindings:
                return bindings[m.group(1)]
            raise ScalelensError(
                f"{where}: cannot resolve ${{{m.group(1)}}} (the SLURM submitter resolves "
                f"${{key}}, ${{item}} and ${{item.<field>}} of foreach stages only)")
        return _VAR.sub(repl, value)
    if isinstance(value, list):
        return [_substitute(v, bindings, where) for v in value]
    if isinstance(value, dict):
        return {_substitute(k, bindings, where): _substitute(v, bindings, where)
                for k, v in value.items()}
    return value


def _instances(name: str, body: dict):
    """(address, key, item, resolved body) for each instance of one dvc.yaml stage entry."""
    if "foreach" not in body:
        yield name, None, None, _substitute(body, {}, name)
        return
    foreach, do = body["foreach"], body.get("do")
    if not isinstance(do, dict):
        raise ScalelensError(f"dvc.yaml stage {name}: foreach without a `do` mapping")
    if isinstance(foreach, dict):
        pairs = list(foreach.items())
    elif isinstance(foreach, list):  # DVC names list instances by the item (or its index)
        pairs = [(v if isinstance(v, (str, int, float)) else i, v) for i, v in enumerate(foreach)]
    else:
        raise ScalelensError(f"dvc.yaml stage {name}: foreach must be a list or a mapping "
                             f"(interpolated foreach is not supported by the SLURM submitter)")
    for key, item in pairs:
        address = f"{name}@{key}"
        bindings = {"key": str(key), "item": str(item)}
        if isinstance(item, dict):
            bindings.update({f"item.{k}": str(v) for k, v in item.items()})
        yield address, str(key), item, _substitute(do, bindings, address)


def stage_graph(stages: dict) -> dict[str, Stage]:
    """{address: Stage} in dvc.yaml order, each with the addresses of the stages it reads."""
    graph: dict[str, Stage] = {}
    for name, body in stages.items():
        for address, key, item, do in _instances(name, body):
            if "cmd" not in do:
                raise ScalelensError(f"dvc.yaml stage {address} has no cmd")
            cmd = do["cmd"]
            if isinstance(cmd, list):
                if len(cmd) != 1:
                    raise ScalelensError(f"dvc.yaml stage {address}: one command per stage, got "
                                         f"{len(cmd)}")
                cmd = cmd[0]
            products = tuple(_norm(p) for k in PRODUCT_KEYS for p in _paths(do.get(k)))
            graph[address] = Stage(address, name, key, item, str(cmd),
                                   tuple(_norm(p) for p in _paths(do.get("deps"))), products)
    producer: dict[str, str] = {}
    for stage in graph.values():
        for p in stage.products:
            if p in producer:
                raise ScalelensError(f"{p} is an output of both {producer[p]} and {stage.address}")
            producer[p] = stage.address
    for stage in graph.values():
        for dep in stage.deps:
            for product, address in producer.items():
                if address != stage.address and address not in stage.upstream and (
                        dep == product or dep.startswith(product + "/")
                        or product.startswith(dep + "/")):
                    stage.upstream.append(address)
    order = topological_order(graph)
    return {a: graph[a] for a in order}


def topological_order(graph: dict[str, Stage]) -> list[str]:
    """Every address after those it reads; ties keep dvc.yaml order. A cycle is an error."""
    position = {a: i for i, a in enumerate(graph)}
    done: list[str] = []
    placed: set[str] = set()
    remaining = list(graph)
    while remaining:
        ready = [a for a in remaining if all(u in placed for u in graph[a].upstream)]
        if not ready:
            raise ScalelensError("dvc.yaml has a dependency cycle among: " + ", ".join(remaining))
        first = min(ready, key=position.__getitem__)
        done.append(first)
        placed.add(first)
        remaining.remove(first)
    return done


def select(graph: dict[str, Stage], targets: list[str]) -> set[str]:
    """The addresses `targets` name (an address, a stage name or a glob) and all they read."""
    from fnmatch import fnmatchcase

    if not targets:
        return set(graph)
    chosen: set[str] = set()
    for target in targets:
        hits = [a for a, s in graph.items()
                if fnmatchcase(a, target) or fnmatchcase(s.base, target)]
        if not hits:
            raise ScalelensError(f"target {target!r} matches no stage; stages: "
                                 + ", ".join(sorted({s.base for s in graph.values()})))
        chosen.update(hits)
    todo = list(chosen)
    while todo:
        for u in graph[todo.pop()].upstream:
            if u not in chosen:
                chosen.add(u)
                todo.append(u)
    return chosen


def downstream_closure(graph: dict[str, Stage], seeds: set[str]) -> set[str]:
    """`seeds` and every stage that reads them, directly or not."""
    out = set(seeds)
    for address, stage in graph.items():  # graph order is topological
        if any(u in out for u in stage.upstream):
            out.add(address)
    return out
