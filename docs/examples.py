"""The README's example outputs, produced by running drumcat on the demo archive (as Datasette's CLI
reference is produced by cog), so the documentation cannot drift from the program.

    python docs/examples.py          # rewrite every marked block in README.md
    python docs/examples.py --check  # exit 1 naming the stale blocks (tests/test_docs.py runs this)

A block is marked by a comment line `<!-- example: NAME -->` right before a fenced block; EXAMPLES
below says which commands it shows. All examples run in order in one fresh folder, like a user would.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
# The examples run in this folder (emptied first), so the paths they print are real and the tables they
# draw stay aligned.
WORKDIR = Path("/tmp/drumcat-demo")

# name -> commands, as typed (a trailing `# comment` is shown, not run). Run in this order.
EXAMPLES: dict[str, list[str]] = {
    "scan": ["scan archive", "scan archive   # again: nothing is read"],
    "infer": ["infer"],
    "stats": ["stats"],
    "views": ["views"],
    "rules": ["rules", "rules set threshold 0.4", "rules", "rules set threshold 0.5"],
    "materialize": ["materialize --out organized",
                    "materialize --out by-class --view organized_full --threshold 0.3 --mode copy   # another tree"],
    "query": ["query \"SELECT folder, count(*) AS n FROM routed GROUP BY folder ORDER BY folder\"",
              "query --csv \"SELECT label, round(confidence, 3) AS confidence, name FROM organized_full "
              "JOIN present_files ON path = src ORDER BY name LIMIT 3\""],
    "model": ["model list"],
    "override": ["override \"archive/Free Stuff 2019/smp_0002.aiff\" Clap --note \"909 clap\"",
                 "overrides export"],
    "similar": ["similar \"archive/VendorA_Mega_Pack/smp_0000.wav\" -k 3"],
    "duplicates": ["duplicates", "duplicates   # again: nothing new to compare"],
    "kit": ["kit --out kits/demo-kit"],
}
_MARKER = re.compile(r"^<!-- example: ([a-z_]+) -->\n```\n.*?^```\n", re.S | re.M)


def run_examples() -> dict[str, str]:
    """Every example's text: each command after `$ drumcat`, then what it printed."""
    sys.path.insert(0, str(REPO))
    from drumcat.commands.demo import build_demo_archive

    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", "TERM": "dumb"}
    texts = {}
    work = WORKDIR
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        build_demo_archive(work / "archive")
        for name, commands in EXAMPLES.items():
            lines = []
            for command in commands:
                typed = command.split("   #")[0]
                result = subprocess.run([sys.executable, "-m", "drumcat.cli", *shlex.split(typed)], cwd=work,
                                        capture_output=True, text=True, env=env, timeout=300)
                if result.returncode != 0:
                    raise SystemExit(f"example {name}: `drumcat {typed}` failed: {result.stderr.strip()}")
                lines.append(f"$ drumcat {command}")
                lines.extend(line.rstrip() for line in result.stdout.splitlines())
            texts[name] = "\n".join(lines) + "\n"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return texts


def rendered(readme: str, texts: dict[str, str]) -> str:
    def block(match: re.Match) -> str:
        name = match.group(1)
        if name not in texts:
            raise SystemExit(f"README.md: no example named {name!r} in docs/examples.py")
        return f"<!-- example: {name} -->\n```\n{texts[name]}```\n"

    return _MARKER.sub(block, readme)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is stale; change nothing")
    args = parser.parse_args()
    current = README.read_text(encoding="utf-8")
    fresh = rendered(current, run_examples())
    if args.check:
        if fresh != current:
            diff = difflib.unified_diff(current.splitlines(), fresh.splitlines(), "README.md", "fresh", lineterm="")
            print("\n".join(list(diff)[:80]))
            raise SystemExit("README.md examples are stale: run `python docs/examples.py`")
        return
    README.write_text(fresh, encoding="utf-8")


if __name__ == "__main__":
    main()
