"""README.md and docs/*.md stay true to the repository.

Every `make <target>` they name exists in the Makefile; every repository path exists (or is written by a Makefile
target); every `group=option` names a config file; every relative Markdown link and #anchor resolves; every
`python -m cbl.train` / `cbl-train` / `torchrun ... -m cbl.train` command (and the Makefile's own, and the ARGS of a
`make` command) composes with Hydra and passes cbl.training.config.check; every `python scripts/X.py` / `cbl-*` command names
an existing script and only options its argparse parser knows; every generated section (<!-- cbl:NAME:start/end -->)
has a command in the Makefile or the docs that writes it, and every such command points at a file holding its
markers; the file map of docs/development.md names every folder and module.  Text inside generated sections is not
checked (its generator's tests cover it).  A failure names the file, the line and the bad reference, and the last
test shows that each check catches a seeded mistake.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import json
import re
import shlex
import tomllib  # Python 3.11+, as tests/test_packaging.py
from dataclasses import dataclass, field
from functools import cache
from unittest import mock

import pytest

from cbl.training import config as cbl_config
from tests.train_utils import CONFIG_DIR, ROOT, compose_cfg

DOC_FILES = ("README.md", *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")))
GROUPS = ("dataset", "model", "loss", "optim", "sampler", "experiment", "method", "sweep")
TOP_LEVEL_FILES = ("Makefile", "environment.yml", "requirements.lock", "pyproject.toml")
REPO_DIRS = ("configs", "cbl", "scripts", "tests", "docs", "benchmarks", "hydra_plugins")
#: make variables whose value is a command line of a script (the others, ARGS, hold Hydra overrides)
MAKE_SCRIPT_VARS = {"BENCH_ARGS": "scripts/bench.py", "DASHBOARD_ARGS": "scripts/dashboard.py"}
PLACEHOLDER = "\x00"
SEPARATORS = {";", "&&", "||", "|", "&"}


# ----------------------------------------------------------------------------- reading the documents
@dataclass
class Doc:
    """A Markdown file: its text with generated sections blanked out (line numbers kept), fenced code blocks and
    inline code spans, each with the line it starts on."""

    name: str
    text: str
    markers: list[tuple[str, int, int]] = field(default_factory=list)  # (NAME, start line, end line)
    marker_problems: list[str] = field(default_factory=list)
    checked: str = ""  # the text outside generated sections
    blocks: list[tuple[str, int, list[str]]] = field(default_factory=list)  # (language, first line, lines)
    spans: list[tuple[int, str]] = field(default_factory=list)  # (line, inline code)
    outside: str = ""  # checked text with code blocks blanked
    prose: str = ""  # checked text with code blocks and inline code blanked


MARKER = re.compile(r"<!-- cbl:([A-Za-z0-9_-]+):(start|end) -->")
#: a marker is a line of its own; one quoted in the text (`<!-- cbl:NAME:start -->`) is not a section
MARKER_LINE = re.compile(r"^\s*<!-- cbl:([A-Za-z0-9_-]+):(start|end) -->\s*$")


def parse_doc(name: str, text: str) -> Doc:
    doc = Doc(name, text)
    lines = text.split("\n")
    keep = list(lines)
    open_at: dict[str, int] = {}
    for i, line in enumerate(lines, 1):
        for m in MARKER_LINE.finditer(line):
            marker, kind = m.groups()
            if kind == "start":
                if marker in open_at or any(n == marker for n, _, _ in doc.markers):
                    doc.marker_problems.append(f"{name}:{i}: a second <!-- cbl:{marker}:start --> marker")
                open_at[marker] = i
            elif marker not in open_at:
                doc.marker_problems.append(f"{name}:{i}: <!-- cbl:{marker}:end --> without a start marker before it")
            else:
                start = open_at.pop(marker)
                doc.markers.append((marker, start, i))
                for j in range(start, i - 1):  # the lines between the markers
                    keep[j] = ""
    for marker, start in open_at.items():
        doc.marker_problems.append(f"{name}:{start}: <!-- cbl:{marker}:start --> without an end marker")
    sections = {n for n, _, _ in doc.markers}
    for i, line in enumerate(lines, 1):  # cbl.reporting.readme replaces a section only when its markers occur exactly once
        for m in MARKER.finditer(line):
            if m.group(1) in sections and not MARKER_LINE.match(line):
                doc.marker_problems.append(f"{name}:{i}: {m.group(0)} quoted in the text: the section could not be "
                                           "rewritten (its markers must occur once)")
    doc.checked = "\n".join(keep)

    prose = list(keep)
    fence = None
    for i, line in enumerate(keep):
        m = re.match(r"^\s*(```+|~~~+)\s*([\w-]*)", line)
        if fence is None and m:
            fence, lang, first, body = m.group(1), m.group(2), i + 2, []
            prose[i] = ""
        elif fence is not None:
            if line.strip().startswith(fence):
                doc.blocks.append((lang, first, body))
                fence = None
            else:
                body.append(line)
            prose[i] = ""
    text_outside = doc.outside = "\n".join(prose)
    chars = list(text_outside)
    for m in re.finditer(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)", text_outside, re.DOTALL):
        if "\n\n" in m.group(2):
            continue
        doc.spans.append((text_outside.count("\n", 0, m.start()) + 1, m.group(2).strip()))
        for k in range(m.start(), m.end()):
            if chars[k] != "\n":
                chars[k] = " "
    doc.prose = "".join(chars)
    return doc


@cache
def real_docs() -> tuple[Doc, ...]:
    return tuple(parse_doc(name, (ROOT / name).read_text(encoding="utf-8")) for name in DOC_FILES)


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


# ----------------------------------------------------------------------------- the Makefile
@cache
def makefile() -> str:
    return (ROOT / "Makefile").read_text(encoding="utf-8")


@cache
def make_targets() -> frozenset[str]:
    return frozenset(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", makefile(), re.MULTILINE))


def makefile_commands() -> list[tuple[str, int, str]]:
    """("Makefile", line, command) for each recipe line, continuation lines joined, $(PY) read as python."""
    out, lines = [], makefile().split("\n")
    i = 0
    while i < len(lines):
        if lines[i].startswith("\t"):
            start, text = i + 1, lines[i].strip()
            while text.endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text[:-1] + " " + lines[i].strip()
            text = text.replace("$(PY)", "python").replace("$(MAKE)", "make")
            out.append(("Makefile", start, text))
        i += 1
    return out


# ----------------------------------------------------------------------------- commands in the documents
def doc_commands(doc: Doc) -> list[tuple[str, int, str]]:
    """(file, line, command) of every shell line in a bash / unlabelled code block (continuations joined) and of
    every inline code span."""
    out = []
    for lang, first, body in doc.blocks:
        if lang not in ("", "bash", "sh", "shell", "console"):
            continue
        i = 0
        while i < len(body):
            start, text = first + i, body[i].strip()
            while text.endswith("\\") and i + 1 < len(body):
                i += 1
                text = text[:-1] + " " + body[i].strip()
            if text:
                out.append((doc.name, start, text))
            i += 1
    out += [(doc.name, line, span) for line, span in doc.spans]
    return out


def tokens(command: str) -> list[list[str]]:
    """The simple commands of a shell line as token lists; <placeholders> become one PLACEHOLDER token."""
    text = re.sub(r"<[^<>\n]*>", PLACEHOLDER, command)
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split, lexer.commenters = True, "#"
    try:
        toks = list(lexer)
    except ValueError:  # an unbalanced quote: not a shell line (prose in a code span)
        return []
    parts, cur = [], []
    for t in toks:
        if t in SEPARATORS:
            parts.append(cur)
            cur = []
        else:
            cur.append(t)
    parts.append(cur)
    return [p for p in parts if p]


def is_placeholder(token: str) -> bool:
    return (PLACEHOLDER in token or token.startswith("[") or token == "..." or token.endswith("=...")
            or "$" in token)


def make_invocations(cmd: list[str]) -> list[tuple[str, dict[str, str]]]:
    """(target, {VAR: value}) of a `make target VAR=value ...` command."""
    if not cmd or cmd[0] != "make":
        return []
    targets = [t for t in cmd[1:] if not t.startswith("-") and "=" not in t and not is_placeholder(t)]
    variables = dict(t.split("=", 1) for t in cmd[1:] if re.match(r"^[A-Z_]+=", t))
    return [(t, variables) for t in targets[:1]]


HYDRA_FLAGS_WITH_VALUE = {"-c", "--cfg", "-p", "--package", "--info", "-i"}
HYDRA_OTHER_CONFIG = {"-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir", "-sc",
                      "--shell-completion"}


def train_overrides(cmd: list[str]) -> list[str] | None:
    """The Hydra overrides of a `python -m cbl.train` / `torchrun ... -m cbl.train` / `cbl-train` command, None
    for another command or one that composes another config (shell completion, another config name)."""
    for i, t in enumerate(cmd):
        if t == "cbl-train" or (t == "cbl.train" and i > 0 and cmd[i - 1] == "-m"):
            args = cmd[i + 1:]
            break
    else:
        return None
    if any(a in HYDRA_OTHER_CONFIG for a in args):
        return None
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in HYDRA_FLAGS_WITH_VALUE:
            skip = True
        elif a.startswith("-") or is_placeholder(a):
            continue
        else:
            out.append(a)
    return out


def expand_sweeps(overrides: list[str]) -> list[list[str]]:
    """Each sweep override (`key=a,b,c`) at its first value, then every other value one at a time."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    choices = [list(o.sweep_string_iterator()) if o.is_sweep_override() else None for o in parsed]
    keys = [o.input_line.split("=", 1)[0] for o in parsed]
    base = [f"{k}={c[0]}" if c else o for k, c, o in zip(keys, choices, overrides)]
    variants = [base]
    for i, c in enumerate(choices):
        for value in (c or [])[1:]:
            variants.append([*base[:i], f"{keys[i]}={value}", *base[i + 1:]])
    return variants


def compose_problem(overrides: list[str]) -> str | None:
    try:
        variants = expand_sweeps(overrides)
    except Exception as e:  # noqa: BLE001 - Hydra's parser raises its own exception types
        return f"cannot parse the overrides: {e}"
    for variant in variants:
        problem = composed(tuple(variant))
        if problem:
            return f"{' '.join(variant)}: {problem}"
    return None


@cache
def composed(overrides: tuple[str, ...]) -> str | None:
    """None when the overrides compose and pass cbl.training.config.check, else the error."""
    try:
        cbl_config.check(compose_cfg(*overrides))
    except Exception as e:  # noqa: BLE001 - composition and check errors alike are the finding
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    return None


# ----------------------------------------------------------------------------- scripts and their parsers
class _Parsed(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


@cache
def console_scripts() -> dict[str, str]:
    """cbl-* console script -> "module:function" (pyproject.toml), cbl-train left to Hydra."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    return {name: target for name, target in scripts.items() if name != "cbl-train"}


@cache
def parser_of(program: str) -> argparse.ArgumentParser | None:
    """The argparse parser a script (scripts/X.py) or console script (cbl-X) builds, taken from its main()."""
    if program.startswith("scripts/"):
        path = ROOT / program
        if not path.is_file():
            return None
        spec = importlib.util.spec_from_file_location(f"_doc_script_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        main = module.main
    else:
        module_name, func = console_scripts()[program].split(":")
        main = getattr(importlib.import_module(module_name), func)

    def grab(self, *args, **kwargs):
        raise _Parsed(self)

    with mock.patch.object(argparse.ArgumentParser, "parse_known_args", grab):  # parse_args and parse_intermixed_args call it
        try:
            main([])
        except _Parsed as p:
            return p.parser
    raise AssertionError(f"{program}: main() returned without parsing its arguments")


def script_of(cmd: list[str]) -> tuple[str, list[str]] | None:
    """(program, its arguments) of a `python scripts/X.py ...` or `cbl-X ...` command."""
    for i, t in enumerate(cmd):
        if re.fullmatch(r"scripts/[\w-]+\.py", t) and (i == 0 or re.search(r"python[\d.]*$", cmd[i - 1])):
            return t, cmd[i + 1:]
        if t in console_scripts():
            return t, cmd[i + 1:]
    return None


def for_subcommand(parser: argparse.ArgumentParser, args: list[str]) -> tuple[argparse.ArgumentParser, list[str]]:
    """The parser of the subcommand `args` starts with (scripts/lossy_copy.py measure ...) and the rest of `args`;
    the parser itself for a command without subcommands."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and args and args[0] in action.choices:
            return action.choices[args[0]], args[1:]
    return parser, args


def option_problems(program: str, args: list[str]) -> list[str]:
    parser = parser_of(program)
    if parser is None:
        return [f"{program} does not exist"]
    parser, args = for_subcommand(parser, args)
    known = parser._option_string_actions  # argparse keeps no public list of its options
    out = []
    text = " ".join(args)
    for option in re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)", text):
        if option not in known:
            out.append(f"{program} has no option {option}")
    for i, a in enumerate(args[:-1]):
        action = known.get(a.split("=", 1)[0])
        value = a.split("=", 1)[1] if "=" in a else args[i + 1]
        if action is not None and action.choices and not is_placeholder(value) and "|" not in value \
                and value not in [str(c) for c in action.choices]:
            out.append(f"{program} {a}: {value!r} is not one of {list(action.choices)}")
    return out


def generated_section_written(program: str, args: list[str]) -> tuple[str, str] | None:
    """(file, marker) that a make_table / bench command rewrites, None for a command that writes none."""
    parser = parser_of(program)
    if parser is None or not any(a == "--readme" or a.startswith("--readme=") for a in args):
        return None
    parser, args = for_subcommand(parser, args)
    try:
        ns, _ = parser.parse_known_args([a for a in args if not is_placeholder(a)] + _required_fillers(parser, args))
    except SystemExit:  # a bad value: option_problems reports it
        return None
    if ns.marker:
        return ns.readme, ns.marker
    if hasattr(ns, "table"):  # make_table: the table's own name
        return ns.readme, f"table{ns.table}" if ns.table.isdigit() else ns.table
    device = ns.device
    if getattr(ns, "from_json", None) and (ROOT / ns.from_json).is_file():
        device = json.loads((ROOT / ns.from_json).read_text())["device"]
    return ns.readme, "bench-gpu" if str(device).startswith("cuda") else "bench-cpu"


def _required_fillers(parser: argparse.ArgumentParser, args: list[str]) -> list[str]:
    """Dummy values for required options a command leaves to a make variable (so parse_known_args succeeds)."""
    out = []
    for action in parser._actions:
        if action.required and action.option_strings and not any(o in args for o in action.option_strings):
            out += [action.option_strings[0], str(action.choices[0]) if action.choices else "x"]
    return out


# ----------------------------------------------------------------------------- the checks
def all_commands(docs) -> list[tuple[str, int, list[str]]]:
    """(file, line, tokens) of every simple command in the documents, then in the Makefile's recipes."""
    out = []
    for name, line, text in [c for d in docs for c in doc_commands(d)] + makefile_commands():
        out += [(name, line, cmd) for cmd in tokens(text)]
    return out


def check_make_targets(docs) -> list[str]:
    out = []
    for name, line, cmd in all_commands(docs):
        if name == "Makefile":
            continue
        for target, _ in make_invocations(cmd):
            if target not in make_targets():
                out.append(f"{name}:{line}: `make {target}`: the Makefile has no target {target!r}")
    return out


PATH_RE = re.compile(r"(?<![\w./~$-])((?:" + "|".join(REPO_DIRS) + r")/[^\s`'\"()\[\]<>,;|{}]*)")
FILE_RE = re.compile(r"(?<![\w./-])(" + "|".join(re.escape(f) for f in TOP_LEVEL_FILES) + r")(?![\w.-])")


@cache
def makefile_outputs() -> frozenset[str]:
    """Paths a Makefile target writes (--out, --to, --json): they need not exist before it runs."""
    return frozenset(p.rstrip("/") for p in re.findall(r"--(?:out|to|json)\s+(\S+)", makefile()))


def check_paths(docs) -> list[str]:
    out = []
    for doc in docs:
        for m in PATH_RE.finditer(doc.checked):
            path = m.group(1).split("#")[0].rstrip(".:")
            if "..." in path:
                continue
            exists = any(True for _ in ROOT.glob(path.rstrip("/"))) if any(c in path for c in "*?") else (ROOT / path).exists()
            if not exists and path.rstrip("/") not in makefile_outputs():
                out.append(f"{doc.name}:{line_of(doc.checked, m.start())}: {path} does not exist")
        for m in FILE_RE.finditer(doc.checked):
            if not (ROOT / m.group(1)).is_file():
                out.append(f"{doc.name}:{line_of(doc.checked, m.start())}: {m.group(1)} does not exist")
    return out


GROUP_RE = re.compile(r"(?<![\w.+/-])(" + "|".join(GROUPS) + r")=([A-Za-z0-9_,]+)")
LAUNCHER_RE = re.compile(r"(?<![\w.])hydra/launcher=([A-Za-z0-9_,]+)")


@cache
def launcher_options() -> frozenset[str]:
    """hydra/launcher options: this repository's YAML files and the installed Hydra plugins' configs."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return frozenset(GlobalHydra.instance().config_loader().get_group_options("hydra/launcher"))


def check_group_options(docs) -> list[str]:
    out = []
    for doc in docs:
        for m in GROUP_RE.finditer(doc.checked):
            group = m.group(1)
            for option in filter(None, m.group(2).split(",")):
                if not (CONFIG_DIR / group / f"{option}.yaml").is_file():
                    out.append(f"{doc.name}:{line_of(doc.checked, m.start())}: {group}={option}: there is no "
                               f"configs/{group}/{option}.yaml")
        for m in LAUNCHER_RE.finditer(doc.checked):
            for option in filter(None, m.group(1).split(",")):
                if option not in launcher_options():
                    out.append(f"{doc.name}:{line_of(doc.checked, m.start())}: hydra/launcher={option}: neither "
                               f"configs/hydra/launcher/{option}.yaml nor an installed launcher plugin")
    return out


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip())
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(doc: Doc) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for line in doc.outside.split("\n"):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


LINK_RE = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def check_links(docs) -> list[str]:
    out = []
    by_name = {d.name: d for d in docs}
    for doc in docs:
        for m in LINK_RE.finditer(doc.prose):
            target = m.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            where = f"{doc.name}:{line_of(doc.prose, m.start())}"
            path, _, anchor = target.partition("#")
            file = (ROOT / doc.name).parent / path if path else ROOT / doc.name
            if path and not file.exists():
                out.append(f"{where}: link ({target}): {path} does not exist")
                continue
            if anchor and file.suffix == ".md" and file.resolve().is_relative_to(ROOT.resolve()):
                rel = file.resolve().relative_to(ROOT.resolve()).as_posix()
                linked = by_name.get(rel) or parse_doc(rel, file.read_text(encoding="utf-8"))
                if anchor not in anchors(linked):
                    out.append(f"{where}: link ({target}): {rel} has no heading #{anchor}")
    return out


def check_train_commands(docs) -> list[str]:
    out = []
    for name, line, cmd in all_commands(docs):
        sets = []
        overrides = train_overrides(cmd)
        if overrides is not None:
            sets.append(("", overrides))
        for target, variables in make_invocations(cmd):
            if "ARGS" in variables:
                sets.append((f"make {target} ARGS: ", [a for a in shlex.split(variables["ARGS"]) if not is_placeholder(a)]))
        for label, args in sets:
            problem = compose_problem(args)
            if problem:
                out.append(f"{name}:{line}: `{shlex.join(cmd)}`: {label}{problem}")
    return out


def script_calls(cmd: list[str]) -> list[tuple[str, list[str]]]:
    """(script, arguments) of every script a command runs: itself, or through a make variable (BENCH_ARGS, ...)."""
    found = script_of(cmd)
    calls = [found] if found else []
    for _, variables in make_invocations(cmd):
        calls += [(MAKE_SCRIPT_VARS[v], shlex.split(value)) for v, value in variables.items() if v in MAKE_SCRIPT_VARS]
    return calls


def check_script_commands(docs) -> list[str]:
    out = []
    for name, line, cmd in all_commands(docs):
        calls = script_calls(cmd)
        for program, args in calls:
            out += [f"{name}:{line}: `{shlex.join(cmd)}`: {p}" for p in option_problems(program, args)]
    return out


def section_writers(docs) -> list[tuple[str, int, str, str]]:
    """(file, line, written file, marker) of every command in the docs (outside generated sections) and the
    Makefile that rewrites a generated section."""
    out = []
    for name, line, cmd in all_commands(docs):
        calls = script_calls(cmd)
        for program, args in calls:
            if parser_of(program) is None:
                continue
            written = generated_section_written(program, args)
            if written and written[0] and not is_placeholder(written[0]):
                out.append((name, line, *written))
    return out


def check_generated_sections(docs) -> list[str]:
    out = [p for d in docs for p in d.marker_problems]
    writers = section_writers(docs)
    written = {(f, marker) for _, _, f, marker in writers}
    for doc in docs:
        for marker, start, _ in doc.markers:
            if (doc.name, marker) not in written:
                out.append(f"{doc.name}:{start}: generated section {marker!r} has no command (Makefile or docs) that "
                           f"writes it: `scripts/make_table.py ... --readme {doc.name} --marker {marker}` or "
                           f"`scripts/bench.py ... --readme {doc.name} --marker {marker}`")
    markers_in = {d.name: {m for m, _, _ in d.markers} for d in docs}
    for name, line, file, marker in writers:
        if file not in markers_in:
            target = ROOT / file
            markers_in[file] = {m for m, _, _ in parse_doc(file, target.read_text()).markers} if target.is_file() else set()
        if marker not in markers_in[file]:
            out.append(f"{name}:{line}: writes the generated section {marker!r} of {file}, which has no "
                       f"<!-- cbl:{marker}:start/end --> markers")
    return out


def check_file_map(docs) -> list[str]:
    """docs/development.md's file map names every top-level folder and file, and every module of cbl/ and scripts/."""
    dev = next((d for d in docs if d.name == "docs/development.md"), None)
    if dev is None:
        return []
    block = next(((first, "\n".join(body)) for lang, first, body in dev.blocks if "cbl/" in "\n".join(body)), None)
    if block is None:
        return ["docs/development.md: no file map (a code block listing cbl/)"]
    first, text = block
    ignored = [line.strip().rstrip("/") for line in (ROOT / ".gitignore").read_text().splitlines()
               if line.strip().endswith("/") and not line.startswith(("#", "!"))]  # build/, dist/, wandb/, ...
    names = {f"{p.name}/" for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))
             and not any(fnmatch.fnmatchcase(p.name, pattern) for pattern in ignored)}
    names |= {f for f in (*TOP_LEVEL_FILES, "README.md") if (ROOT / f).is_file()}
    for folder in ("cbl", "scripts"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name != "__init__.py" and "__pycache__" not in path.parts:
                names.add(path.name)
    for path in (ROOT / "cbl").iterdir():
        if path.is_dir() and not path.name.startswith("__") and not path.is_symlink():
            names.add(f"{path.name}/")
    missing = sorted(n for n in names if not re.search(r"(?<![\w.-])" + re.escape(n), text))
    return [f"docs/development.md:{first}: the file map does not name {n}" for n in missing]


def check_readme_file_map(docs) -> list[str]:
    """The README's short file map (a `text` block listing cbl/) starts every line with a path that exists."""
    readme = next((d for d in docs if d.name == "README.md"), None)
    block = next(((first, body) for lang, first, body in readme.blocks
                  if lang == "text" and any(line.startswith("cbl/") for line in body)), None) if readme else None
    if block is None:
        return ["README.md: no file map (a text block listing cbl/)"]
    first, body = block
    return [f"README.md:{first + i}: the file map names {line.split()[0]}, which does not exist"
            for i, line in enumerate(body) if line.strip() and not (ROOT / line.split()[0]).exists()]


CHECKS = [check_make_targets, check_paths, check_group_options, check_links, check_train_commands,
          check_script_commands, check_generated_sections, check_file_map, check_readme_file_map]


# ----------------------------------------------------------------------------- the tests
def test_the_docs_are_the_readme_and_the_pages_under_docs():
    assert DOC_FILES[0] == "README.md" and len(DOC_FILES) > 1
    for doc in real_docs():
        assert doc.blocks or doc.spans, f"{doc.name}: nothing parsed"


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__ for c in CHECKS])
def test_readme_and_docs(check):
    problems = check(real_docs())
    assert not problems, "\n" + "\n".join(problems)


#: check -> (a document with one mistake of its kind, after a heading and a blank line; the line it is on)
SEEDED = {
    "check_make_targets": ("```bash\nmake reproduce-everything\n```\n", 4),
    "check_paths": ("See `cbl/no_such_module.py`.\n", 3),
    "check_group_options": ("Pick `loss=hinge` for a margin loss.\n", 3),
    "check_links": ("See [the guide](no_such_page.md).\n", 3),
    "check_train_commands": ("```bash\npython -m cbl.train loss=focal loss.beta=0.9,1.0\n```\n", 4),
    "check_script_commands": ("```bash\npython scripts/make_table.py --runs outputs/table2 --tabel 2\n```\n", 4),
    "check_generated_sections": ("<!-- cbl:nowhere:start -->\n_Not generated yet._\n<!-- cbl:nowhere:end -->\n", 3),
}
SEEDED_ANCHOR = "See [Table 2](#no-such-heading).\n"


@pytest.mark.parametrize("check", [c for c in CHECKS if c.__name__ in SEEDED], ids=lambda c: c.__name__)
def test_each_check_catches_a_seeded_mistake(check):
    mistake, line = SEEDED[check.__name__]
    problems = check([parse_doc("docs/seeded.md", "# Seeded\n\n" + mistake)])
    assert len(problems) == 1 and problems[0].startswith(f"docs/seeded.md:{line}: "), problems


def test_an_unknown_anchor_and_a_stale_writer_are_caught():
    assert check_links([parse_doc("docs/seeded.md", "# Seeded\n\n" + SEEDED_ANCHOR)]) == [
        "docs/seeded.md:3: link (#no-such-heading): docs/seeded.md has no heading #no-such-heading"]
    stale = "```bash\npython scripts/make_table.py --runs outputs/table2 --table 2 --readme docs/evaluate.md\n```\n"
    problems = [p for p in check_generated_sections([parse_doc("docs/seeded.md", "# Seeded\n\n" + stale)])
                if p.startswith("docs/seeded.md")]
    assert problems == [("docs/seeded.md:4: writes the generated section 'table2' of docs/evaluate.md, which has no "
                         "<!-- cbl:table2:start/end --> markers")], problems


def test_a_readme_file_map_line_naming_a_missing_path_is_caught():
    readme = parse_doc("README.md", "# x\n\n```text\ncbl/losses/      the losses\ncbl/no_such_room/ nothing\n```\n")
    assert check_readme_file_map([readme]) == [
        "README.md:5: the file map names cbl/no_such_room/, which does not exist"]
