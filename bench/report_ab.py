"""A/B of the verdict + report cost of 10k metrics between two source trees.

    git archive COMMIT pytest_deploygate | tar -x -C /tmp/tree_a     (the same for tree B)
    python bench/report_ab.py /tmp/tree_a; python bench/report_ab.py /tmp/tree_b   (alternate A B A B …)
    python bench/report_ab.py /tmp/tree_a --aws   (AWS credentials among the secrets: a long session token)

The editable install's import hook is bypassed, so the tree given is what runs; the work is
bench/scale.py's metrics child (judge, build, redact, write), median of 3 runs in one process."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path


def main() -> None:
    tree = sys.argv[1]
    aws = "--aws" in sys.argv[2:]
    sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    sys.path.insert(0, tree)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import pytest_deploygate

    assert pytest_deploygate.__file__ is not None and pytest_deploygate.__file__.startswith(tree)
    import scale

    runs = []
    for _ in range(3):
        elapsed, n = scale.child_metrics(10000, Path(tempfile.mkdtemp()), aws=aws)
        runs.append(elapsed / n * 1e6)
    label = f"{tree} (aws)" if aws else tree
    print(f"{label}: {sorted(runs)[1]:.1f} us/metric (runs {', '.join(f'{r:.1f}' for r in runs)})")


if __name__ == "__main__":
    main()
