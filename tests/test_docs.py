"""The docs cover what the code has: every chat command, every setting of `.env.example` and
every `crmbot` command (with its options) is documented, and the README stays a short front
door whose first two code blocks are the install-and-demo and install-and-test commands
(CI runs the second one). Each missing item is its own failure, named in the test id.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer.main

from crmbot.chat.registry import load_commands
from crmbot.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
ENV_EXAMPLE = ROOT / ".env.example"
COMMANDS_PAGE = DOCS / "commands.md"
SETTINGS_PAGE = DOCS / "operations.md"
CLI_PAGE = DOCS / "cli.md"

README_MAX_LINES = 300

FENCE = re.compile(r"^\s*```")
HEADING = re.compile(r"^(#{1,6})\s+(.*)$")


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def sections(text: str) -> list[tuple[int, str, str]]:
    """(level, heading, body) for every Markdown heading outside code blocks; the body runs
    to the next heading of the same or a higher level."""
    found: list[tuple[int, str, int]] = []
    lines = text.splitlines()
    in_fence = False
    for number, line in enumerate(lines):
        if FENCE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else HEADING.match(line)
        if match:
            found.append((len(match.group(1)), match.group(2), number))
    result = []
    for index, (level, heading, start) in enumerate(found):
        end = next((n for lvl, _, n in found[index + 1 :] if lvl <= level), len(lines))
        result.append((level, heading, "\n".join(lines[start + 1 : end])))
    return result


def section_named(text: str, pattern: re.Pattern[str]) -> str | None:
    """The heading and body of the first section whose heading matches `pattern`."""
    for _level, heading, body in sections(text):
        if pattern.search(heading):
            return heading + "\n" + body
    return None


def fenced_blocks(text: str) -> list[str]:
    """The contents of the fenced code blocks, in order (as `.ci/run` counts fences)."""
    blocks: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if FENCE.match(line):
            if current is None:
                current = []
            else:
                blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


# --- (a) chat commands -------------------------------------------------------------------

CHAT_COMMANDS = load_commands()


def command_heading(name: str) -> re.Pattern[str]:
    # `/crm at-risk [N] ...` or `/crm model`, but not `/crm at-risk-digest`.
    return re.compile(rf"`/crm {re.escape(name)}(?=[\s`])")


@pytest.mark.parametrize("name", sorted(CHAT_COMMANDS))
def test_every_chat_command_has_a_section(name: str) -> None:
    assert section_named(read(COMMANDS_PAGE), command_heading(name)), (
        f"the chat command {name!r} (commands/) has no section in docs/commands.md: "
        f"add a heading such as ## `/crm {CHAT_COMMANDS[name].usage}`"
    )


@pytest.mark.parametrize("name", sorted(CHAT_COMMANDS))
def test_every_chat_command_usage_is_in_the_docs(name: str) -> None:
    usage = CHAT_COMMANDS[name].usage
    assert f"/crm {usage}" in read(COMMANDS_PAGE), (
        f"docs/commands.md does not show the usage of {name!r} as the code has it: `/crm {usage}`"
    )


# --- (b) settings ------------------------------------------------------------------------

# `NAME=value`, or `# NAME=value` for a setting shown commented out.
ENV_LINE = re.compile(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=", re.MULTILINE)
SETTINGS = sorted(set(ENV_LINE.findall(read(ENV_EXAMPLE))))


def test_env_example_lists_settings() -> None:
    # Guards the parametrisation below: an unreadable .env.example must not pass blind.
    assert "DATABASE_URL" in SETTINGS and len(SETTINGS) >= 10, SETTINGS


@pytest.mark.parametrize("setting", SETTINGS)
def test_every_setting_is_documented(setting: str) -> None:
    configuration = section_named(read(SETTINGS_PAGE), re.compile(r"^Configuration$"))
    assert configuration is not None, "docs/operations.md has no '## Configuration' section"
    assert f"`{setting}`" in configuration, (
        f"{setting} is in .env.example but not in the Configuration section of "
        "docs/operations.md: add a row for it"
    )


# --- (c) the command line ----------------------------------------------------------------


def cli_commands() -> dict[str, Any]:
    """Every runnable `crmbot` command by its full name, e.g. 'crmbot model show'."""
    found: dict[str, Any] = {}

    def walk(command: Any, path: str) -> None:
        children = getattr(command, "commands", None)
        if children:
            for name, child in children.items():
                walk(child, f"{path} {name}")
        else:
            found[path] = command

    walk(typer.main.get_command(app), "crmbot")
    return dict(sorted(found.items()))


CLI_COMMANDS = cli_commands()
CLI_OPTIONS = [
    (path, [name for name in param.opts + param.secondary_opts if name.startswith("--")])
    for path, command in CLI_COMMANDS.items()
    for param in command.params
    if param.param_type_name == "option"
]


def cli_heading(path: str) -> re.Pattern[str]:
    return re.compile(rf"`{re.escape(path)}(?=[\s`])")


def test_the_cli_is_found() -> None:
    assert {"crmbot run", "crmbot import", "crmbot model show"} <= set(CLI_COMMANDS)


@pytest.mark.parametrize("path", list(CLI_COMMANDS))
def test_every_cli_command_has_a_section(path: str) -> None:
    assert section_named(read(CLI_PAGE), cli_heading(path)), (
        f"`{path}` has no section in docs/cli.md: add a heading such as ### `{path}`"
    )


@pytest.mark.parametrize(
    ("path", "names"),
    [pytest.param(path, names, id=f"{path} {names[0]}") for path, names in CLI_OPTIONS],
)
def test_every_cli_option_is_documented(path: str, names: list[str]) -> None:
    section = section_named(read(CLI_PAGE), cli_heading(path))
    if section is None:
        pytest.skip(f"`{path}` has no section (its own failure)")
    assert any(name in section for name in names), (
        f"the option {' / '.join(names)} of `{path}` is not in its section of docs/cli.md"
    )


# --- (d) the README ----------------------------------------------------------------------


def readme_problems() -> dict[str, str | None]:
    text = read(README)
    blocks = fenced_blocks(text)
    first = blocks[0] if blocks else ""
    second = blocks[1] if len(blocks) > 1 else ""
    lines = len(text.splitlines())
    return {
        "title": None if text.startswith("# crmbot\n") else "README.md must start with '# crmbot'",
        "length": None
        if lines <= README_MAX_LINES
        else f"README.md has {lines} lines; keep it to {README_MAX_LINES} and move the rest "
        "into docs/",
        "demo block": None
        if "pip install -e ." in first and "crmbot demo" in first
        else f"README.md's first code block must install crmbot and run the demo; it is {first!r}",
        "test block": None
        if 'pip install -e ".[dev]"' in second and "pytest" in second
        else "README.md's second code block (CI runs it) must install the test dependencies "
        f"and run the tests; it is {second!r}",
    }


@pytest.mark.parametrize("check", ["title", "length", "demo block", "test block"])
def test_readme_is_a_short_front_door(check: str) -> None:
    problem = readme_problems()[check]
    assert problem is None, problem
