"""The documentation stays true: the paths it names exist (in the README, docs/ARCHITECTURE.md and every
docstring and comment of the package and the benchmarks), its commands parse, the README stays short, and the
project speaks of itself only."""
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from acai.cli import make_parser

ROOT = Path(__file__).resolve().parents[1]
README_LINES = 200
# A path of the project as the docs name it: acai/training/loop.py, benchmarks/train_throughput.py, docs/speed.md.
PATH = re.compile(r"(?<![\w./-])((?:acai|benchmarks|scripts|examples|tests|docs)/[\w./-]*[\w/])")
# Words about how the project was made, not what it is. Assembled so that this file does not hold them.
HISTORY = re.compile(r"\b(" + "ses" + r"sions?|iss" + r"ue\s*#?\s*\d+)\b", re.IGNORECASE)
# Tests' own names that hold the word: pytest's fixture scope, and the WebDriver protocol's URL and ids.
TEST_NAMES = re.compile(r'scope="session"|self\.session|"/session|sessionId')


def named_paths(text: str) -> list[str]:
    """The project paths a text names; a placeholder such as acai/core/models/NAME.py is not one."""
    return sorted({match.rstrip("./") for match in PATH.findall(text) if not re.search(r"\b[A-Z]{3,}\b", match)})


def test_every_path_named_in_the_readme_and_architecture_exists():
    for doc in ("README.md", "docs/ARCHITECTURE.md"):
        paths = named_paths((ROOT / doc).read_text())
        assert paths, f"{doc} names no path: the pattern is broken"
        missing = [path for path in paths if not (ROOT / path).exists()]
        assert not missing, f"{doc} names paths that do not exist: {missing}"


# A path named as what a command writes (`--out PATH`, `--json PATH`, `default="PATH"`, "(default PATH"): it
# exists once the command has run, so it is no reference to a file of the project.
OUTPUT = re.compile(r"(--out|--json|default=[\"']?|\(default)\s*$")


def missing_paths(text: str) -> list[str]:
    """The project paths `text` names that do not exist, outputs of its commands aside."""
    missing = set()
    for line in text.splitlines():
        for match in PATH.finditer(line):
            path = match.group(1).rstrip("./")
            if (path in named_paths(path) and not OUTPUT.search(line[:match.start()])
                    and not (ROOT / path).exists()):
                missing.add(path)
    return sorted(missing)


def source_files() -> list[Path]:
    """Every file of the package and of the benchmarks (not the benchmarks' results, which are data)."""
    files = [*(ROOT / "acai").rglob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
    assert len(files) > 50, "too few source files: the glob is broken"
    return sorted(files)


def test_every_path_named_in_the_package_and_the_benchmarks_exists():
    missing = [f"{path.relative_to(ROOT)}: {name}"
               for path in source_files() for name in missing_paths(path.read_text())]
    assert not missing, "paths named in docstrings or comments that do not exist:\n" + "\n".join(missing)


def test_a_renamed_module_is_caught(tmp_path):
    """The checks above would fail on a README or a docstring naming a module that is not there."""
    text = "See acai/training/loop.py and acai/training/no_such_module.py."
    assert [p for p in named_paths(text) if not (ROOT / p).exists()] == ["acai/training/no_such_module.py"]
    assert missing_paths(text) == ["acai/training/no_such_module.py"]
    # what a command writes is no reference; a placeholder (PRESET) is no path
    assert missing_paths('--out benchmarks/results/new.json\nparser.add_argument("--out", default="docs/new.png")\n'
                         "(default benchmarks/results/new-...)\nWrites benchmarks/results/check-PRESET.json.") == []
    assert missing_paths("Run benchmarks/no_such_benchmark.py --out x") == ["benchmarks/no_such_benchmark.py"]


def readme_commands() -> list[str]:
    """Every `acai ...` command of the README's code blocks, continuation lines joined, comments dropped."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line.startswith("acai "):
                commands.append(line)
    return commands


def test_the_readme_shows_acai_commands():
    assert len(readme_commands()) >= 5


@pytest.mark.parametrize("command", readme_commands())
def test_every_readme_command_parses(command):
    args = shlex.split(command)[1:]
    try:
        make_parser().parse_args(args)  # validation only: nothing runs
    except SystemExit as stop:
        pytest.fail(f"`{command}` does not parse (exit {stop.code})")


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= README_LINES, f"README.md has {lines} lines; move measurements to docs/"


def test_no_tracked_file_speaks_of_how_the_project_was_made():
    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others", "--exclude-standard"],
                             capture_output=True, text=True, check=True)
    found = []
    for name in tracked.stdout.splitlines():
        path = ROOT / name
        if path.suffix in (".png", ".jpg", ".gz", ".npz", ".pt") or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if HISTORY.search(line) and not (name.startswith("tests/") and TEST_NAMES.search(line)):
                found.append(f"{name}:{number}: {line.strip()[:100]}")
    assert not found, "history in tracked files:\n" + "\n".join(found)


# A test as docs/robustness.md names it: tests/test_robust.py::test_a_second_writer_is_refused...
NAMED_TEST = re.compile(r"\btests/(test_\w+\.py)::(test_\w+)")


def defined_tests(path: Path) -> set[str]:
    """The test functions a test file defines at its top level (parametrized ones by their own name)."""
    import ast

    return {node.name for node in ast.parse(path.read_text()).body
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_test_named_in_robustness_exists_and_every_case_names_one():
    text = (ROOT / "docs" / "robustness.md").read_text()
    named = NAMED_TEST.findall(text)
    assert len(named) >= 60, "docs/robustness.md names too few tests: the pattern is broken"
    missing = [f"tests/{file}::{test}" for file, test in named
               if not (ROOT / "tests" / file).exists() or test not in defined_tests(ROOT / "tests" / file)]
    assert not missing, f"docs/robustness.md names tests that do not exist: {missing}"
    cases = [line for line in text.split("## The cases", 1)[1].splitlines()
             if re.match(r"\| \d+ \| ", line)]  # a row of a table of cases
    assert len(cases) >= 60 and not [line[:80] for line in cases if not NAMED_TEST.search(line.split(" | ")[-1])]


def test_a_renamed_test_is_caught():
    """The check above would fail on a page naming a test that is not there."""
    tests = defined_tests(ROOT / "tests" / "test_robust.py")
    assert "test_interpolate_needs_two_steps" in tests and "test_interpolate_needs_three_steps" not in tests
