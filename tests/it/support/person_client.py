"""A client of the sidecar built on the official MCP Python SDK, with an
elicitation callback standing in for the person at the keyboard.

    person_client.py SIDECAR SCENARIO PROMPT POLICY

The sidecar is started over stdio with this process's environment. One
codex_run with an asking approval POLICY (untrusted, on-request) and
workspace-write; then codex_wait until the run ends. The callback answers each form per SCENARIO:

- accept / decline: picks that decision in the form.
- cancel: dismisses the form; the run then waits for the caller, who
  accepts through codex_approve in the same session.
- refuse-then-cancel: while the form is open, codex_approve is tried (and
  must be refused); then the form is dismissed and codex_approve accepts.
- choose:LABEL: answers every question of a question form with LABEL.
- fill:VALUE: accepts any form, each field the first of its options, or
  VALUE (true for a yes/no field).
- ignore: never answers; the run gets a 3 s hard timeout, and the sidecar
  withdraws the form when it declines the request ("withdrawn").

Prints one JSON object a line for the Rust test to assert on: every form
seen ("elicited"), every tool reply that matters ("wait", "approve"), and
the end ("ended").
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import ElicitResult

# How long one codex_wait slice lasts: short, so the script sees a form
# shown and a request handed back promptly.
WAIT_SLICE_MS = 500
# The run's hard timeout when the person never answers.
HARD_TIMEOUT_MS = 3000
# The whole conversation; the Rust side has its own timeout too.
DEADLINE_S = 120


def say(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


async def main(sidecar, scenario, prompt, policy):
    ended = False
    may_answer = asyncio.Event()
    if scenario != "refuse-then-cancel":
        may_answer.set()

    async def elicitation(context, params):
        schema = params.requested_schema
        say("elicited", message=params.message, schema=schema)
        if scenario == "ignore":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                # Withdrawn by the sidecar, not by this script ending.
                say("withdrawn", after_end=ended)
                raise
        await may_answer.wait()
        if scenario in ("cancel", "refuse-then-cancel"):
            return ElicitResult(action="cancel")
        if scenario == "decline":
            return ElicitResult(action="decline")
        if scenario.startswith("fill:"):
            value = scenario.split(":", 1)[1]

            def filled(field):
                if field.get("enum"):
                    return field["enum"][0]
                if field.get("oneOf"):
                    return field["oneOf"][0]["const"]
                return True if field.get("type") == "boolean" else value

            properties = schema.get("properties", {})
            return ElicitResult(action="accept", content={key: filled(field) for key, field in properties.items()})
        if scenario.startswith("choose:"):
            label = scenario.split(":", 1)[1]
            return ElicitResult(action="accept", content={key: label for key in schema["properties"]})
        return ElicitResult(action="accept", content={"decision": "accept"})

    # The SDK passes only a few variables on by default; the sidecar needs
    # the test's CODEX_HOME, pointer dir and app-server mode.
    server = StdioServerParameters(command=sidecar, args=[], env=dict(os.environ))
    async with stdio_client(server) as (read, write):
        async with ClientSession(read, write, elicitation_callback=elicitation) as session:
            await session.initialize()
            arguments = {"prompt": prompt, "permissions": "workspace-write", "approval_policy": policy}
            if scenario == "ignore":
                arguments["timeout_ms"] = HARD_TIMEOUT_MS
            started = await session.call_tool("codex_run", arguments)
            run_id = started.structured_content["runId"]
            while True:
                waited = await session.call_tool(
                    "codex_wait", {"run_id": run_id, "soft_timeout_ms": WAIT_SLICE_MS}
                )
                reply = waited.structured_content
                status = reply["status"]
                if status == "still_running":
                    continue
                if status != "waiting_for_approval":
                    ended = True
                    say("ended", reply=reply)
                    return
                say("wait", reply=reply)
                approval = reply["pendingApproval"]
                if approval["askedPerson"]:
                    if not may_answer.is_set():
                        tried = await session.call_tool(
                            "codex_approve",
                            {"run_id": run_id, "approval_id": approval["approvalId"], "decision": "accept"},
                        )
                        say("approve", error=tried.is_error, text=tried.content[0].text)
                        may_answer.set()
                    continue
                answered = await session.call_tool(
                    "codex_approve",
                    {"run_id": run_id, "approval_id": approval["approvalId"], "decision": "accept"},
                )
                say("approve", error=answered.is_error, reply=answered.structured_content)


if __name__ == "__main__":
    sidecar, scenario, prompt, policy = sys.argv[1:5]
    asyncio.run(asyncio.wait_for(main(sidecar, scenario, prompt, policy), DEADLINE_S))
