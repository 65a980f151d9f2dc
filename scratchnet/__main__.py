"""``python -m scratchnet``: the command line (see :mod:`scratchnet.cli`)."""
import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C before main() can catch it: still one line, no traceback
    print("scratchnet: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())
