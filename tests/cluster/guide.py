"""The commands of the cluster guide (cluster/README.md), read from its bash blocks, for the tests to run or parse."""

from __future__ import annotations

import re
import shlex

from tests.conftest import REPO

GUIDE = REPO / "cluster" / "README.md"
REHEARSAL_MARKER = "<!-- rehearsal:"


def bash_blocks(text: str) -> list[tuple[int, str]]:
    """``(offset, body)`` of every fenced bash block."""
    return [(m.start(), m.group(1)) for m in re.finditer(r"```bash\n(.*?)```", text, re.S)]


def commands(block: str) -> list[str]:
    """A block's commands: backslash continuations joined, comments and here-documents dropped."""
    out: list[str] = []
    current = ""
    heredoc_end: str | None = None
    for line in block.splitlines():
        if heredoc_end is not None:
            heredoc_end = None if line.strip() == heredoc_end else heredoc_end
            continue
        if line.lstrip().startswith("#"):
            continue
        line = re.sub(r"\s+#\s.*$", "", line).rstrip()  # a trailing comment (none of the guide's quotes hold one)
        m = re.search(r"<<-?'?(\w+)'?", line)
        if m:
            heredoc_end = m.group(1)
        if line.endswith("\\"):
            current += line[:-1].strip() + " "
            continue
        current += line.strip()
        if current:
            out.append(current)
        current = ""
    return out


def all_commands() -> list[str]:
    return [c for _, block in bash_blocks(GUIDE.read_text()) for c in commands(block)]


def rehearsal_commands() -> list[str]:
    """The block right after the rehearsal marker: the guide's local rehearsal of the job path."""
    text = GUIDE.read_text()
    at = text.index(REHEARSAL_MARKER)
    offset, block = next((o, b) for o, b in bash_blocks(text) if o > at)
    assert text[at:offset].count("\n") <= 1, "the rehearsal block must follow its marker line"
    return commands(block)


def argv(command: str, pwd: str = "$PWD") -> list[str]:
    """A command's words, leading ``VAR=value`` assignments and a trailing ``&`` dropped, ``$PWD`` expanded."""
    words = shlex.split(command.replace("$PWD", pwd))
    while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words.pop(0)
    return words[:-1] if words and words[-1] == "&" else words


def option(words: list[str], name: str) -> str | None:
    """The value of ``name VALUE`` in ``words`` (None if absent)."""
    return words[words.index(name) + 1] if name in words else None
