"""`benchsuite` as a program (`python -m benchsuite`, and the installed command)."""

import signal

from benchsuite.cli import app


def main() -> None:
    try:
        app(prog_name="benchsuite")
    finally:
        # the command is done and everything it stores is stored: a stop signal from here
        # on, while the interpreter shuts down and Python's own handler is gone, has
        # nothing left to stop and must not kill the process with it
        for stopping in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stopping, signal.SIG_IGN)


if __name__ == "__main__":
    main()
