"""The locust side of the load tests: imported only inside a locust process (locust monkey-patches the
standard library with gevent on import), never by the orchestrator.

    options.py     command-line options and this process's request configuration
    recorder.py    per-request samples of the open window (locust's `request` event)
    messages.py    the typed messages between the master and its workers
    controller.py  runs a plan's mode (local process or master) and writes the `RawRun`
    worker.py      a worker's side of those messages
    process.py     the init hook wiring the above into a locust process
    users.py       the user classes the locustfiles expose

How a step of a closed or open loop is driven lives with its mode (`loadtests/modes/`).
"""
