"""Connecting to a dask.distributed cluster given a scheduler address typed by the user.

``search run`` and ``monitor run`` both take ``--scheduler ADDR``. :func:`connect` opens the client
and turns what distributed raises for an address it cannot parse (``ValueError``) or a scheduler it
cannot reach (``OSError``, including the connect timeout) into one :class:`InputError` that says how
to fix it, so neither command ends in a traceback from inside distributed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["LOCAL_SCHEDULERS", "connect"]

#: Names that select dask's local schedulers rather than a cluster address.
LOCAL_SCHEDULERS = ("threads", "sync", "synchronous", "processes")

_HOW = "or leave --scheduler out to use local threads"


def connect(address: str, *, timeout: str = "10s", set_as_default: bool = True) -> Client:
    """A ``distributed.Client`` on the scheduler at ``address`` (``tcp://host:port``).

    Raises :class:`InputError` for an address that is not one, or a scheduler that does not answer
    within ``timeout``. ``set_as_default`` as for ``Client`` (dask collections computed while the
    client is open then run on the cluster).
    """
    from distributed import Client
    from distributed.comm.addressing import get_address_host_port

    address = address.strip()
    if not address:
        raise InputError(f"--scheduler is empty; give tcp://host:port {_HOW}")
    try:
        # Checked before a Client exists: a Client that fails on the address leaves its IO loop
        # in a state where the next Client in the same process can hang on connecting.
        get_address_host_port(address)
        return Client(address, timeout=timeout, set_as_default=set_as_default)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError) as exc:  # an address distributed cannot parse
        raise InputError(
            f"{address!r} is not a dask scheduler address ({exc}); give tcp://host:port, as "
            f"printed by `dask scheduler`, {_HOW}"
        ) from exc
    except OSError as exc:  # refused, unknown host, or no answer within the timeout
        raise InputError(
            f"cannot reach the dask scheduler at {address}: {exc or type(exc).__name__}; start one "
            f"with `dask scheduler` (and `dask worker ADDRESS`) {_HOW}"
        ) from exc
