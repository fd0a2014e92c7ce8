"""Write the README's table of environment variables from the command line itself.

Run it after adding an option: ``python scripts/env_table.py`` (``--check`` only says
whether the README is up to date; the test suite runs that check).
"""

from __future__ import annotations

import sys
from pathlib import Path

from aibridge_cli.cli import environment_variables

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN = "<!-- environment variables: scripts/env_table.py writes this table -->"
END = "<!-- end of environment variables -->"


def table() -> str:
    rows = ["| option | environment variable (one per command that takes it) |", "|---|---|"]
    for option, variables in environment_variables().items():
        rows.append(f"| `{option}` | {', '.join(f'`{v}`' for v in variables)} |")
    return "\n".join(rows)


def updated(readme: str) -> str:
    before, rest = readme.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    return f"{before}{BEGIN}\n{table()}\n{END}{after}"


def main() -> int:
    readme = README.read_text(encoding="utf-8")
    new = updated(readme)
    if "--check" in sys.argv[1:]:
        if new != readme:
            print(
                "README.md: the environment variable table is out of date; run "
                "python scripts/env_table.py",
                file=sys.stderr,
            )
            return 1
        return 0
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
