"""The documentation against the code: every command of README.md and docs/ names a script and
flags that exist (the quick ones run), every relative link resolves, the variant names' table
matches the code, and the study's reports regenerate from their records byte for byte."""
import filecmp
import glob
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

from air.experiments import sweep
from conftest import REPO

# Pages that other branches write; README.md links to them before they are merged here.
def _pages():
    """README.md and every Markdown page under docs/, as paths relative to the repository."""
    pages = ["README.md"] + sorted(
        os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "docs", "**", "*.md"),
                                                       recursive=True))
    # The study's reports are written by sweep.py, not by hand.
    return [p for p in pages if os.path.basename(p) != "sweep.md"]


def _read(page):
    with open(os.path.join(REPO, page)) as f:
        return f.read()


def _command_lines(text):
    """The shell commands of a page: the lines of its fenced blocks (continuations joined, a
    leading "$ " dropped) and its inline code spans that run a script."""
    commands = []
    for block in re.findall(r"^ *```[^\n]*\n(.*?)^ *```", text, flags=re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            commands.append(line[2:] if line.startswith("$ ") else line)
    commands += re.findall(r"`((?:python|\.venv/bin/python|make) [^`]+)`", text.replace("\n", " "))
    return commands


def _script_and_arguments(command):
    """(script file, arguments) of a command that runs one of the repository's scripts, or
    (make target, arguments) as ('make:TARGET', ARGS split); None for any other command."""
    try:
        words = shlex.split(command, comments=True)
    except ValueError:
        return None
    while words and re.match(r"^[A-Z_]+=", words[0]):  # Environment assignments.
        words = words[1:]
    if words[:1] == ["make"] and len(words) > 1:
        extra = [w[len("ARGS="):] for w in words[2:] if w.startswith("ARGS=")]
        return "make:" + words[1], shlex.split(extra[0]) if extra else []
    for index, word in enumerate(words):
        if word.endswith(".py") and index > 0 and os.path.basename(words[index - 1]).startswith(
                "python"):
            return word, words[index + 1:]
    return None


def _documented_commands():
    found = []
    for page in _pages():
        for command in _command_lines(_read(page)):
            parsed = _script_and_arguments(command)
            if parsed and not parsed[0].startswith(("-m", "tests/")):
                found.append((page, command, parsed[0], parsed[1]))
    return found


def _parser_of(script):
    """The argparse parser of a top-level script, built by its build_parser()."""
    spec = importlib.util.spec_from_file_location("docs_script_" + script[:-3],
                                                  os.path.join(REPO, script))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_parser()


def _make_targets():
    with open(os.path.join(REPO, "Makefile")) as f:
        phony = re.search(r"^\.PHONY:(.*)$", f.read(), flags=re.M).group(1).split()
    return set(phony)


# The script each make target runs with ARGS.
MAKE_SCRIPTS = {"train": "training.py", "demo": "demo.py", "embeddings": "embeddings.py",
                "evaluate": "evaluate.py", "charts": "charts.py", "bench": "bench.py"}


def test_pages_have_commands_to_check():
    commands = _documented_commands()
    scripts = {script for _, _, script, _ in commands}
    assert {"training.py", "evaluate.py", "demo.py", "embeddings.py", "charts.py",
            "multi_mnist.py", "sweep.py", "bench.py", "export_model.py",
            "run_original.py"} <= scripts
    assert len(commands) >= 40


def test_every_documented_command_names_a_script_and_flags_it_accepts():
    """Each command's script exists and its parser accepts the command: in full where the
    command has no placeholders, flag by flag where it has ([--json OUT], DIR, ...)."""
    parsers, problems = {}, []
    targets = _make_targets()
    for page, command, script, arguments in _documented_commands():
        if script.startswith("make:"):
            target = script[len("make:"):]
            if target not in targets:
                problems.append("%s: `%s`: no make target %r" % (page, command, target))
                continue
            if target not in MAKE_SCRIPTS:
                continue
            script = MAKE_SCRIPTS[target]
            if target == "charts":
                arguments = ["--results-dir", "air_results"] + arguments
        script = os.path.normpath(script.replace(".venv/bin/", ""))
        if not os.path.isfile(os.path.join(REPO, script)):
            problems.append("%s: `%s`: no script %s" % (page, command, script))
            continue
        if script not in parsers:
            parsers[script] = _parser_of(script)
        parser = parsers[script]
        placeholders = any(w in ("...", "[") or w.startswith("[") or w.endswith("]")
                           or re.fullmatch(r"[A-Z][A-Z0-9_]*", w) for w in arguments)
        if placeholders or "--help" in arguments:  # --help exits before the rest is checked.
            flags = [w.strip("[]").split("=")[0] for w in arguments
                     if w.strip("[").startswith("--")]
            unknown = [f for f in flags if f not in parser._option_string_actions]
            if unknown:
                problems.append("%s: `%s`: unknown flags %s" % (page, command, unknown))
            continue
        try:
            args = parser.parse_args(arguments)
        except SystemExit:
            problems.append("%s: `%s`: %s refuses these arguments" % (page, command, script))
            continue
        if script == "sweep.py":
            for spec in args.variant or []:
                try:
                    sweep.parse_variant(spec)
                except sweep.SweepError as error:
                    problems.append("%s: `%s`: %s" % (page, command, error))
    assert not problems, "\n".join(problems)


def test_the_checker_catches_a_wrong_flag_and_a_missing_script():
    assert _script_and_arguments("python evaluate.py --no-such-flag 3") == (
        "evaluate.py", ["--no-such-flag", "3"])
    assert _script_and_arguments("MNIST_DIR=x .venv/bin/python run_original.py --seed 1") == (
        "run_original.py", ["--seed", "1"])
    assert _script_and_arguments('make train ARGS="--seed 1"') == ("make:train", ["--seed", "1"])
    assert _script_and_arguments("git clone https://example.org/x.git") is None
    with pytest.raises(SystemExit):
        _parser_of("evaluate.py").parse_args(["--no-such-flag", "3"])


def _anchors(page):
    """The anchors GitHub gives the headings of a Markdown page."""
    anchors = set()
    for heading in re.findall(r"^#+ (.*)$", _read(page), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_no_relative_link_is_broken():
    problems = []
    for page in _pages():
        text = re.sub(r"^ *```.*?^ *```", "", _read(page), flags=re.S | re.M)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path \
                else page
            if not os.path.exists(os.path.join(REPO, resolved)):
                problems.append("%s: link to %s: no such file" % (page, target))
            elif anchor and resolved.endswith(".md") and anchor not in _anchors(resolved):
                problems.append("%s: link to %s: no such heading" % (page, target))
    assert not problems, "\n".join(problems)


def test_readme_is_short_and_links_every_docs_page():
    readme = _read("README.md")
    assert len(readme.splitlines()) <= 250
    for page in glob.glob(os.path.join(REPO, "docs", "*.md")):
        assert "docs/" + os.path.basename(page) in readme, page
    assert "z_pres estimators" in readme and "docs/estimators.md" in readme


def test_the_variant_names_table_matches_the_code():
    """docs/study.md's table gives each short name the fields sweep.py and the presets give it."""
    section = _read("docs/study.md").split("## Variant names", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| ([^|]+) \|", section, flags=re.M)
    named = sweep.named_variants()
    assert [name for name, _ in rows] == list(named)
    for name, fields in rows:
        specs = re.findall(r"`([a-z-]+:[a-z_0-9=.,-]+)`", fields)
        preset = re.findall(r"`--preset ([a-z-]+)`", fields)
        if preset:
            assert preset == [name]
        for spec in specs:
            assert sweep.parse_variant(spec).name == name, spec
        assert specs or preset, name


def test_study_variants_keep_their_fields():
    """A name means one graph: these are the values the study's trials trained with."""
    named = sweep.named_variants()
    values = {name: (c.scale_prior_mean, c.z_pres_prior_odds_decay_steps, c.lstm_input)
              for name, c in named.items()}
    assert values == {"default": (-0.4, 2000, "image_and_latents"),
                      "first-default": (-1.0, 3000, "image_and_latents"),
                      "original": (-1.0, 3000, "image"),
                      "window-20px": (-0.4, 3000, "image_and_latents"),
                      "fast-anneal": (-1.0, 2000, "image_and_latents"),
                      "original-fast": (-1.0, 2000, "image")}


def _report_folders():
    return sorted(os.path.dirname(p) for p in glob.glob(
        os.path.join(REPO, "docs", "study", "**", "sweep.md"), recursive=True))


def test_every_study_report_regenerates_from_its_records(tmp_path):
    """sweep.py --report-only on a copy of each committed report folder (its records and its
    sweep.csv, no trial folders) writes the same sweep.md and sweep.csv, byte for byte: the
    tables quoted in docs/ are what the code makes of the records."""
    folders = _report_folders()
    assert len(folders) >= 7
    for index, folder in enumerate(folders):
        copy = str(tmp_path / ("report-%d" % index))
        shutil.copytree(folder, copy)
        os.remove(os.path.join(copy, "sweep.md"))  # sweep.csv stays: it keeps rows of lost trials.
        variants = sorted({row.split(",")[0] for row in open(os.path.join(folder, "sweep.csv"))
                           .read().splitlines()[1:]})
        command = [sys.executable, os.path.join(REPO, "sweep.py"), "--report-only", "--seeds",
                   "1-10", "--output-dir", str(tmp_path / "no-runs"), "--report-dir", copy]
        # A study run past convergence says so at the top of its report (--min-iterations).
        with open(os.path.join(folder, "sweep.md")) as f:
            not_before = re.search(r"in a row, not before (\d+) iterations", f.read())
        if not_before:
            command += ["--training-args", "--min-iterations " + not_before.group(1)]
        for variant in variants:
            preset, *changes = re.split(r"\+(?=[a-z_0-9]+=)", variant)
            command += ["--variant", preset + (":" + ",".join(changes) if changes else "")]
        result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                universal_newlines=True, timeout=300, cwd=str(tmp_path))
        assert result.returncode == 0, result.stdout
        for name in ("sweep.md", "sweep.csv"):
            assert filecmp.cmp(os.path.join(folder, name), os.path.join(copy, name),
                               shallow=False), (folder, name)


def test_records_in_the_earlier_spelling_are_read_as_they_were_meant(tmp_path):
    """A report folder whose records use the names of before the default changed ('default'
    for first-default, 'default+scale_prior_mean=-0.4' for window-20px) reports them under
    today's names, with the same figures."""
    from air.experiments.sweep_report import recorded_trials
    old = tmp_path / "old"
    source = os.path.join(REPO, "docs", "study", "remedies", "trials")
    for new_name, old_name in (("first-default", "default"),
                               ("window-20px", "default+scale_prior_mean=-0.4")):
        shutil.copytree(os.path.join(source, new_name), str(old / "trials" / old_name))
    names = sorted({(t.variant.name, t.seed) for t in recorded_trials(str(old))})
    assert names == [("first-default", 8), ("first-default", 9), ("window-20px", 8),
                     ("window-20px", 9)]
    # A folder name in today's spelling stays as it is, also for a trial of another size.
    assert sweep.variant_from_name("default").name == "default"
    assert sweep.variant_from_name(
        "default", sweep.variant_config(sweep.parse_variant("first-default"))).name == \
        "first-default"


def test_the_quick_documented_commands_run(tmp_path):
    """The small data set of the README's short run, generated as the README says."""
    mnist = os.environ.get("MNIST_DIR") or os.path.join(os.path.dirname(REPO), "shared", "mnist")
    command = next(c for p, c, s, a in _documented_commands()
                   if p == "README.md" and s == "multi_mnist.py")
    arguments = shlex.split(command)[2:]
    result = subprocess.run([sys.executable, os.path.join(REPO, "multi_mnist.py"), "--quiet",
                             "--mnist-dir", mnist] + arguments, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True, timeout=300,
                            cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout
    from air.data.records import read_records
    test = read_records(str(tmp_path / "small_data" / "test.tfrecords"))
    assert len(test.digits) == 300 and sorted(set(test.digits.tolist())) == [0, 1, 2]
