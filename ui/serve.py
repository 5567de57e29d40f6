"""Start the app with the heavy modules already imported: `python -m ui.serve [streamlit run options]`.

The same as `streamlit run app.py [options]`, except that pandas, Plotly, torch and the pages' core modules are
imported (and frozen out of the garbage collector's scans, see ui.warm) before the server takes its first session,
so that the first visitor's first page does not wait for them. Run from the repository root.

It also turns Streamlit's file watcher off unless told otherwise (`--server.fileWatcherType auto`): a served app
does not rerun on saves (runOnSave is off), and the watcher's recursive watch of the repository walks the whole
tree (.venv included) whenever files change there, costing the server CPU time in the middle of clicks.
"""
from __future__ import annotations

import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app.py"


def main(argv: list[str] | None = None) -> int:
    from ui import warm

    warm.warm()
    from streamlit.web import cli

    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a.startswith("--server.fileWatcherType") for a in args):
        args += ["--server.fileWatcherType", "none"]
    sys.argv = ["streamlit", "run", str(APP), *args]
    return cli.main()


if __name__ == "__main__":
    sys.exit(main())
