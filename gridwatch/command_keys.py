"""Where the command keys come from (the I/O side of :mod:`gridwatch.signing`).

In order: ``GRIDWATCH_COMMAND_KEYS`` (``id:secret,id2:secret2``), else the file named
by ``GRIDWATCH_COMMAND_KEY_FILE`` (the same entries, one per line), else the local
stack's own key, made once under the stack's home (``command-keys``, mode 600) so the
demo and the tests work out of the box: every process with the same home shares it. A
deployment sets one of the two variables on the gateway, the workers and any host that
runs the duty-room CLI. The secrets are never printed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from .schemas.errors import ConfigError
from .settings import Settings
from .signing import Keyring

LOCAL_FILE = "command-keys"


def local_key_file(home: Path) -> Path:
    """The local stack's key file, made on first use (atomically: a worker and a gateway
    starting together end up with the same key)."""
    path = Path(home) / LOCAL_FILE
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = f"local-{secrets.token_hex(4)}:{secrets.token_urlsafe(32)}\n"
    tmp = path.with_name(f".{LOCAL_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write("# gridwatch command signing key of this local stack (key_id:secret)\n")
            fh.write(entry)
        with contextlib.suppress(FileExistsError):  # another process made it first
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_key_file(path: Path) -> Keyring:
    """The keys of a key file.

    Raises:
        ConfigError: the file cannot be read or an entry is malformed (named by
            position, never by its secret).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the command key file {path}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    return Keyring.parse(text, source=str(path))


def keyring(settings: Settings) -> Keyring:
    """The command keys of this process (see the module docstring).

    Raises:
        ConfigError: both variables are set, or the keys are malformed.
    """
    if settings.command_keys and settings.command_key_file:
        raise ConfigError("set GRIDWATCH_COMMAND_KEYS or GRIDWATCH_COMMAND_KEY_FILE, not both")
    if settings.command_keys:
        return Keyring.parse(settings.command_keys)
    if settings.command_key_file:
        return read_key_file(settings.command_key_file)
    return read_key_file(local_key_file(settings.home))
