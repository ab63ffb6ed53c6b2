"""``gridwatch user add|link|list|remove``: manage cockpit users.

Only the one-time login link is ever printed (on the public URL,
``GRIDWATCH_PUBLIC_URL``); the stored form of every secret is a keyed hash. ``remove``
also ends the user's sessions and unused links.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from . import settings as settings_mod
from .schemas.commands import PERSON_ROLES
from .schemas.errors import GridwatchError


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def cmd_user(args: argparse.Namespace, s: settings_mod.Settings) -> int:
    """Run one ``user`` action.

    Raises:
        GridwatchError: a bad user definition or an unknown user.
    """
    from . import store
    from .ws import users
    from .ws.auth import AuthError, User

    r = store.connect(s)
    try:
        if args.action == "list":
            rows: list[dict[str, Any]] = [u.to_dict() for u in users.list_users(r)]
            if args.json:
                sys.stdout.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")
            for row in [] if args.json else rows:
                extra = ",".join(row["grids"] or row["stations"])
                print(f"{row['name']:<20} {row['role']:<16} {extra}")
            return 0
        if not args.name:
            raise GridwatchError(f"user {args.action} needs a NAME")
        if args.action == "remove":
            if not users.remove_user(r, args.name):
                raise GridwatchError(f"no user {args.name!r}")
            print(f"removed {args.name}")
            return 0
        if args.action == "add":
            if not args.role:
                raise GridwatchError("user add needs --role")
            try:
                user = User(args.name, args.role, _split(args.grids), _split(args.stations))
            except ValueError as exc:
                raise GridwatchError(str(exc)) from None
            token = users.add_user(r, user)
        else:
            try:
                token = users.new_login(r, args.name)
            except AuthError as exc:
                raise GridwatchError(str(exc)) from None
        print(users.login_link(s, token))
        return 0
    finally:
        r.close()


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``user`` sub-command on the CLI's sub-parsers."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "user", help="add cockpit users, print one-time login links, list users")
    p.add_argument("action", choices=["add", "link", "list", "remove"],
                   help="add: new user (or new rights) + link; link: a new link for a user; "
                   "remove: the user, its sessions and links")
    p.add_argument("name", nargs="?")
    p.add_argument("--role", choices=PERSON_ROLES)
    p.add_argument("--grids", help="comma-separated grid ids (grid workers)")
    p.add_argument("--stations", help="comma-separated station ids (station managers)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_user)
    return p
