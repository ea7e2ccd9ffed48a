"""A stand-in ``ptd`` executable for the launch tests: PTDaemon's command line, the simulator's
PTDaemon emulator behind it (``start_ptd``), its console on stdout, SIGTERM to stop.

    python sources_ptd_child.py -l <data log> -p <port> [...] <deviceType> <devicePort>
"""

from __future__ import annotations

import os
import signal
import sys
import threading


def main(argv: list[str]) -> int:
    from mlpower.analyzer_sim import start_ptd

    log_path = argv[argv.index("-l") + 1]
    port = int(argv[argv.index("-p") + 1])
    positional = [a for i, a in enumerate(argv) if not a.startswith("-") and argv[i - 1] not in ("-l", "-p")]
    device_type = int(positional[0])
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print(f"argv: {' '.join(argv)}", flush=True)
    print(f"TZ={os.environ.get('TZ', '')}", flush=True)
    handle = start_ptd(port=port, log_path=log_path, device_type=device_type,
                       console=lambda text: print(text, flush=True))  # fmt: skip
    try:
        done.wait()
    finally:
        handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
