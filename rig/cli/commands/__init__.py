"""`rig` subcommands beyond run/validate/info, one module each.

Each module defines `register(subparsers) -> None`, adding its parser with `set_defaults(func=...)`
where func(args) returns the exit code. Modules import heavy dependencies inside func, so that
`rig --help` stays fast and an optional extra that is not installed only breaks its own command.
"""
