"""CPU inference latency on a whole graph: the GLNN comparison (an MLP student against its GNN teacher).

Run ``python -m kdbench_graph.bench_latency [Cora|CiteSeer]`` with ``KDBENCH_DATA`` set. Every
model labels every node of the graph in one forward, on one thread; the median of repeated
calls is reported, and the ratio of the teacher's to each model's. Weights do not change the
cost, so the models are freshly initialised rather than trained.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from kdbench_graph.models import GCN, GCN_SMALL, MLP, SAGE
from kdbench_graph.planetoid import GRAPHS, build_planetoid


@torch.no_grad()
def latency_ms(model: torch.nn.Module, inputs: tuple[torch.Tensor, ...], repeats: int) -> float:
    """Median wall time of one whole-graph forward, after warm-up calls."""
    model.eval()
    for _ in range(5):
        model(*inputs)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(*inputs)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graph", nargs="?", default="Cora", choices=GRAPHS)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    task = build_planetoid(args.graph, "cpf")
    inputs = task.latency_input("student")
    torch.manual_seed(0)
    timings = {spec.name: latency_ms(spec.build(task), inputs, args.repeats)
               for spec in (SAGE, GCN, GCN_SMALL, MLP)}
    print(f"{args.graph}: {task.graph.num_nodes} nodes, {task.graph.num_edges} edges, 1 CPU thread, "
          f"median of {args.repeats} whole-graph forwards")
    for name, ms in timings.items():
        print(f"  {name:10s} {ms:8.2f} ms   sage/{name} = {timings['sage'] / ms:5.1f}×")
    print(f"MLP student vs SAGE teacher: {timings['sage'] / timings['mlp']:.1f}× faster")


if __name__ == "__main__":
    main()
