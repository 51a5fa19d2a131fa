"""How much real wandb code nbtrack runs: ``python bench/wandb_coverage.py CORPUS``.

``CORPUS`` is a folder of public code that uses wandb (``.py`` files and notebooks),
gathered outside this repository.  Two measures:

1. **Call sites.**  Every ``wandb.<name>``, ``run.<name>`` (on a run ``wandb.init()``
   returned, or ``wandb.run``) and ``from wandb[.module] import <name>`` in the corpus,
   resolved against nbtrack: a site counts as covered when ``nbtrack`` has the same
   attribute path (``wandb.plot.line`` -> ``nbtrack.plot.line``; ``run.log_artifact`` ->
   ``nbtrack.Run.log_artifact``).  Reported: the share of covered sites, of files that
   use nothing nbtrack lacks, and the missing names by count.
2. **Scripts** (``--run LIST``, a file naming scripts of the corpus, one a line): each
   is run twice in a fresh folder, once with real wandb (``WANDB_MODE=offline``, from
   ``--wandb-python``, a Python with wandb installed) and once with its wandb imports
   rewritten to ``import nbtrack as wandb``; reported: which finish, with each.

Nothing here is a test: the corpus is not ours and is not in the repository.
"""

from __future__ import annotations

import argparse
import ast
import collections
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAGIC = re.compile(r"^\s*[%!].*$", re.M)


@dataclass
class Site:
    path: str  # "wandb.plot.line", "run.log", "wandb.integration.keras.WandbMetricsLogger"
    file: str
    line: int


@dataclass
class FileSites:
    file: str
    sites: list[Site] = field(default_factory=list)
    error: str | None = None


def sources(corpus: Path) -> dict[str, str]:
    """Python source of every file: a script as it is, a notebook's code cells joined
    (shell and magic lines blanked, so the rest parses)."""
    out = {}
    for path in sorted(corpus.rglob("*")):
        if path.suffix == ".py":
            out[str(path.relative_to(corpus))] = path.read_text(errors="replace")
        elif path.suffix == ".ipynb":
            try:
                nb = json.loads(path.read_text(errors="replace"))
            except ValueError:
                continue
            cells = ["".join(c.get("source", "")) for c in nb.get("cells", []) if c.get("cell_type") == "code"]
            out[str(path.relative_to(corpus))] = "\n\n".join(MAGIC.sub("", c) for c in cells)
    return out


def _dotted(node: ast.AST) -> list[str] | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return parts[::-1]
    return None


class Finder(ast.NodeVisitor):
    """Finds the wandb sites of one module."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.aliases: dict[str, str] = {}  # local name -> "wandb" or "wandb.module" or "wandb.module.Name"
        self.runs: set[str] = set()  # names bound to a run
        self.sites: list[Site] = []

    def visit_Import(self, node: ast.Import) -> None:
        for a in node.names:
            if a.name == "wandb" or a.name.startswith("wandb."):
                local = a.asname or a.name.split(".")[0]
                self.aliases[local] = a.name if a.asname else "wandb"
                if a.name != "wandb":
                    self.sites.append(Site(a.name, self.file, node.lineno))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if module == "wandb" or module.startswith("wandb."):
            for a in node.names:
                self.aliases[a.asname or a.name] = f"{module}.{a.name}"
                self.sites.append(Site(f"{module}.{a.name}", self.file, node.lineno))

    def _run_target(self, value: ast.AST) -> bool:
        call = value.func if isinstance(value, ast.Call) else None
        parts = _dotted(call) if call is not None else None
        return bool(parts) and self._resolve(parts) in ("wandb.init", "wandb.sdk.init")

    def _resolve(self, parts: list[str]) -> str | None:
        head = self.aliases.get(parts[0])
        if head is None:
            return None
        return ".".join([head, *parts[1:]])

    def visit_Assign(self, node: ast.Assign) -> None:
        if self._run_target(node.value):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.runs.add(target.id)
        self.generic_visit(node)

    def visit_withitem(self, node: ast.withitem) -> None:
        if self._run_target(node.context_expr) and isinstance(node.optional_vars, ast.Name):
            self.runs.add(node.optional_vars.id)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        parts = _dotted(node)
        if parts is None:
            self.generic_visit(node)
            return
        resolved = self._resolve(parts)
        if resolved is not None:
            if resolved.startswith("wandb.run.") and len(parts) >= 3:
                self.sites.append(Site("run." + ".".join(resolved.split(".")[2:3]), self.file, node.lineno))
            else:
                self.sites.append(Site(resolved, self.file, node.lineno))
            return  # the longest chain counts once
        if parts[0] in self.runs and len(parts) >= 2:
            self.sites.append(Site("run." + parts[1], self.file, node.lineno))
            return
        self.generic_visit(node)


def find_sites(corpus: Path) -> list[FileSites]:
    found = []
    for file, text in sources(corpus).items():
        entry = FileSites(file)
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError) as exc:
            entry.error = f"{type(exc).__name__}: {exc}"
            found.append(entry)
            continue
        finder = Finder(file)
        finder.visit(tree)
        entry.sites = finder.sites
        found.append(entry)
    return found


def nbtrack_has(path: str) -> bool | None:
    """Whether nbtrack has what ``path`` names (``wandb.a.b`` or ``run.x``); None when
    the name is a wandb feature nbtrack refuses with a UsageError (not counted as had)."""
    import nbtrack
    from nbtrack.compat import OutOfScope

    if path.startswith("run."):
        return hasattr(nbtrack.Run, path.split(".", 1)[1])
    parts = path.split(".")[1:]
    # the current run's config and summary exist only after init(): look at their classes
    stand_ins = {"config": nbtrack.Config, "summary": nbtrack.rows.Summary, "run": nbtrack.Run}
    if len(parts) >= 2 and parts[0] in stand_ins:
        return hasattr(stand_ins[parts[0]], parts[1]) or parts[0] == "config"  # config.<any key> sets a key
    if parts and parts[0] in stand_ins:
        return True
    obj: object = nbtrack
    for i, part in enumerate(parts):
        if isinstance(obj, OutOfScope):
            return None
        if hasattr(obj, part):
            obj = getattr(obj, part)
            if isinstance(obj, OutOfScope):
                return None
            continue
        module = "nbtrack." + ".".join(parts[: i + 1])
        try:
            obj = importlib.import_module(module)
        except ImportError:
            return False
    return True


def coverage(corpus: Path) -> dict:
    files = find_sites(corpus)
    sites = [s for f in files for s in f.sites]
    known: dict[str, bool | None] = {}
    for s in sites:
        if s.path not in known:
            known[s.path] = nbtrack_has(s.path)
    missing = collections.Counter(s.path for s in sites if known[s.path] is False)
    refused = collections.Counter(s.path for s in sites if known[s.path] is None)
    covered = sum(1 for s in sites if known[s.path])
    using = [f for f in files if f.sites]
    complete = [f for f in using if all(known[s.path] for s in f.sites)]
    return {
        "files": len(files),
        "files_using_wandb": len(using),
        "unparsable": [f.file for f in files if f.error],
        "sites": len(sites),
        "covered": covered,
        "share": covered / len(sites) if sites else 1.0,
        "complete_files": len(complete),
        "complete_share": len(complete) / len(using) if using else 1.0,
        "missing": missing.most_common(),
        "refused": refused.most_common(),
        "refused_sites": sum(refused.values()),
    }


NBTRACK_IMPORT = re.compile(r"^(\s*)import wandb\b", re.M)
NBTRACK_FROM = re.compile(r"^(\s*)from wandb(\.\S+)? import", re.M)


def as_nbtrack(text: str) -> str:
    """``import wandb`` -> ``import nbtrack as wandb``; ``from wandb.x import`` -> ``from nbtrack.x import``."""
    text = NBTRACK_IMPORT.sub(r"\1import nbtrack as wandb", text)
    return NBTRACK_FROM.sub(lambda m: f"{m.group(1)}from nbtrack{m.group(2) or ''} import", text)


def run_script(
    script: Path, python: str, *, rewrite: bool, timeout: float, args: list[str] | None = None
) -> tuple[bool, str]:
    work = Path(tempfile.mkdtemp(prefix="wandb-corpus-"))
    try:
        text = script.read_text(errors="replace")
        if script.suffix == ".ipynb":
            nb = json.loads(text)
            text = "\n\n".join(
                MAGIC.sub("", "".join(c.get("source", ""))) for c in nb["cells"] if c.get("cell_type") == "code"
            )
        if rewrite:
            text = as_nbtrack(text)
        target = work / "main.py"
        target.write_text(text)
        env = {
            **os.environ,
            "WANDB_MODE": "offline",
            "WANDB_SILENT": "true",
            "NBTRACK_QUIET": "1",
            "PYTHONPATH": str(ROOT) if rewrite else os.environ.get("WANDB_PYTHONPATH", ""),
            "MPLBACKEND": "Agg",
        }
        proc = subprocess.run(
            [python, str(target), *(args or [])], cwd=work, env=env, capture_output=True, text=True, timeout=timeout
        )
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
        return proc.returncode == 0, tail[0][:200]
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--run", type=Path, default=None, help="a file listing scripts of the corpus to run")
    parser.add_argument("--wandb-python", default=None, help="a Python with wandb installed (for --run)")
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--top", type=int, default=40, help="how many missing names to list")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = coverage(args.corpus)
    print(
        f"{result['files_using_wandb']} files use wandb ({result['files']} read, "
        f"{len(result['unparsable'])} not parsable); {result['sites']:,} call sites"
    )
    print(f"call sites whose name nbtrack has: {result['covered']:,} ({result['share']:.1%})")
    print(
        f"call sites nbtrack refuses with a UsageError naming the alternative (not counted above): "
        f"{result['refused_sites']:,} ({result['refused_sites'] / max(1, result['sites']):.1%})"
    )
    print(f"files that use nothing nbtrack lacks: {result['complete_files']} ({result['complete_share']:.1%})")
    if result["missing"]:
        print("missing (AttributeError or ImportError), by call sites:")
        for name, count in result["missing"][: args.top]:
            print(f"  {count:>5}  {name}")
    if result["refused"]:
        print("refused with a UsageError, by call sites:")
        for name, count in result["refused"][: args.top]:
            print(f"  {count:>5}  {name}")
    if args.run is not None:
        scripts = [
            line.strip() for line in args.run.read_text().splitlines() if line.strip() and not line.startswith("#")
        ]
        rows = []
        for line in scripts:
            rel, *script_args = line.split()
            script = args.corpus / rel
            real = (
                run_script(script, args.wandb_python, rewrite=False, timeout=args.timeout, args=script_args)
                if args.wandb_python
                else (None, "")
            )
            ours = run_script(script, sys.executable, rewrite=True, timeout=args.timeout, args=script_args)
            rows.append(
                {"script": rel, "wandb": real[0], "wandb_tail": real[1], "nbtrack": ours[0], "nbtrack_tail": ours[1]}
            )
            print(
                f"{'ok ' if real[0] else 'NO ' if real[0] is False else '-  '} wandb   "
                f"{'ok ' if ours[0] else 'NO '} nbtrack  {rel}" + ("" if ours[0] else f"   [{ours[1]}]")
            )
        ran = [r for r in rows if r["wandb"]]
        print(
            f"scripts real wandb runs offline: {len(ran)} of {len(rows)}; of those nbtrack runs "
            f"{sum(1 for r in ran if r['nbtrack'])}"
        )
        result["scripts"] = rows
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
