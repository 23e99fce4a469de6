"""`rig mesoscope-sim ARGS...` (the mesoscope emulator) and `rig keys --dir DIR --name NAME` (CURVE keys)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    # The emulator parses its own arguments (and --help): '+' as the only prefix makes this subparser
    # pass every '-' option through untouched instead of rejecting it.
    p = subparsers.add_parser(
        "mesoscope-sim", add_help=False, prefix_chars="+",
        help="emulate ScanImage + the mesoscope bridge (see `rig mesoscope-sim --help`)",
    )
    p.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_mesoscope_sim)

    p = subparsers.add_parser("keys", help="generate a CURVE key pair for a remote mesoscope link")
    p.add_argument("--dir", required=True, help="directory to write NAME.key and NAME.key_secret into")
    p.add_argument("--name", required=True, help="key pair name, e.g. the rig's or the bridge's host name")
    p.set_defaults(func=cmd_keys)


def cmd_mesoscope_sim(args: argparse.Namespace) -> int:
    from rig.mesoscope.emulator import main

    return main(list(args.args))


def cmd_keys(args: argparse.Namespace) -> int:
    from rig.mesoscope.keys import generate_keypair

    try:
        public, secret = generate_keypair(args.dir, args.name)
    except (ValueError, FileExistsError) as e:
        print(f"rig keys: {e}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as e:
        print(f"rig keys: {e}", file=sys.stderr)
        return 1
    print(f"public key (give to the other side): {public}")
    print(f"secret key (keep on this machine, mode 0600): {secret}")
    return 0
