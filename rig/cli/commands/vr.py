"""`rig textures` (write the texture set as PNGs) and `rig render` (one frame of the corridor to a PNG)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rig.errors import ExitCode


def register(subparsers) -> None:
    p = subparsers.add_parser("textures", help="write the procedural texture set as PNGs")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the PNGs (created)")
    p.add_argument("--px-per-cm", type=float, default=10.0, help="resolution (default: %(default)s)")
    p.add_argument("--length-cm", type=float, default=400.0, help="textured length (default: %(default)s)")
    p.add_argument("--height-cm", type=float, default=20.0, help="wall height (default: %(default)s)")
    p.set_defaults(func=cmd_textures)

    p = subparsers.add_parser("render", help="render what the mouse sees at one position to a PNG")
    p.add_argument("protocol", help="protocol YAML file (or the name of a shipped protocol)")
    p.add_argument("--corridor", required=True, help="corridor name")
    p.add_argument(
        "--position", required=True, type=float, metavar="CM", help="position in the corridor (cm)"
    )
    p.add_argument("-o", "--out", required=True, metavar="FILE.png")
    p.add_argument(
        "--config", help="rig config: its display layout and view are used when its display is a gl type"
    )
    p.add_argument("--ahead", nargs="*", default=(), metavar="NAME", help="corridors drawn ahead (else grey)")
    p.add_argument("--texture-cache", metavar="DIR", help="texture cache folder (default: the config's)")
    p.set_defaults(func=cmd_render)


def cmd_textures(args: argparse.Namespace) -> int:
    from rig.vr.textures import write_textures

    for name in ("px_per_cm", "length_cm", "height_cm"):
        value = getattr(args, name)
        if not value > 0:
            print(f"rig textures: --{name.replace('_', '-')} must be > 0, got {value}", file=sys.stderr)
            return ExitCode.BAD_INPUT
    try:
        written = write_textures(args.out, args.px_per_cm, args.length_cm, args.height_cm)
    except OSError as e:
        print(f"rig textures: cannot write to {args.out}: {e}", file=sys.stderr)
        return ExitCode.FAULT
    for p in written:
        print(p)
    return ExitCode.OK


def cmd_render(args: argparse.Namespace) -> int:
    from rig.loading import find_file, load_config, load_protocol
    from rig.vr.display_driver import GL_DISPLAY_TYPES, display_params
    from rig.vr.params import DisplayParams

    protocol = load_protocol(find_file(args.protocol, "protocols"))
    config = load_config(find_file(args.config, "config")) if args.config else None
    params = DisplayParams()
    if config is not None and config.drivers["display"].type in GL_DISPLAY_TYPES:
        params = display_params(config.driver_params("display"))  # type: ignore[arg-type]
    if args.texture_cache:
        params = params.model_copy(
            update={"textures": params.textures.model_copy(update={"cache_dir": args.texture_cache})}
        )
    from rig.vr.preview import render_preview

    try:
        out = render_preview(
            protocol,
            args.corridor,
            args.position,
            None,
            Path(args.out),
            params=params,
            ahead=tuple(args.ahead),
        )
    except ValueError as e:
        print(f"rig render: {e}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except RuntimeError as e:  # no GL context could be made
        print(f"rig render: {e}", file=sys.stderr)
        return ExitCode.FAULT
    print(out)
    return ExitCode.OK
