"""The shape of the code: scripts are thin and import only air/ (never another script); air/
has no import cycle, counting the imports inside functions too, and keeps its wings apart (the
model imports no other wing but data; only air/experiments imports air/experiments); functions
and classes stay short; only air/paths.py knows the repository's layout and only
air/launcher.py builds the command lines of its scripts.

Everything is read with ``ast`` from the source, so nothing here imports TensorFlow.
"""
import ast
import os
import sys

from conftest import REPO

SCRIPTS = ("training", "evaluate", "demo", "embeddings", "charts", "bench", "multi_mnist",
           "export_model", "sweep", "run_original")
MAX_SCRIPT_LINES = 200
MAX_FUNCTION_LINES = 60
MAX_CLASS_LINES = 200
# What the model wing may not import: it is the maths, the others build on it.
ABOVE_THE_MODEL = ("air.training", "air.evaluation", "air.visualisation", "air.experiments")
# The one module that knows where the repository is, and the one that builds command lines.
PATHS_MODULE, LAUNCHER_MODULE = "air.paths", "air.launcher"
# original_bootstrap.py runs by path inside the original project's sys.path and must take its
# own folder (which Python put first on sys.path) off it: __file__ names that folder only.
FILE_LOOKUPS_ALLOWED = {PATHS_MODULE, "air.experiments.original_bootstrap"}
# The modules that run the original project name its files (its own training.py), not ours.
ORIGINAL_PROJECT_MODULES = {"air.experiments.original_code", "air.experiments.original_bootstrap"}


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


def wing_violations(graph):
    """(importer, imported) pairs that break the wing rules, from an import graph."""
    broken = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            if module.startswith("air.model") and target.startswith(ABOVE_THE_MODEL):
                broken.append((module, target))
            if (target.startswith("air.experiments")
                    and not module.startswith("air.experiments")):
                broken.append((module, target))
    return broken


def test_the_wings_keep_their_imports_apart():
    broken = wing_violations(air_import_graph())
    assert not broken, "wing rules broken: %s" % ", ".join(
        "%s imports %s" % pair for pair in broken)


def test_the_wing_rules_catch_an_import_across():
    assert wing_violations({"air.model.networks": {"air.training.summaries"},
                            "air.cli": {"air.experiments.sweep"},
                            "air.experiments.sweep": {"air.training.options"}}) == [
        ("air.cli", "air.experiments.sweep"), ("air.model.networks", "air.training.summaries")]


def _last_line(node):
    """The last line of a node: end_lineno where Python records it (3.8+), else the largest
    line number of anything inside it."""
    end = getattr(node, "end_lineno", None)
    if end is not None:
        return end
    return max(getattr(n, "lineno", node.lineno) for n in ast.walk(node))


def long_definitions(source, name="<source>"):
    """(description, lines) of every function over MAX_FUNCTION_LINES and every class over
    MAX_CLASS_LINES lines in ``source`` (decorators not counted, docstrings counted)."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            # Python 3.7 puts a decorated definition's lineno on its first decorator, 3.8+
            # on the def line: start after the decorators so both stacks count the same.
            first = max([node.lineno] + [_last_line(d) + 1 for d in node.decorator_list])
            lines = _last_line(node) - first + 1
            limit = MAX_CLASS_LINES if isinstance(node, ast.ClassDef) else MAX_FUNCTION_LINES
            if lines > limit:
                found.append(("%s:%d %s" % (name, node.lineno, node.name), lines))
    return found


def test_functions_and_classes_are_short():
    found = []
    for module, path in sorted(air_modules().items()):
        with open(path) as f:
            found += long_definitions(f.read(), os.path.relpath(path, REPO))
    assert not found, "too long (functions <= %d lines, classes <= %d): %s" % (
        MAX_FUNCTION_LINES, MAX_CLASS_LINES, ", ".join("%s: %d" % item for item in found))


def test_the_length_rule_counts_lines():
    body = "".join("    x = %d\n" % i for i in range(MAX_FUNCTION_LINES))
    assert long_definitions("def short():\n" + body[:-len("    x = 59\n")]) == []
    assert long_definitions("def long():\n" + body) == [
        ("<source>:1 long", MAX_FUNCTION_LINES + 1)]


def test_the_length_rule_leaves_decorators_out_on_every_python():
    body = "".join("    x = %d\n" % i for i in range(MAX_CLASS_LINES - 1))
    source = "@decorator(\n    1)\n@other\nclass Limit:\n" + body
    assert long_definitions(source) == []
    assert [lines for _, lines in long_definitions(source + "    y = 0\n")] == [
        MAX_CLASS_LINES + 1]


def _strings(tree):
    """The string constants of a tree that are values (docstrings and other bare string
    statements left out)."""
    bare = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
    for node in ast.walk(tree):
        value = getattr(node, "value", None) if type(node).__name__ == "Constant" else (
            getattr(node, "s", None) if type(node).__name__ == "Str" else None)
        if isinstance(value, str) and id(node) not in bare:
            yield node, value


def layout_violations(source, module):
    """What in a module of air/ knows the repository's layout or builds a command line of one
    of its scripts (or of Python source), outside the modules allowed to."""
    tree = ast.parse(source, module)
    found = []
    names = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    if "__file__" in names and module not in FILE_LOOKUPS_ALLOWED:
        found.append("%s uses __file__ (ask air/paths.py)" % module)
    if module == LAUNCHER_MODULE or module == PATHS_MODULE:
        return found
    scripts = {script + ".py" for script in SCRIPTS}
    for node, value in _strings(tree):
        if value in ("-c", "-m"):
            found.append("%s:%d passes %r to Python (use air/launcher.py)"
                         % (module, node.lineno, value))
        if value in scripts and module not in ORIGINAL_PROJECT_MODULES:
            found.append("%s:%d names the script %s (use air/launcher.py or air/paths.py)"
                         % (module, node.lineno, value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and (node.attr == "executable" or (
                node.attr == "script" and getattr(node.value, "id", None) == "paths")):
            found.append("%s:%d builds a command line with %s (use air/launcher.py)"
                         % (module, node.lineno, node.attr))
    return found


def test_only_the_launcher_builds_command_lines_and_only_paths_knows_the_layout():
    found = []
    for module, path in sorted(air_modules().items()):
        with open(path) as f:
            found += layout_violations(f.read(), module)
    assert not found, "; ".join(found)


def test_the_layout_rules_catch_a_command_line_and_a_path():
    command = ("import os, sys\nfrom air import paths\n"
               "ROOT = os.path.dirname(__file__)\n"
               "COMMAND = [sys.executable, '-c', 'print(1)']\n"
               "TRAIN = [sys.executable, paths.script('training')]\n"
               "OTHER = os.path.join(ROOT, 'evaluate.py')\n")
    found = layout_violations(command, "air.training.example")
    assert len(found) == 6, found  # __file__, -c, evaluate.py, executable twice, paths.script
    assert layout_violations('"""Runs training.py."""\nX = 1\n', "air.training.example") == []
    assert layout_violations(command, LAUNCHER_MODULE) == [
        "air.launcher uses __file__ (ask air/paths.py)"]


def read_test_files():
    """{path: source} of every test file (tests/**/test_*.py)."""
    found = {}
    for folder, _, files in os.walk(os.path.join(REPO, "tests")):
        for name in files:
            if name.startswith("test_") and name.endswith(".py"):
                with open(os.path.join(folder, name)) as f:
                    found[os.path.join(folder, name)] = f.read()
    return found


def test_no_test_imports_another_and_test_names_are_unique():
    """Shared helpers live in conftest.py or tests/support/; two test files of one name would
    be one module to pytest (the folders have no __init__.py)."""
    files = read_test_files()
    names = [os.path.basename(path) for path in files]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    for path, source in files.items():
        for name in imported_modules_of_source(source, path):
            last = name.split(".")[-1]
            assert not (last.startswith("test_") or name.startswith("tests.")), (
                "%s imports the test module %s" % (os.path.relpath(path, REPO), name))


def imported_modules_of_source(source, path):
    """The module names a test file imports (``from a import b`` gives a and a.b)."""
    names = set()
    for node in ast.walk(ast.parse(source, path)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(node.module + "." + alias.name for alias in node.names)
    return names


if __name__ == "__main__":
    sys.exit(os.system("%s -m pytest -q %s" % (sys.executable, __file__)))
