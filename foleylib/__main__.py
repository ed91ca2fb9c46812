import sys

from foleylib.interfaces.cli import main

sys.exit(main())
