"""The seed's calculator over Twisted Perspective Broker, for `rpc-bench --twisted`.

    python3 pb_calculator.py server PORT      serve the calculator on 127.0.0.1:PORT (0: a
                                              free port); prints `listening on <port>` once
                                              it listens
    python3 pb_calculator.py client PORT N    call it: N sequential calls (median round trip),
                                              then N calls with 64 in flight (calls per
                                              second), each after N/10 calls of warm-up; prints
                                              `twisted version=... python=... seq_us=...
                                              inflight64=...`

Both ends turn TCP_NODELAY on, as pbrs does. The call is `callRemote("calculate", i, i)`,
answered `(i + i, worker_id)`, as in pbrs's examples/examples/calculator.rs.
"""

import platform
import statistics
import sys
import time

import twisted
from twisted.internet import defer, reactor, task
from twisted.spread import pb

IN_FLIGHT = 64
WORKER_ID = 1


class NoDelayBroker(pb.Broker):
    """PB's protocol, with TCP_NODELAY on (as pbrs sets it): used by both ends."""

    def connectionMade(self):
        self.transport.setTcpNoDelay(True)
        super().connectionMade()


class Calculator(pb.Root):
    """A calculator worker: Twisted PB's classic root object."""

    def __init__(self, worker_id):
        self.worker_id = worker_id

    def remote_calculate(self, a, b):
        """Adds `a` and `b`; returns the sum and the id of the worker that did it."""
        return (a + b, self.worker_id)


def serve(port):
    """Serves the calculator on 127.0.0.1:`port` until killed."""
    factory = pb.PBServerFactory(Calculator(WORKER_ID))
    factory.protocol = NoDelayBroker
    listening = reactor.listenTCP(port, factory, interface="127.0.0.1")
    print(f"listening on {listening.getHost().port}", flush=True)
    reactor.run()


def check(answer, i):
    """Fails unless `answer` is what calculate(i, i) returns."""
    if tuple(answer) != (2 * i, WORKER_ID):
        raise ValueError(f"calculate({i}, {i}) answered {answer!r}")


@defer.inlineCallbacks
def sequential(root, calls):
    """Makes `calls` calls one after another; returns their round trips in µs."""
    round_trips = []
    for i in range(calls):
        start = time.perf_counter()
        answer = yield root.callRemote("calculate", i, i)
        round_trips.append((time.perf_counter() - start) * 1e6)
        check(answer, i)
    return round_trips


def in_flight(root, calls):
    """Makes `calls` calls, 64 in flight: starts 64, then one more each time one finishes.
    Returns a Deferred that fires when all have finished, or fails with the first failure."""
    all_done = defer.Deferred()
    started = finished = 0

    def start_next():
        nonlocal started
        i = started
        started += 1
        call = root.callRemote("calculate", i, i)
        call.addCallback(on_answer, i).addErrback(on_failure)

    def on_answer(answer, i):
        nonlocal finished
        check(answer, i)
        finished += 1
        if started < calls:
            start_next()
        elif finished == calls:
            all_done.callback(None)

    def on_failure(failure):
        if not all_done.called:
            all_done.errback(failure)

    for _ in range(min(IN_FLIGHT, calls)):
        start_next()
    return all_done


@defer.inlineCallbacks
def measure(_reactor, port, calls):
    """Connects to the calculator on 127.0.0.1:`port`, measures, prints the result line."""
    factory = pb.PBClientFactory()
    factory.protocol = NoDelayBroker
    reactor.connectTCP("127.0.0.1", port, factory)
    root = yield factory.getRootObject()
    warmup = max(calls // 10, 1)

    yield sequential(root, warmup)
    seq_us = statistics.median((yield sequential(root, calls)))

    yield in_flight(root, warmup)
    start = time.perf_counter()
    yield in_flight(root, calls)
    inflight64 = calls / (time.perf_counter() - start)

    factory.disconnect()
    print(
        f"twisted version={twisted.__version__} python={platform.python_version()} "
        f"seq_us={seq_us:.1f} inflight64={inflight64:.0f}",
        flush=True,
    )


def main(argv):
    """Parses the command line and runs the server or the client."""
    args = argv[1:]
    if len(args) == 2 and args[0] == "server" and args[1].isdigit():
        serve(int(args[1]))
    elif len(args) == 3 and args[0] == "client" and args[1].isdigit() and args[2].isdigit():
        task.react(measure, (int(args[1]), max(int(args[2]), 1)))
    else:
        sys.exit("usage: pb_calculator.py server PORT | client PORT CALLS")


if __name__ == "__main__":
    main(sys.argv)
