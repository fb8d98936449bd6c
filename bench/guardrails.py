"""All guardrail figures in one run: PII (bench/guardrails_pii.py), injection (bench/guardrails_injection.py),
then the answer checks' added time (bench/guardrails_output.py).

    python bench/guardrails.py

Each part prints its own table and writes its JSON under bench/results/; see docs/benchmarks.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    status = 0
    for part in ("guardrails_pii.py", "guardrails_injection.py", "guardrails_output.py"):
        print(f"\n=== {part}", flush=True)
        status |= subprocess.call([sys.executable, str(HERE / part)])
    return status


if __name__ == "__main__":
    sys.exit(main())
