"""`rig gui [--config FILE] [--data DIR] [--lock-dir DIR] [--replay SESSION]`: the Qt control app."""

from __future__ import annotations

import argparse
from pathlib import Path

from rig.errors import ExitCode


def register(subparsers) -> None:
    p = subparsers.add_parser("gui", help="the control app: start, watch and steer sessions; replay them")
    p.add_argument("--config", type=Path, help="rig config YAML (default: config/sim.yaml)")
    p.add_argument("--data", type=Path, help="data directory (default: the config's data_dir)")
    p.add_argument("--lock-dir", type=Path,
                   help="where rig locks live (default: $RIG_LOCK_DIR, else $XDG_RUNTIME_DIR/corridor-rig, "
                        "else a private corridor-rig-UID folder in the temp dir)")
    p.add_argument("--replay", type=Path, metavar="SESSION", help="open a session folder in the replay viewer")
    p.set_defaults(func=cmd_gui)


def cmd_gui(args: argparse.Namespace) -> int:
    from rig.loading import default_config_path, find_file

    try:
        from gui.app import run
    except ImportError as e:
        print(f"rig gui: the app needs the gui extra (pip install 'corridor-rig[gui]'): {e}")
        return ExitCode.BAD_INPUT
    config = find_file(str(args.config), "config") if args.config else default_config_path()
    return run(config, args.data, args.lock_dir, args.replay)
