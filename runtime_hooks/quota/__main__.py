"""`python -m runtime_hooks.quota ls|release` (what `rich quota ls` will call)."""

import argparse
import json
import sys

from runtime_hooks.quota import DEFAULT_STATE_DIR, QuotaError, format_table, list_quotas, release


def main(argv=None):
    ap = argparse.ArgumentParser(prog="rich quota", description="quota directories of containers")
    ap.add_argument("--state-dir", default=DEFAULT_STATE_DIR)
    sub = ap.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("ls", help="every container's quota directories: backend, ID, limit, usage")
    ls.add_argument("--json", action="store_true")
    rel = sub.add_parser("release", help="undo a container's quotas (after it was removed)")
    rel.add_argument("container")
    rel.add_argument("--keep-persistent", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "ls":
            rows = list_quotas(args.state_dir)
            print(json.dumps(rows, indent=1) if args.json else format_table(rows))
            return 0
        problems = release(args.container, args.keep_persistent, args.state_dir)
        for p in problems:
            print("rich quota: %s" % p, file=sys.stderr)
        return 1 if problems else 0
    except (QuotaError, OSError) as e:
        print("rich quota: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
