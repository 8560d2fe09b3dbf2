"""A minimal MCP server over stdio for the tests: one tool, `ask`, which asks
the client for a value with `elicitation/create` and returns what came back.
Plain JSON-RPC, no SDK, so the test needs nothing but Python 3."""

import json
import sys


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main():
    pending_call = None
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        message = json.loads(line)
        method = message.get("method")
        if method == "initialize":
            send({"jsonrpc": "2.0", "id": message["id"], "result": {
                "protocolVersion": message["params"].get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "eliciting", "version": "1.0.0"},
            }})
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": message["id"], "result": {"tools": [{
                "name": "ask",
                "description": "Asks the user for a deploy target.",
                "inputSchema": {"type": "object", "properties": {}},
            }]}})
        elif method == "tools/call":
            pending_call = message["id"]
            send({"jsonrpc": "2.0", "id": "elicit-1", "method": "elicitation/create", "params": {
                "message": "Which deploy target?",
                "requestedSchema": {"type": "object", "properties": {
                    "target": {"type": "string"}}, "required": []},
            }})
        elif "id" in message and method is None and pending_call is not None:
            answer = message.get("result") or {"error": message.get("error")}
            send({"jsonrpc": "2.0", "id": pending_call, "result": {
                "content": [{"type": "text", "text": "ELICITED " + json.dumps(answer)}],
            }})
            pending_call = None
        elif "id" in message and method is not None:
            send({"jsonrpc": "2.0", "id": message["id"], "result": {}})


if __name__ == "__main__":
    main()
