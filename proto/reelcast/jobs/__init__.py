"""The contract kernel: what every room of reelcast shares about the JobService contract.

The generated messages and stubs are in ``reelcast.jobs.v1``. Beside them, each module holds one piece of the
contract that the server, the plugins, the bridge and the client would otherwise each write down:

- ``errors``: the error catalogue (codes, messages, remediations) and the exception that carries a code.
- ``status``: the status codec, a catalogue error as a ``google.rpc.Status`` and back (the one decoder).
- ``violations``: ``FieldViolation``, one invalid field of a request.
- ``metadata``: the header names a call carries, and the correlation-id rule.
- ``terminal``: how a job ends (its terminal event kinds and statuses).
- ``validation``: the checks of a ``JobSpec``, its documented defaults and limits, the narration estimate.
- ``resources``: the REST representations (msgspec Structs) of the messages, and the status words.
- ``event_payloads``: one event as the seed's SSE name and JSON payload, for the bridge's streams and the
  server's webhooks alike.

The kernel does no I/O and reads no environment; it imports protobuf, grpcio, grpcio-status and msgspec (the
representations' Structs), and nothing else of reelcast. This module imports none of its submodules, so that
``import reelcast.jobs.v1`` stays cheap.
"""
