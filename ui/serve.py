"""Start the app with the heavy modules already imported: `python -m ui.serve [streamlit run options]`.

The same as `streamlit run app.py [options]`, except that pandas, Plotly, torch and the pages' core modules are
imported (and frozen out of the garbage collector's scans, see ui.warm) before the server takes its first session,
so that the first visitor's first page does not wait for them. Run from the repository root.
"""
from __future__ import annotations

import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app.py"


def main(argv: list[str] | None = None) -> int:
    from ui import warm

    warm.warm()
    from streamlit.web import cli

    sys.argv = ["streamlit", "run", str(APP), *(sys.argv[1:] if argv is None else argv)]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
