"""Run localstripe on loopback only, with its store in a file of ours (or in memory).

Stock localstripe binds every interface and pickles its whole store to /tmp on every write.
Usage: python -m loafy.dev.localstripe_launcher --port 8420 [--store PATH]
"""

import argparse
import logging
import pickle

from aiohttp import web
from localstripe import resources, server


def _use_store_file(path):
    def load(self):
        try:
            with open(path, "rb") as f:
                self.clear()
                self.update(pickle.load(f))  # noqa: S301 - our own file, written below
        except (FileNotFoundError, EOFError):
            pass

    def dump(self):
        if path:
            with open(path, "wb") as f:
                pickle.dump(dict(self), f, protocol=pickle.HIGHEST_PROTOCOL)

    resources.Store.try_load_from_disk = load
    resources.Store.dump_to_disk = dump


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--store", default=None, help="file to keep the store in; none = memory")
    args = parser.parse_args()
    _use_store_file(args.store)
    if args.store:
        resources.store.try_load_from_disk()
    logging.basicConfig(level=logging.WARNING)
    web.run_app(server.app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
