"""``leads-gateway serve | demo-upstream | schema``: the command line of the public contract (README, "Command line")."""

from __future__ import annotations

import argparse
import gc
import os
import sys

import uvicorn

from gateway.config import ConfigError, Settings
from gateway.observability.logs import configure as configure_logs
from gateway.observability.logs import log_config


def app_from_env():
    """Factory for uvicorn (one call per worker process): settings come from the environment."""
    from gateway.app import create_app

    app = create_app(Settings.from_env())
    # What is built by now (modules, the schema, the layers) lives as long as the process: take it out of the
    # cyclic collector's sight, so that a full collection scans only what requests allocate. Without it the
    # event loop stalled 50-170 ms per full collection under load (bench/isolation.py, docs/ISOLATION.md).
    gc.collect()
    gc.freeze()
    return app


def _serve(args: argparse.Namespace) -> int:
    if args.demo:
        from gateway.demo.app import create_demo_app
        from gateway.demo.data import DEMO_TOKEN
        from gateway.serving import start_in_thread

        # The demo upstream runs beside the gateway over real loopback HTTP, like the real API would.
        upstream = start_in_thread(create_demo_app(_demo_options(args)), "127.0.0.1", args.demo_port)
        os.environ["GATEWAY_UPSTREAM_URL"] = upstream.url
        os.environ.setdefault("GATEWAY_DEMO_TOKEN", DEMO_TOKEN)
        print(f"demo upstream on {upstream.url}/user/leads", file=sys.stderr)
    settings = Settings.from_env()  # fail fast, with a clear message, before uvicorn starts
    _check_manifests(settings)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"{'GraphiQL' if settings.graphiql_on else 'GraphQL (GraphiQL off)'} on http://{host}:{args.port}/graphql",
          file=sys.stderr)
    # On SIGTERM uvicorn stops accepting, lets in-flight requests finish for up to the grace period,
    # then runs the lifespan shutdown (which closes the upstream client and the cache).
    uvicorn.run("gateway.cli:app_from_env", factory=True, host=args.host, port=args.port,
                workers=args.workers if args.workers > 1 else None, log_level=args.log_level,
                log_config=log_config(args.log_level), access_log=False,
                timeout_graceful_shutdown=settings.shutdown_grace or None,
                # Longer than the idle timeouts of common clients and load balancers (60 s): closing an idle
                # connection just as a client reuses it resets its request (seen in the soak test at 5 s).
                timeout_keep_alive=75,
                # WebSocket keep-alive: a ping every GATEWAY_LIVE_KEEPALIVE seconds, a peer silent as long is gone
                ws_ping_interval=settings.live_keepalive, ws_ping_timeout=settings.live_keepalive,
                proxy_headers=False, server_header=False)
    return 0


def _check_manifests(settings: Settings) -> None:
    """Every persisted-document manifest read and each document validated before uvicorn starts: a bad one is
    a ``ConfigError`` naming the file, the id and the problem (exit status 2), not a worker's traceback."""
    if not settings.persisted_documents:
        return
    from gateway.graphql.extensions.limits import Limits
    from gateway.graphql.persisted import load_manifests
    from gateway.graphql.schema import build_schema

    manifest = load_manifests(settings.persisted_documents, build_schema(settings), Limits.from_settings(settings),
                              introspection=settings.introspection)
    print(f"{len(manifest)} persisted documents from {len(settings.persisted_documents)} manifest(s)"
          + ("; only these run (GATEWAY_ALLOW_ARBITRARY_DOCUMENTS=false)" if not settings.allow_arbitrary_documents
             else ""), file=sys.stderr)


def _demo_options(args: argparse.Namespace):
    """DemoOptions from DEMO_* variables, overridden by the command line flags.

    ``--fault`` and ``--fault-mix`` replace each other's environment counterpart: ``--fault-mix``
    clears a ``DEMO_FAULT``, ``--fault`` clears a ``DEMO_FAULT_MIX``. When a single fault and a mix
    are both in force (both flags, or both variables), the single fault wins (see DemoOptions).
    ``--token-fault``, ``--token-latency`` and ``--token-write-fault`` entries extend ``DEMO_TOKEN_FAULTS``,
    ``DEMO_TOKEN_LATENCY_MS`` and ``DEMO_TOKEN_WRITE_FAULTS``; for a token in both, the flag wins.
    ``--write-fault`` and ``--write-fault-times`` replace ``DEMO_WRITE_FAULT`` and ``DEMO_WRITE_FAULT_TIMES``,
    ``--live-changes`` and ``--live-change-count`` replace ``DEMO_LIVE_CHANGES`` and ``DEMO_LIVE_CHANGE_COUNT``.
    """
    from gateway.demo.app import (
        main_options_from_env,
        parse_fault_mix,
        parse_live_changes,
        parse_token_faults,
        parse_token_latency_ms,
        parse_token_write_faults,
    )

    try:
        options = main_options_from_env()
        if args.latency_ms is not None:
            options.latency = args.latency_ms / 1000
        if args.fault_mix is not None:
            try:
                options.fault_mix = parse_fault_mix(args.fault_mix)
            except ValueError as exc:
                raise ValueError(f"--fault-mix: {exc}") from None
            if args.fault is None:
                options.fault = None
        if args.fault is not None:
            options.fault = args.fault
            if args.fault_mix is None:
                options.fault_mix = ()
        if args.fault_rate is not None:
            options.fault_rate = args.fault_rate
        if args.retry_after is not None:
            options.retry_after = args.retry_after
        if args.write_fault is not None:
            options.write_fault = args.write_fault
        if args.write_fault_times is not None:
            options.write_fault_times = args.write_fault_times
        if args.live_changes is not None:
            options.live_changes = parse_live_changes(args.live_changes, "--live-changes")
        if args.live_change_count is not None:
            if args.live_change_count < 1:
                raise ValueError(f"--live-change-count must be a whole number >= 1, got {args.live_change_count}")
            options.live_change_count = args.live_change_count
        # Repeatable flags, each TOKEN=VALUE (or several, comma-separated): parsed together, so a token
        # given twice on the command line is an error, as it is in the variable.
        for flag, given, parse, attribute in (
                ("--token-fault", args.token_fault, parse_token_faults, "token_faults"),
                ("--token-latency", args.token_latency, parse_token_latency_ms, "token_latency"),
                ("--token-write-fault", args.token_write_fault, parse_token_write_faults, "token_write_faults")):
            if given:
                try:
                    getattr(options, attribute).update(parse(",".join(given)))
                except ValueError as exc:
                    raise ValueError(f"{flag}: {exc}") from None
        options.__post_init__()  # re-validate after the overrides
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return options


def _demo_upstream(args: argparse.Namespace) -> int:
    from gateway.demo.app import create_demo_app

    uvicorn.run(create_demo_app(_demo_options(args)), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _schema(args: argparse.Namespace) -> int:
    from gateway.graphql.schema import sdl

    sys.stdout.write(sdl())
    return 0


def _demo_flags(parser: argparse.ArgumentParser) -> None:
    from gateway.demo.app import FAULTS, WRITE_FAULTS

    group = parser.add_argument_group("demo upstream behaviour (also DEMO_LATENCY_MS, DEMO_FAULT, ...)")
    group.add_argument("--latency-ms", type=float, help="added to every upstream response")
    group.add_argument("--fault", choices=FAULTS, help="inject this fault")
    group.add_argument("--fault-rate", type=float, help="fraction of requests that get the fault (default 1)")
    group.add_argument("--fault-mix", metavar="FAULT:RATE,...",
                       help="several faults, each with its own probability, e.g. 503:0.10,slow:0.02,malformed:0.01 "
                            "(rates sum to at most 1; DEMO_FAULT_MIX; --fault wins when both are given)")
    group.add_argument("--retry-after", type=int, help="Retry-After seconds of the 429 fault")
    group.add_argument("--token-fault", action="append", metavar="TOKEN=KIND",
                       help=f"every request of this token gets this fault ({', '.join(FAULTS)}); repeatable; "
                            "extends DEMO_TOKEN_FAULTS (tokA=500,tokB=slow)")
    group.add_argument("--token-latency", action="append", metavar="TOKEN=MS",
                       help="milliseconds added to every response of this token, on top of --latency-ms; "
                            "repeatable; extends DEMO_TOKEN_LATENCY_MS (tokA=200)")
    group.add_argument("--write-fault", choices=WRITE_FAULTS,
                       help="inject this fault into every POST /user/lead (lost: created, then the connection "
                            "drops; lost-before: dropped, nothing created; late: created, answered after "
                            "DEMO_SLOW_SECONDS; 500-after: created, then a 500; DEMO_WRITE_FAULT)")
    group.add_argument("--token-write-fault", action="append", metavar="TOKEN=KIND",
                       help=f"every POST of this token gets this fault ({', '.join(WRITE_FAULTS)}), "
                            "instead of --write-fault; repeatable; extends DEMO_TOKEN_WRITE_FAULTS "
                            "(tokA=lost,tokB=late)")
    group.add_argument("--write-fault-times", type=int, metavar="N",
                       help="only the next N POSTs that would get a write fault get it (default: all; "
                            "DEMO_WRITE_FAULT_TIMES)")
    group.add_argument("--live-changes", metavar="SECONDS",
                       help="every SECONDS, move random leads of every token seen one status further, with "
                            "updated_at now (default: never; DEMO_LIVE_CHANGES)")
    group.add_argument("--live-change-count", type=int, metavar="N",
                       help="leads moved per round and token with --live-changes (default 1; DEMO_LIVE_CHANGE_COUNT)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="leads-gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the GraphQL gateway")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.add_argument("--demo", action="store_true",
                       help="also run the embedded demo upstream and point the gateway at it (no token needed)")
    serve.add_argument("--demo-port", type=int, default=0, help="port of the demo upstream (default: any free one)")
    serve.add_argument("--log-level", default="info")
    _demo_flags(serve)
    serve.set_defaults(func=_serve)

    demo = sub.add_parser("demo-upstream", help="run the embedded demo upstream alone")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8001)
    demo.add_argument("--log-level", default="info")
    _demo_flags(demo)
    demo.set_defaults(func=_demo_upstream)

    schema = sub.add_parser("schema", help="print the GraphQL SDL (the checked-in schema.graphql)")
    schema.set_defaults(func=_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "workers", 1) < 1:
        print("leads-gateway: --workers must be at least 1", file=sys.stderr)
        return 2
    configure_logs(getattr(args, "log_level", "info"))
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"leads-gateway: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
