"""``experimenthub`` command line: ``demo`` (the main job on embedded defaults)."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="experimenthub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train both experiment types on shipped data; print where "
                                            "the figures and MLflow runs are")
    demo.add_argument("--home", help="data directory (default: $EXPERIMENTHUB_HOME or ./.experimenthub)")
    args = parser.parse_args(argv)

    if args.command == "demo":
        from . import demo as demo_module
        from .faces import ExperimentHub

        with ExperimentHub(home=args.home) as hub:
            demo_module.run(hub)
    return 0


if __name__ == "__main__":
    sys.exit(main())
