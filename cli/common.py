"""What every command group shares: one-line errors, the sub-app factory, and printing aligned fields."""

from __future__ import annotations

import errno
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from typer.core import TyperGroup
from typer.exceptions import TyperException

from inkloop.errors import InkloopError, first_line
from inkloop.settings import Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

_STOP_S = 10.0  # how long a server in the foreground gets to exit after Ctrl-C or SIGTERM before it is killed


class OneLineErrors(TyperGroup):
    """Turn exceptions from any command into `inkloop: error: ...` and exit code 1; a usage error (an unknown
    option, a value of the wrong type or out of range) into one such line too, with exit code 2 (the convention for
    usage errors) and where the help is."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except UsageError as exc:  # the root's own options: inkloop --bogus
            _usage_error(exc)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except NoArgsIsHelpError:  # `inkloop models` alone prints the group's help
            raise
        except UsageError as exc:
            _usage_error(exc)
        except (typer.Exit, typer.Abort, TyperException):
            raise
        except Exception as exc:
            if ctx.find_root().params.get("debug"):
                raise
            typer.echo(f"inkloop: error: {one_line(exc)}", err=True)
            raise typer.Exit(1) from None


def _usage_error(exc: UsageError) -> NoReturn:
    command = exc.ctx.command_path if exc.ctx is not None else "inkloop"
    message = " ".join(exc.format_message().split())
    typer.echo(f"inkloop: error: {message} (see {command} --help)", err=True)
    raise typer.Exit(exc.exit_code)


def one_line(exc: BaseException) -> str:
    """An error as the user reads it: inkloop's own message, or the type and first line of anything else."""
    if isinstance(exc, InkloopError):
        return str(exc)
    return f"{type(exc).__name__}: {first_line(exc)} (rerun with --debug for the traceback)"


@contextmanager
def database(*, write: bool = True) -> Iterator[tuple[Settings, Session]]:
    """The settings, and one transaction on the ready database (committed when the block ends); imported lazily,
    so a command checks its arguments before SQLAlchemy loads."""
    from db.ready import ready_session

    settings = load_settings()
    with ready_session(settings, write=write) as session:
        yield settings, session


def group(help: str) -> typer.Typer:
    """A command group (`inkloop models ...`) whose errors are one line, like the root's."""
    return typer.Typer(cls=OneLineErrors, help=help, no_args_is_help=True)


def print_fields(fields: dict[str, str]) -> None:
    """`key  value` lines with the values aligned."""
    width = max(len(k) for k in fields)
    for key, value in fields.items():
        typer.echo(f"{key.ljust(width)}  {value}")


def breakdown(counts: dict[str, int]) -> str:
    """ "5 (3 valid, 2 quarantined)" from {"valid": 3, "quarantined": 2, "pending": 0}."""
    total = sum(counts.values())
    parts = ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in counts.items() if n)
    return f"{total}" + (f" ({parts})" if parts else "")


def choice(enum_cls: Any, value: str, option: str) -> Any:
    """`value` as a member of `enum_cls`, or an error listing the allowed values of `option`."""
    try:
        return enum_cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum_cls)
        raise InkloopError(f"{option} must be one of {allowed}, not {value!r}") from None


def require_free_port(host: str, port: int) -> None:
    """Fail now, in one line, when something already listens on host:port (rather than after a server started
    loading a model and announced itself)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = "is already in use" if exc.errno == errno.EADDRINUSE else f"cannot be used ({exc.strerror})"
            raise InkloopError(f"port {port} on {host} {reason}; choose another with --port") from None


def foreground(command: list[str], env: dict[str, str] | None = None) -> tuple[int, bool]:
    """Run `command` until it exits, Ctrl-C is pressed or this process gets SIGTERM; (its exit code, whether it was
    stopped by Ctrl-C or SIGTERM rather than exiting on its own).

    Ctrl-C reaches the child too (the terminal signals the whole foreground process group); SIGTERM, sent to this
    process alone, is passed on, so stopping `inkloop tensorboard` or `inkloop drift ui` never leaves its server
    behind."""
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, env=env)
    stopped = False

    def pass_on(signum: int, _frame: Any) -> None:
        nonlocal stopped
        stopped = True
        process.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, pass_on)
    try:
        try:
            return process.wait(), stopped
        except KeyboardInterrupt:
            try:
                return process.wait(timeout=_STOP_S), True
            except subprocess.TimeoutExpired:
                process.kill()
                return process.wait(), True
    finally:
        signal.signal(signal.SIGTERM, previous)
        if process.poll() is None:  # a second Ctrl-C while waiting for it to stop
            process.kill()
            process.wait()
