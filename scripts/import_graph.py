#!/usr/bin/env python3
"""Prints the module import graph of src/ (non-test code) bottom to top and
fails on an import cycle or a back edge (a module importing one in a higher
layer). Run by `make lint`.

Edges come from `crate::...` paths (in `use` lines and inline) and
`super::...` paths; `#[cfg(test)]` modules, src/tests/, src/bin/ and the
fake host are test code and not counted.
"""
import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

# Bottom to top. A module may import its own layer (without cycles) and the
# layers below it, never a layer above.
LAYERS = [
    ["host", "audit", "headers", "b64", "http_url", "canonical", "form"],
    ["keys", "cookie"],
    ["config"],
    ["token", "verified"],
    ["decision"],
    ["rules", "token_endpoint", "oidc"],
    ["request"],
    ["stream"],
    ["plugin"],
]

# Known exceptions: edges that close a cycle today, owned by other work.
# Each is left out of the cycle check and printed as a note; delete a line
# when its edge is gone (the script says so when one no longer exists).
KNOWN_CYCLE_EDGES = {
    # token/: jwt.rs (parsing, signature) calls policy::check_claims and
    # policy.rs calls jwt's checks; one of them should own the order.
    ("token::jwt", "token::policy"),
}

TEST_ONLY = {"fake_host", "tests"}


def module_of(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts = parts[:-1]
    return "::".join(parts)


def strip_tests(text: str) -> str:
    """Drops `#[cfg(test)]` items (a `mod` block or a single line item)."""
    out = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == "#[cfg(test)]":
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            if nxt.rstrip().endswith("{"):
                depth = 0
                i += 1
                while i < len(lines):
                    depth += lines[i].count("{") - lines[i].count("}")
                    i += 1
                    if depth <= 0:
                        break
                continue
            i += 2
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def strip_comments(text: str) -> str:
    return "\n".join(re.sub(r"//.*", "", line) for line in text.splitlines())


def use_paths(text: str):
    """Every `crate::`/`super::` path, with `use` groups expanded one level."""
    for m in re.finditer(r"\b((?:crate|super)(?:::(?:super|[A-Za-z_][A-Za-z0-9_]*))*)(::\{([^}]*)\})?", text):
        base, group = m.group(1), m.group(3)
        if group is None:
            yield base
        else:
            for item in group.split(","):
                item = item.strip().split(" as ")[0].strip()
                if item and item != "self":
                    yield f"{base}::{item.split('::')[0]}"
                else:
                    yield base


def resolve(path: str, current: str, modules: set, is_mod_file: bool):
    parts = path.split("::")
    here = current.split("::") if current else []
    if parts[0] == "crate":
        parts = parts[1:]
    else:
        base = list(here)  # `super` is the parent of this module (mod.rs or not)
        while parts and parts[0] == "super":
            base = base[:-1]
            parts = parts[1:]
        parts = base + parts
    # The longest prefix that names a module.
    for n in range(len(parts), 0, -1):
        candidate = "::".join(parts[:n])
        if candidate in modules:
            return candidate
    return None


def layer_of(module: str) -> int:
    top = module.split("::")[0]
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise SystemExit(f"import_graph: module {module} is in no layer; add it to LAYERS")


def main() -> int:
    files = {}
    for path in sorted(SRC.rglob("*.rs")):
        rel = path.relative_to(SRC)
        if rel.parts[0] in ("tests", "bin") or module_of(path) in TEST_ONLY or module_of(path) == "":
            continue
        files[module_of(path)] = path
    modules = set(files)
    edges = {m: set() for m in modules}
    for module, path in files.items():
        text = strip_comments(strip_tests(path.read_text()))
        is_mod_file = path.name == "mod.rs"
        for used in use_paths(text):
            target = resolve(used, module, modules, is_mod_file)
            if target and target != module and not module.startswith(target + "::") \
                    and not target.startswith(module + "::"):
                edges[module].add(target)

    failures = []
    known = []
    for edge in sorted(KNOWN_CYCLE_EDGES):
        if edge[1] in edges.get(edge[0], set()):
            edges[edge[0]].discard(edge[1])
            known.append(f"known cycle edge left out: {edge[0]} -> {edge[1]} (see KNOWN_CYCLE_EDGES)")
        else:
            known.append(f"known cycle edge {edge[0]} -> {edge[1]} is gone: remove it from KNOWN_CYCLE_EDGES")
    for module in sorted(modules):
        for target in sorted(edges[module]):
            if layer_of(target) > layer_of(module):
                failures.append(f"back edge: {module} (layer {layer_of(module)}) imports "
                                f"{target} (layer {layer_of(target)})")

    # Cycles: strongly connected components (Tarjan).
    index, low, on_stack, stack, sccs = {}, {}, set(), [], []
    counter = [0]

    def connect(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                sccs.append(component)

    sys.setrecursionlimit(10000)
    for v in sorted(modules):
        if v not in index:
            connect(v)
    for component in sccs:
        failures.append("cycle: " + " <-> ".join(sorted(component)))

    print("module import graph, bottom to top (module <- what it imports):")
    for module in sorted(modules, key=lambda m: (layer_of(m), m)):
        imports = ", ".join(sorted(edges[module])) or "-"
        print(f"  [{layer_of(module)}] {module} <- {imports}")
    for line in known:
        print("note: " + line)
    for line in failures:
        print("FAIL: " + line, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
