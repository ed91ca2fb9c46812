import sys

from foleylib.interfaces.cli import main

if __name__ == "__main__":  # not when imported (a spawned process, a test)
    sys.exit(main())
