#!/usr/bin/env python3
"""Evaluates lastmile's OFREP endpoint with the real OpenFeature Python SDK.

    python3 tests/ofrep_client.py <base-url> <token>

Prints one JSON object: for each case, the evaluation details the SDK
returned (value, variant, reason, error code and message, metadata).
Exits 3 when the SDK or its OFREP provider is not installed (scripts/test
installs openfeature-sdk and openfeature-provider-ofrep).
"""

import json
import sys

try:
    from openfeature import api
    from openfeature.contrib.provider.ofrep import OFREPProvider
    from openfeature.evaluation_context import EvaluationContext
except ImportError as error:
    print(f"cannot import the OpenFeature SDK: {error}", file=sys.stderr)
    sys.exit(3)


def bearer(token):
    return lambda: {"Authorization": f"Bearer {token}"}


def details(result):
    def plain(value):
        return None if value is None else str(value)

    return {
        "value": result.value,
        "variant": result.variant,
        "reason": plain(result.reason),
        "error_code": plain(result.error_code),
        "error_message": result.error_message,
        "metadata": dict(result.flag_metadata),
    }


def main():
    url, token = sys.argv[1], sys.argv[2]
    api.set_provider(OFREPProvider(url, headers_factory=bearer(token), timeout=5.0))
    api.set_provider(
        OFREPProvider(url, headers_factory=bearer("not-" + token), timeout=5.0),
        "wrong-token",
    )
    client = api.get_client()
    swede = EvaluationContext("user-1", {"country": "SE"})
    dane = EvaluationContext("user-2", {"country": "DK"})
    keyless = EvaluationContext(None, {"country": "SE"})
    results = {
        "boolean": details(client.get_boolean_details("new-checkout", False, swede)),
        "string_targeted": details(client.get_string_details("banner", "none", swede)),
        "string_untargeted": details(client.get_string_details("banner", "none", dane)),
        "missing": details(client.get_string_details("no-such-flag", "fallback", swede)),
        "split_without_key": details(client.get_boolean_details("half", False, keyless)),
        "wrong_token": details(
            api.get_client("wrong-token").get_boolean_details("new-checkout", False, swede)
        ),
    }
    print(json.dumps(results))


if __name__ == "__main__":
    main()
