"""``python -m bench [--quick] [--only NAME] [--output PATH]``: run the scenarios, write the doc."""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import pathlib
import platform
import sys
import time

from ._emulator import EmulatorProcess
from ._registry import Context, Section, scenarios

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
PACKAGES = (
    "dingpush",
    "httpx",
    "DingtalkChatbot",
    "apprise",
    "requests",
    "uvicorn",
    "starlette",
    "uvloop",
    "httptools",
)


def machine_notes() -> list[str]:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} (not installed)")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return [
        f"CPU: {cpu}, {os.cpu_count()} cores; load average at start {load}",
        f"Python {platform.python_version()} ({platform.python_implementation()}) on "
        f"{platform.system()} {platform.release()}",
        "Versions: " + ", ".join(versions),
    ]


def render(sections: list[Section], notes: list[str], quick: bool, seconds: float) -> str:
    today = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    mode = "quick mode (smaller counts, one run each)" if quick else "full mode"
    head = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench`); do not edit by hand. The emulator runs in "
        "its own OS process and every client in a worker process of its own, so no two share a "
        "GIL. Each scenario runs dingpush and its peers against the same emulator process in "
        "the same run. Benchmarks report numbers; the tests assert behaviour and never time.",
        "",
        f"Run on {today}, {mode}, in {seconds:.0f} s. On a small or shared machine the "
        "figures move from run to run: compare the rows of one run, not runs of different days.",
        "",
        *[f"- {note}" for note in notes],
        "",
    ]
    return "\n".join(head) + "\n" + "\n".join(s.markdown() for s in sections)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts, one run each")
    parser.add_argument("--only", action="append", default=[], help="run only this scenario")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--output",
        type=pathlib.Path,
        help=f"where to write the report (default {DOC.relative_to(DOC.parent.parent)}; "
        "--quick prints it unless --output is given)",
    )
    args = parser.parse_args(argv)
    chosen = [s for s in scenarios() if not args.only or s.name in args.only]
    if args.list:
        print("\n".join(s.name for s in chosen))
        return 0
    unknown = set(args.only) - {s.name for s in scenarios()}
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    notes = machine_notes()
    started = time.perf_counter()
    sections = []
    with EmulatorProcess() as emulator:
        context = Context(emulator=emulator, quick=args.quick)
        for item in chosen:
            print(f"bench: {item.name} …", file=sys.stderr, flush=True)
            sections.append(item.run(context))
    report = render(sections, notes, args.quick, time.perf_counter() - started)
    output = args.output or (None if args.quick else DOC)
    if output is None:
        print(report)
    else:
        output.write_text(report, encoding="utf-8")
        print(f"bench: wrote {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
