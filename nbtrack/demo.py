"""``nbtrack demo``: train a small model for real, track it, and show what was stored.

The model is logistic regression on a synthetic two-class problem, trained by plain
gradient descent in pure Python, so the demo needs nothing beyond nbtrack itself.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

from .api import Api, init


def _data(n: int, rng: random.Random) -> list[tuple[float, float, int]]:
    points = []
    for _ in range(n):
        label = rng.random() < 0.5
        cx, cy = (1.2, 1.0) if label else (-1.0, -1.1)
        points.append((rng.gauss(cx, 1.0), rng.gauss(cy, 1.0), int(label)))
    return points


def train(dir: str | Path, *, epochs: int = 30, lr: float = 0.5, seed: int = 0, quiet: bool = False):
    """Run the demo training loop into ``dir``; return the finished run's stored record."""
    rng = random.Random(seed)
    train_set, val_set = _data(800, rng), _data(200, rng)
    config = {"lr": lr, "epochs": epochs, "model": {"kind": "logistic", "features": 2}, "seed": seed}
    with init(
        project="nbtrack-demo",
        dir=str(dir),
        config=config,
        tags=["demo"],
        notes="logistic regression on a synthetic 2-class problem",
        settings={"quiet": quiet},
    ) as run:
        w0 = w1 = b = 0.0
        for epoch in range(epochs):
            g0 = g1 = gb = loss = 0.0
            for x, y, label in train_set:
                p = 1.0 / (1.0 + math.exp(-(w0 * x + w1 * y + b)))
                loss -= math.log(p if label else 1.0 - p)
                g0, g1, gb = g0 + (p - label) * x, g1 + (p - label) * y, gb + (p - label)
            n = len(train_set)
            w0, w1, b = w0 - lr * g0 / n, w1 - lr * g1 / n, b - lr * gb / n
            correct = sum((w0 * x + w1 * y + b > 0) == bool(label) for x, y, label in val_set)
            run.log({"train/loss": loss / n, "val/acc": correct / len(val_set), "epoch": epoch})
        run.summary["weights"] = {"w0": w0, "w1": w1, "b": b}
    return Api(dir).run(f"{run.project}/{run.id}")


def main(dir: str | Path = "demo-runs") -> int:
    record = train(dir)
    history = record.rows()
    root = Path(dir).absolute() / "nbtrack"
    print(f"\nTracked run {record.name} ({record.id}) in project {record.project}: {record.state}")
    print(f"  store:    {root / 'nbtrack.db'}")
    print(f"  files:    {root / record.folder}")
    print(f"  config:   {record.config}")
    print(f"  rows:     {len(history)} (steps {history[0]['_step']}..{history[-1]['_step']})")
    print(f"  first:    train/loss={history[0]['train/loss']:.4f} val/acc={history[0]['val/acc']:.3f}")
    print(f"  last:     train/loss={history[-1]['train/loss']:.4f} val/acc={history[-1]['val/acc']:.3f}")
    print(f"  summary:  {{'train/loss': {record.summary['train/loss']:.4f}, 'val/acc': {record.summary['val/acc']}}}")
    print(f"Read it back with: nbtrack.Api({str(dir)!r}).run({record.path!r})")
    return 0
