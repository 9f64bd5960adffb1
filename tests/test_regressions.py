"""Regression tests for defects that fuzzing and the differential property
tests found: each one failed before its fix.  Defects about the stdlib's
exceptions and messages are rows of test_conformance.py instead."""

from __future__ import annotations

import socket
from types import ModuleType

import pytest


def test_batch_send_on_closed_socket_reports_the_address_error(impl: ModuleType) -> None:
    # the pure twin used to turn every OSError of a closed socket into EBADF,
    # hiding the resolver's error that the compiled one (and the stdlib) raise
    sock = impl.DatagramSocket(socket.AF_INET)
    sock.close()
    with pytest.raises(socket.gaierror):
        sock.send_many([b"x"], ("::1", 9))
    with pytest.raises(socket.gaierror):
        sock.sendto_many([(b"x", ("::1", 9))])
