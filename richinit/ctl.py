"""richctl: talk to a running richinit over /run/richinit/control.sock."""

import sys

SOCKET = "/run/richinit/control.sock"


def entry():
    # The control socket arrives with services (services.d); until a richinit
    # serves it, say so plainly instead of failing obscurely.
    import os
    if not os.path.exists(SOCKET):
        sys.stderr.write("richctl: no richinit control socket at %s\n" % SOCKET)
        sys.exit(1)
    sys.stderr.write("richctl: this richinit does not serve control requests yet\n")
    sys.exit(1)
