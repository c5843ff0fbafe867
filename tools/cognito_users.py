"""Users and operator tokens for a stack's own Cognito user pool; or the local issuer's tokens.

    python -m tools.cognito_users user  --env dev   --email ada@example.com   (make user ENV=dev EMAIL=...)
    python -m tools.cognito_users token --env dev   --email ada@example.com   (make deployed-token ...)
    python -m tools.cognito_users token --env local --email ada@example.com   (a local-issuer token)

The password is never an argument or an environment variable: it is asked for on the terminal (not
echoed), or read as the first line of standard input when that is not a terminal, e.g.
`pass show tasks/dev | make deployed-token ENV=dev EMAIL=...`. `token` prints the token and nothing else.
Tokens come from AdminInitiateAuth (ADMIN_USER_PASSWORD_AUTH): it needs IAM credentials allowed
cognito-idp:AdminInitiateAuth on the pool, and the app client allows it on non-prod stages only.
"""

import argparse
import contextlib
import getpass
import secrets
import string
import sys
from typing import Any, TextIO

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from tools.stack_outputs import POOL_OUTPUTS, StackError, require, stack_for, stack_outputs

LOCAL = "local"
MIN_PASSWORD_LENGTH = 12  # the pool's policy: 12+, upper, lower, digits


class UserError(Exception):
    """Something the operator can fix; reported as one line on stderr."""


def create_user(idp: Any, pool_id: str, email: str, password: str) -> str:
    """A confirmed user with a permanent password and a verified e-mail; its sub."""
    try:
        created = idp.admin_create_user(
            UserPoolId=pool_id,
            Username=email,
            UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
            MessageAction="SUPPRESS",
        )
    except idp.exceptions.UsernameExistsException:
        raise UserError(f"{email} already has an account in this pool") from None
    idp.admin_set_user_password(UserPoolId=pool_id, Username=email, Password=password, Permanent=True)
    attributes = {a["Name"]: a["Value"] for a in created["User"].get("Attributes", [])}
    return attributes.get("sub", "")


def delete_user(idp: Any, pool_id: str, email: str) -> None:
    idp.admin_delete_user(UserPoolId=pool_id, Username=email)


def operator_token(idp: Any, pool_id: str, client_id: str, email: str, password: str) -> str:
    """An access token for the user (the API and both function URLs accept it)."""
    try:
        result = idp.admin_initiate_auth(
            UserPoolId=pool_id,
            ClientId=client_id,
            AuthFlow="ADMIN_USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": email, "PASSWORD": password},
        )
    except (idp.exceptions.NotAuthorizedException, idp.exceptions.UserNotFoundException):
        raise UserError("sign-in refused: wrong e-mail or password, or this stage has no operator sign-in") from None
    if "AuthenticationResult" not in result:
        raise UserError(f"sign-in needs the {result.get('ChallengeName')} step: complete it in the hosted sign-in")
    return str(result["AuthenticationResult"]["AccessToken"])


def random_password(length: int = 32) -> str:
    """A password the pool accepts (upper, lower and digits), for throwaway users such as the smoke tests'."""
    alphabet = string.ascii_letters + string.digits
    while True:
        password = "".join(secrets.choice(alphabet) for _ in range(length))
        if (
            any(c.isupper() for c in password)
            and any(c.islower() for c in password)
            and any(c.isdigit() for c in password)
        ):
            return password


def read_password(stdin: TextIO, *, confirm: bool) -> str:
    if stdin.isatty():
        password = getpass.getpass("Password: ")
        if confirm and getpass.getpass("Password again: ") != password:
            raise UserError("the passwords differ")
    else:
        password = stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    return password


def main(argv: list[str] | None = None, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.cognito_users", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["user", "token"])
    parser.add_argument("--env", required=True, help="samconfig.toml environment (dev, prod), or local")
    parser.add_argument("--email", required=True)
    args = parser.parse_args(argv)
    try:
        if "@" not in args.email:
            raise UserError("EMAIL=... is required: the user's e-mail address")
        if args.env == LOCAL:
            return _local(args.command, args.email, stdout)
        stack = stack_for(args.env)
        session = boto3.Session(region_name=stack.region)
        outputs = stack_outputs(session.client("cloudformation"), stack.name)
        pool_id, client_id = require(outputs, stack.name, *POOL_OUTPUTS)
        idp = session.client("cognito-idp")
        if args.command == "user":
            sub = create_user(idp, pool_id, args.email, read_password(stdin, confirm=True))
            print(f"created {args.email} (sub {sub}) in {pool_id}", file=sys.stderr)
            return 0
        if outputs.get("StageName") == "prod":
            raise UserError("prod has no operator sign-in: sign in through the hosted sign-in (README, Deploy)")
        print(operator_token(idp, pool_id, client_id, args.email, read_password(stdin, confirm=False)), file=stdout)
        return 0
    except (UserError, StackError, BotoCoreError, ClientError) as error:  # e.g. no AWS credentials, access denied
        print(f"error: {error}", file=sys.stderr)
        return 1


def _local(command: str, email: str, stdout: TextIO) -> int:
    """The local issuer accepts any user: no account to create, and a token is the local issuer's."""
    if command == "user":
        print("the local stack needs no user: `make token USER=...` signs a token for any name", file=sys.stderr)
        return 0
    from local.__main__ import main as local_main

    with contextlib.redirect_stdout(stdout):
        return local_main(["token", email])


if __name__ == "__main__":
    sys.exit(main())
