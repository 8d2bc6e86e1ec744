"""The package's shape: which jobs import jobs, how deep the import graph is, the longest
functions and the public functions with the most parameters (issue 28's targets).

    python benchmarks/layout.py            # a report
    python benchmarks/layout.py --check    # exit 1 where a target is missed
"""

from __future__ import annotations

import argparse
import ast
import functools
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "x2face_edit"
JOBS = {"extract", "render", "reenact", "pose", "audio", "fit", "prepare", "preview", "evaluate", "frame", "studio"}
# Above the jobs: what a user drives them through (the CLI, which hands the studio page the
# jobs it runs). They call jobs; nothing below them imports them.
FRONT_ENDS = {"__main__", "cli"}
LONGEST_FUNCTION = 80
MOST_PARAMETERS = 8


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_imports(path: Path, tree: ast.Module) -> set[str]:
    """The package modules that ``path`` imports, at any depth of its code."""
    here = module_name(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here[: len(here) - node.level + 1]
            stem = ".".join(base + ([node.module] if node.module else []))
            names = [stem] if node.module else [f"{stem}.{alias.name}" for alias in node.names]
            found.update(names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("x2face_edit"))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 where a target is missed")
    args = parser.parse_args()
    trees = {module_name(p): (p, ast.parse(p.read_text())) for p in sorted(PACKAGE.rglob("*.py"))}
    graph = {name: {m for m in package_imports(path, tree) if m in trees and m != name} for name, (path, tree) in trees.items()}

    @functools.cache
    def depth(name: str, seen: frozenset = frozenset()) -> int:
        if name in seen:
            raise SystemExit(f"import cycle through {name}")
        return 1 + max((depth(m, seen | {name}) for m in graph[name]), default=0)

    def is_job(name: str) -> bool:
        return name.count(".") == 1 and name.split(".")[1] in JOBS

    def is_front_end(name: str) -> bool:
        return name.count(".") == 1 and name.split(".")[1] in FRONT_ENDS

    job_imports = sorted((a, b) for a, targets in graph.items() if is_job(a) for b in targets if is_job(b))
    front_end_imports = sorted((a, b) for a, targets in graph.items() if not is_front_end(a) for b in targets if is_front_end(b))
    functions, wide = [], []
    for name, (_, tree) in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((node.end_lineno - node.lineno + 1, f"{name}.{node.name}"))
                arguments = node.args
                count = len(arguments.posonlyargs) + len(arguments.args) + len(arguments.kwonlyargs)
                count -= bool(arguments.args and arguments.args[0].arg in ("self", "cls"))
                clicked = any(isinstance(d, ast.Call) and getattr(d.func, "attr", "") in ("command", "group") for d in node.decorator_list)
                if not node.name.startswith("_") and name != "x2face_edit.cli" and not clicked:
                    wide.append((count, f"{name}.{node.name}"))
    functions.sort(reverse=True)
    wide.sort(reverse=True)
    below_cli = depth("x2face_edit.cli") - 1
    print(f"modules: {len(trees)}, lines: {sum(len(p.read_text().splitlines()) for p, _ in trees.values())}")
    print(f"job-to-job imports: {len(job_imports)}" + "".join(f"\n  {a} -> {b}" for a, b in job_imports))
    print(f"front ends imported from below: {len(front_end_imports)}" + "".join(f"\n  {a} -> {b}" for a, b in front_end_imports))
    print(f"deepest import chain below the CLI: {below_cli} modules")
    print(f"deepest import chain of the model package: {max(depth(n) for n in trees if n.startswith('x2face_edit.model'))}")
    print("longest functions:" + "".join(f"\n  {n:4d} {f}" for n, f in functions[:5]))
    print("most parameters (public, below the Click layer):" + "".join(f"\n  {n:4d} {f}" for n, f in wide[:5]))
    missed = job_imports or front_end_imports or functions[0][0] > LONGEST_FUNCTION or wide[0][0] > MOST_PARAMETERS
    if args.check and missed:
        print("targets missed: no job imports a job, nothing below a front end imports one, no function over "
              f"{LONGEST_FUNCTION} lines, no public function over {MOST_PARAMETERS} parameters")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
