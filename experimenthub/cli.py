"""``experimenthub`` command line: ``demo`` (the headless main job), ``serve`` (the REST API in
the foreground, for deployments without a notebook) and ``publish`` (a CSV file to a queue)."""

from __future__ import annotations

import argparse
import sys

from .redact import redact_text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="experimenthub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train both experiment types on shipped data; print where "
                                            "the figures and MLflow runs are")
    demo.add_argument("--home", help="data directory (default: $EXPERIMENTHUB_HOME or ./.experimenthub)")
    serve = commands.add_parser("serve", help="serve the REST API in the foreground")
    serve.add_argument("--host", help="interface to bind (default: settings, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: settings, 8010)")
    serve.add_argument("--config", help="settings YAML file (default: $EXPERIMENTHUB_CONFIG)")
    serve.add_argument("--token", help="require this token on every request ('Authorization: Bearer TOKEN' or "
                                       "'X-ExperimentHub-Token: TOKEN'); visible in ps: prefer --token-file or "
                                       "$EXPERIMENTHUB_TOKEN")
    serve.add_argument("--token-file", help="file holding the token (default: $EXPERIMENTHUB_TOKEN_FILE, then "
                                            "$EXPERIMENTHUB_TOKEN)")
    serve.add_argument("--allow-unauthenticated", action="store_true", default=None,
                       help="serve beyond loopback (e.g. --host 0.0.0.0) without a token; refused otherwise "
                            "(default: $EXPERIMENTHUB_ALLOW_UNAUTHENTICATED)")
    serve.add_argument("--restore", action="store_true",
                       help="bring back every experiment of the tracking store that was not deleted (each loaded "
                            "on first use), as a restarted kernel would with hub.restore()")
    serve.add_argument("--no-access-log", action="store_true",
                       help="no access lines (they never show headers; query values are masked)")
    publish = commands.add_parser("publish", help="send a CSV file to an experiment's RabbitMQ queue as JSON "
                                                  "records (the hub's message format)")
    publish.add_argument("name", help="experiment name (= queue name)")
    publish.add_argument("file", help="CSV file with a header row")
    publish.add_argument("--rabbitmq-url", help="amqp:// URL (default: $EXPERIMENTHUB_RABBITMQ_URL or the "
                                                "settings file)")
    publish.add_argument("--batch-rows", type=int, default=None,
                         help="rows per message (default: the whole file as one message)")
    args = parser.parse_args(argv)

    if args.command == "demo":
        from . import demo as demo_module
        from .faces import ExperimentHub

        with ExperimentHub(home=args.home) as hub:
            demo_module.run(hub)
    elif args.command == "serve":
        return _serve(args)
    elif args.command == "publish":
        return _publish(args.name, args.file, args.rabbitmq_url, args.batch_rows)
    return 0


def _serve(args: argparse.Namespace) -> int:
    """``experimenthub serve``: the settings and the binding are checked before the hub starts, so a
    refusal is a one-line message and exit code 2, not a traceback."""
    from .api.server import InsecureBinding, check_binding
    from .errors import ExperimentHubError
    from .settings import Settings

    def fail(message: str) -> int:
        print(f"experimenthub serve: {redact_text(message)}", file=sys.stderr)
        return 2

    try:
        settings = Settings.from_env(config_file=args.config, token_file=args.token_file,
                                     allow_unauthenticated=args.allow_unauthenticated)
    except ExperimentHubError as exc:
        return fail(str(exc))
    host = args.host or settings.server_host
    port = args.port if args.port is not None else settings.server_port
    token = args.token or settings.api_token
    try:
        warning = check_binding(host, token, settings.allow_unauthenticated)
    except InsecureBinding as exc:
        return fail(str(exc))
    if warning:
        print(f"experimenthub serve: WARNING: {warning}", file=sys.stderr, flush=True)

    import uvicorn

    from .api import create_app
    from .api.logs import uvicorn_log_config
    from .faces import ExperimentHub
    from .redact import redact_uri

    with ExperimentHub(settings) as hub:
        if args.restore:
            try:
                restored = hub.restore()
            except ExperimentHubError as exc:
                return fail(f"could not restore from {redact_uri(hub.tracking.uri)}: {exc}")
            print(f"Restored {len(restored)} experiment(s) from MLflow: {', '.join(sorted(restored)) or '(none)'}",
                  flush=True)
        shown = f"[{host}]" if ":" in host else host
        auth = ("token required (Authorization: Bearer, or X-ExperimentHub-Token)" if token
                else "no token: loopback Host names and EXPERIMENTHUB_ALLOWED_HOSTS only")
        print(f"ExperimentHub API on http://{shown}:{port} (docs at /docs; {auth}); "
              f"MLflow at {redact_uri(hub.tracking.uri)}", flush=True)
        uvicorn.run(create_app(hub, token=token), host=host, port=port, log_level="info",
                    log_config=uvicorn_log_config(), access_log=not args.no_access_log)
    return 0


def _publish(name: str, path: str, rabbitmq_url: str | None, batch_rows: int | None) -> int:
    """``experimenthub publish NAME FILE.csv``: through ``hub.publish``, so the bytes are exactly what
    the hub itself sends (JSON records, persistent, application/json, a message_id each)."""
    import pandas as pd

    from .errors import ExperimentHubError
    from .hub import Hub

    def fail(message: str, code: int = 2) -> int:
        print(f"experimenthub publish: {redact_text(message)}", file=sys.stderr)  # errors may quote the URL
        return code

    if batch_rows is not None and batch_rows < 1:
        return fail(f"--batch-rows must be at least 1, got {batch_rows}")
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        return fail(f"cannot read {path} as CSV: {exc}")
    if len(frame) == 0:
        return fail(f"{path} has no rows to publish")
    try:
        hub = Hub(rabbitmq_url=rabbitmq_url, warm_up=False)
    except ExperimentHubError as exc:
        return fail(str(exc))
    try:
        if not hub.settings.rabbitmq_url:
            return fail("no RabbitMQ to publish to: pass --rabbitmq-url amqp://user:password@host:5672/%2F or set "
                        "EXPERIMENTHUB_RABBITMQ_URL")
        size = batch_rows or len(frame)
        messages = 0
        for start in range(0, len(frame), size):
            hub.publish(name, frame.iloc[start:start + size])
            messages += 1
    except ExperimentHubError as exc:
        return fail(str(exc), 1)
    finally:
        hub.close()
    from .plugins.rabbitmq_stream import safe_url

    print(f"published {len(frame)} rows in {messages} message(s) to queue {name!r} at "
          f"{safe_url(hub.settings.rabbitmq_url)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
