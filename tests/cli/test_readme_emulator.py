"""The README's emulator quick start runs as written: its command, then its Python example.

Only the port changes (the README's 8765 becomes a free one), so that the test never collides
with an emulator the developer left running.
"""

from __future__ import annotations

import pathlib
import re
import shlex
import signal
import subprocess
import sys

import httpx

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def _section_blocks(title: str) -> dict[str, str]:
    """The first fenced block of each language in the README's section ``title``."""
    text = README.read_text(encoding="utf-8")
    section = text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    blocks: dict[str, str] = {}
    for lang, body in re.findall(r"```(\w+)\n(.*?)\n```", section, re.DOTALL):
        blocks.setdefault(lang, body)
    return blocks


def test_the_readme_emulator_quick_start_runs() -> None:
    blocks = _section_blocks("Quick start: the emulator")
    [command] = [line for line in blocks["sh"].splitlines() if line.startswith("dingpush ")]
    args = shlex.split(command.replace("--port 8765", "--port 0"))[1:]
    with subprocess.Popen(
        [sys.executable, "-m", "dingpush", *args], stdout=subprocess.PIPE, text=True
    ) as process:
        try:
            assert process.stdout is not None
            url = process.stdout.readline().rsplit(" ", 1)[1].strip()
            code = blocks["python"].replace("http://127.0.0.1:8765", url)
            exec(compile(code, str(README), "exec"), {"__name__": "readme_example"})
            listed = httpx.get(f"{url}/_emulator/messages", params={"robot": "sandbox"}).json()
        finally:
            process.send_signal(signal.SIGINT)  # Ctrl-C, as the user who started it would
            process.wait(timeout=10)
    assert process.returncode == 130  # interrupted, as docs/cli.md says
    texts = [m["payload"]["text"]["content"] for m in listed["messages"]]
    assert texts == ["hello from my laptop"]
