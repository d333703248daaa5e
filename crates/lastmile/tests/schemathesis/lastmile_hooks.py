"""schemathesis hooks for the API contract test.

The fuzzer may revoke any token it finds a name for; the one it
authenticates with stays, or every later call would only test the 401.
"""

import os

import schemathesis

ADMIN_TOKEN_NAME = os.environ["LASTMILE_FUZZ_TOKEN_NAME"]


@schemathesis.hook
def filter_case(context, case):
    revokes_own_token = (
        case.method.upper() == "DELETE"
        and case.path == "/api/v1/tokens/{name}"
        and (case.path_parameters or {}).get("name") == ADMIN_TOKEN_NAME
    )
    return not revokes_own_token
