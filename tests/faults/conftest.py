"""Fault tests: a private RabbitMQ node (tests/rabbit.py ``PrivateNode``) the tests stop, kill and
start again at will, never the machine's shared broker on 5672."""

from __future__ import annotations

import logging

import pytest
import rabbit

# pika logs every refused connection at ERROR with a traceback: while a node starts, or is down on
# purpose, that is hundreds of lines of noise in a failure's captured log (the hub's own warnings stay)
logging.getLogger("pika").setLevel(logging.CRITICAL)


@pytest.fixture(scope="session")
def private_node():
    """One private node for the session, shut down cleanly at the end (no beam.smp or epmd of
    ours left behind); a test that stops or kills it need not start it again (``node`` does)."""
    reason = rabbit.PrivateNode.unavailable()
    if reason:  # CI runs as root with Debian's rabbitmq-server: a missing piece is a failure, not a skip
        pytest.fail(f"the fault tests need a private RabbitMQ node: {reason}")
    node = rabbit.PrivateNode()
    try:
        node.start()
        yield node
    finally:
        node.close()
    left = node.leftovers()
    assert not left, f"processes of the private RabbitMQ node left behind: {left}"


@pytest.fixture
def node(private_node):
    """The private node, running (started again if an earlier test left it down)."""
    private_node.start()
    return private_node
