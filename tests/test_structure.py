"""The shape of the code: scripts are thin and import only air/ (never another script), and
air/ has no import cycle, counting the imports inside functions too.

Imports are read with ``ast`` from the source, so nothing here imports TensorFlow.
"""
import ast
import os
import sys

from conftest import REPO

SCRIPTS = ("training", "evaluate", "demo", "embeddings", "charts", "bench", "multi_mnist",
           "export_model", "sweep", "run_original")
MAX_SCRIPT_LINES = 200


def imported_modules(path):
    """The absolute module names a source file imports anywhere in it (top level or inside a
    function): ``import a.b`` gives a.b, ``from a import b`` gives a.b when a/b.py is a module
    of the project and a otherwise; relative imports are resolved against the file's package."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    package = os.path.relpath(os.path.dirname(path), REPO).replace(os.sep, ".")
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:
                full = base + "." + alias.name
                names.add(full if project_module_path(full) else base)
    return names


def project_module_path(name):
    """The file of a module of this project (a script or under air/), or None."""
    relative = os.path.join(REPO, *name.split("."))
    for candidate in (relative + ".py", os.path.join(relative, "__init__.py")):
        if os.path.isfile(candidate):
            return candidate
    return None


def air_modules():
    """{module name: file} of every module of the air package, subpackages included."""
    modules = {}
    for folder, _, files in os.walk(os.path.join(REPO, "air")):
        if "__pycache__" in folder:
            continue
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                module = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                modules[module[:-len(".__init__")] if module.endswith(".__init__")
                        else module] = path
    return modules


def air_import_graph():
    """{air module: the air modules it imports}. A subpackage's own __init__ is not counted as
    a dependency of its modules (Python imports it on the way, not the module's choice)."""
    modules = air_modules()
    graph = {}
    for module, path in modules.items():
        targets = set()
        for name in imported_modules(path):
            if name == "air" or not name.startswith("air."):
                continue
            if name not in modules:
                raise AssertionError("%s imports %s, which does not exist" % (module, name))
            if name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def find_cycle(graph):
    """One import cycle of the graph as a list of modules (first == last), or None."""
    state = {}  # module -> "visiting" or "done"
    stack = []

    def visit(module):
        state[module] = "visiting"
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "visiting":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            if cycle:
                return cycle
    return None


def test_scripts_import_only_air_and_libraries():
    for script in SCRIPTS:
        path = os.path.join(REPO, script + ".py")
        for name in imported_modules(path):
            top = name.split(".")[0]
            assert top not in SCRIPTS, "%s.py imports the script %s.py" % (script, top)
            if top != "air":
                assert project_module_path(top) is None, (
                    "%s.py imports %s, a module of the project outside air/" % (script, name))


def test_no_import_cycle_in_air():
    cycle = find_cycle(air_import_graph())
    assert cycle is None, "import cycle in air/: %s" % " -> ".join(cycle)


def test_air_never_imports_a_script():
    for module, path in air_modules().items():
        for name in imported_modules(path):
            assert name.split(".")[0] not in SCRIPTS, "%s imports the script %s" % (module, name)


def test_scripts_are_thin():
    for script in SCRIPTS:
        with open(os.path.join(REPO, script + ".py")) as f:
            lines = len(f.read().splitlines())
        assert lines <= MAX_SCRIPT_LINES, "%s.py has %d lines (at most %d: its logic belongs " \
                                          "in air/)" % (script, lines, MAX_SCRIPT_LINES)


def test_the_cycle_finder_finds_cycles():
    """The check above would pass vacuously if find_cycle never found anything."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_function_level_imports_are_counted(tmp_path):
    source = tmp_path / "module.py"
    source.write_text("import os\n\ndef f():\n    from air.training import checkpoints\n"
                      "    import air.evaluation.model_folder\n")
    assert {"air.training.checkpoints", "air.evaluation.model_folder"} <= imported_modules(str(source))


def test_every_script_is_listed():
    """A new top-level script must be added to SCRIPTS (and so be checked above)."""
    found = {name[:-3] for name in os.listdir(REPO) if name.endswith(".py")}
    assert found == set(SCRIPTS), sorted(found ^ set(SCRIPTS))


if __name__ == "__main__":
    sys.exit(os.system("%s -m pytest -q %s" % (sys.executable, __file__)))
