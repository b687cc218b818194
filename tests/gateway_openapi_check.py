#!/usr/bin/python3
"""Validates answers of ecgq-gateway against its own OpenAPI 3.1 document with JSON Schema
2020-12 (Debian's python3-jsonschema): `gateway_openapi_check.py DOC.json ANSWERS.jsonl`, one
answer per line: {method, pattern, status, content_type, body}. Prints one line per problem and
exits 1 when there is any; used by tests/test_gateway_http.cpp."""
import json
import sys

import jsonschema


def main():
    doc = json.load(open(sys.argv[1]))
    jsonschema.Draft202012Validator.check_schema({"components": doc["components"]})
    problems = 0
    checked = 0
    for line in open(sys.argv[2]):
        a = json.loads(line)
        op = doc["paths"][a["pattern"]][a["method"]]
        response = op["responses"].get(str(a["status"]))
        where = f'{a["method"].upper()} {a["pattern"]} -> {a["status"]}'
        if response is None:
            print(f"{where}: status not documented")
            problems += 1
            continue
        content = response.get("content", {}).get("application/json")
        if content is None or not a["content_type"].startswith("application/json"):
            continue
        schema = dict(content["schema"])
        schema["components"] = doc["components"]
        validator = jsonschema.Draft202012Validator(schema)
        for error in validator.iter_errors(json.loads(a["body"])):
            print(f"{where}: {'/'.join(map(str, error.absolute_path))}: {error.message[:200]}")
            problems += 1
        checked += 1
    print(f"{checked} JSON answers validated, {problems} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
